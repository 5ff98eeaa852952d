"""The typer application object that every command module adds to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="unlearnkit",
    help="Machine unlearning with per-example difficulty as a first-class measurement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="List, inspect and fetch datasets.", no_args_is_help=True)
forget_app = typer.Typer(help="Build forget sets (files of training indices).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(forget_app, name="forget-set")

console = Console()
err_console = Console(stderr=True)

# Options shared by many commands.
DATA_ROOT = typer.Option(None, "--data-root", help="Directory searched first for dataset files.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda (auto takes a GPU when there is one).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output.")
