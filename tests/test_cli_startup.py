"""The CLI starts without importing the heavy libraries, and its flags mean one thing each."""

from __future__ import annotations

import json
import subprocess
import sys

import typer

from unlearnkit.cli import app

HEAVY = ("torch", "sklearn", "ray", "matplotlib", "pandas", "scipy")


def _imported_by(argv: list[str]) -> list[str]:
    """Heavy modules imported by running the CLI with ``argv`` in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from unlearnkit.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_library() -> None:
    assert _imported_by(["--help"]) == []
    assert _imported_by(["train", "--help"]) == []


def test_data_list_imports_neither_torch_nor_sklearn() -> None:
    heavy = _imported_by(["data", "list"])
    assert not {"torch", "sklearn", "ray", "matplotlib"} & set(heavy), heavy


def test_version() -> None:
    from unlearnkit import __version__

    out = subprocess.run([sys.executable, "-c", "from unlearnkit.cli import main; main(['--version'])"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"unlearnkit {__version__}"


def _commands(group, prefix: str = "") -> dict:
    """Every leaf command of a (typer-vendored) click group, by its full name."""
    out = {}
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out.update(_commands(cmd, f"{prefix}{name} "))
        else:
            out[prefix + name] = cmd
    return out


def test_short_flags_mean_one_thing_and_every_command_has_examples() -> None:
    meaning: dict[str, tuple[str, str]] = {}
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 15
    for name, cmd in commands.items():
        assert cmd.epilog and "Examples" in cmd.epilog, f"{name}: no examples in --help"
        for param in (p for p in cmd.params if p.param_type_name == "option"):
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in param.opts if not o.startswith("--")):
                seen = meaning.setdefault(short, (longs[0], name))
                assert seen[0] == longs[0], f"{short} is {seen[0]} in {seen[1]} but {longs[0]} in {name}"
            if param.is_flag and param.name != "help":
                assert param.metavar == "", f"{name} {longs[0]}: a flag shown as taking a value"


def test_constants_repeated_for_a_fast_help_agree() -> None:
    from unlearnkit.cli.evaluate_cmd import MIA_MAX_DEFAULT
    from unlearnkit.cli.rum_cmd import CANDIDATES_HELP
    from unlearnkit.meta.rum import DEFAULT_CANDIDATES
    from unlearnkit.metrics.mia import DEFAULT_MAX_PER_SIDE

    assert MIA_MAX_DEFAULT == DEFAULT_MAX_PER_SIDE
    assert CANDIDATES_HELP == ",".join(DEFAULT_CANDIDATES)
