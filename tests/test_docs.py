"""Every ```python and ```bash block of README.md and docs/*.md runs, so the pages cannot rot.

A page runs like a notebook: its blocks in order, in one fresh temporary directory, the
python blocks sharing one namespace, the bash blocks with the venv's ``unlearnkit`` first on
PATH (``bash -euo pipefail``). A block directly preceded by the line ``<!-- illustrative -->``
(optionally ``<!-- illustrative: why -->``) shows usage at a size that does not fit a test
and is not run; every other python/bash block is. Blocks in other languages (yaml, json, toml,
text, unlabelled transcripts) are data, not programs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
MARK = re.compile(r"<!--\s*illustrative\b[^>]*-->\s*$")
RUNNABLE = {"python", "bash", "sh"}

# Runs the blocks of one page in order; prints which block failed, then exits non-zero.
DRIVER = r'''
import json, subprocess, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__docs__"}
for i, (lang, line, code) in enumerate(blocks):
    if lang == "python":
        try:
            exec(compile(code, f"<{sys.argv[2]} line {line}>", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            sys.exit(f"python block at line {line} failed")
    else:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", code])
        if res.returncode:
            sys.exit(f"bash block at line {line} exited {res.returncode}")
'''


def blocks(page: Path) -> list[tuple[str, int, str, bool]]:
    """(language, line, code, illustrative) of every fenced block of ``page``."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, m.start()) + 1
        out.append((m.group(1).lower(), line, m.group(2), bool(MARK.search(before))))
    return out


def test_every_page_is_collected_and_fences_are_balanced() -> None:
    assert (ROOT / "docs" / "tutorial.md") in PAGES
    for page in PAGES:
        assert page.read_text().count("\n```") % 2 == 0 or page.read_text().startswith("```"), page


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_code_runs(page: Path, tmp_path: Path) -> None:
    todo = [(lang if lang != "sh" else "bash", line, code)
            for lang, line, code, illustrative in blocks(page) if lang in RUNNABLE and not illustrative]
    if not todo:
        return  # nothing but data and illustrative blocks on this page
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps(todo))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "COLUMNS": "100"}
    res = subprocess.run([sys.executable, str(driver), str(spec), page.name], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{page.name}: {res.stderr[-3000:]}\n{res.stdout[-2000:]}"
