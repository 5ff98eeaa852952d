"""The report in a real browser: headless Chromium loads report.html, every figure decodes,
and the screenshot is not blank. (`make test` installs Debian's chromium as root.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from test_report import synthetic

from unlearnkit.report import write_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# Appended to a copy of the page: after load, record every image's decoded width in the DOM.
PROBE = ("<script>window.addEventListener('load', () => {document.body.dataset.images = JSON.stringify("
         "[...document.images].map(i => [i.alt, i.complete, i.naturalWidth]));});</script>")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed; `make test` installs it (apt-get install -y chromium, as root)")
    return path


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    return subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    mem = pd.DataFrame({"index": np.arange(200), "memorization": np.random.default_rng(1).beta(1, 5, 200)})
    scores = mem.assign(confidence=1 - mem["memorization"])
    ctx = {"memorization": mem, "memorization_info": {"split_half": 0.31, "k": 8, "reliability_threshold": 0.5},
           "scores": scores}
    return write_report(out, synthetic(), context=ctx)


def test_every_image_of_the_report_loads_in_chromium(report, tmp_path):
    page = tmp_path / "probe.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    res = _run(["--dump-dom", page.as_uri()], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'data-images="([^"]*)"', res.stdout)
    assert found, "the page did not finish loading: " + res.stdout[:500]
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(images) == report.read_text().count("<img ") >= 5
    for alt, complete, width in images:
        assert complete and width > 100, (alt, complete, width)  # decoded, not a broken-image icon
    assert "Summary" in res.stdout and "What was run" in res.stdout


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "report.png"
    res = _run([f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", report.as_uri()], tmp_path)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # text, tables and figures, not one colour
    # Keep a copy to look at (the test's tmp dir is removed by pytest after a while).
    keep = Path(sys.prefix).parent / ".pytest_cache" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)
