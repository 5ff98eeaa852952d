"""The typer application object that every command module adds to."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from unlearnkit._version import __version__


def examples(*commands: str) -> str:
    """The ``Examples`` epilog of a command's ``--help``: one shell line per example."""
    return "[bold]Examples[/]\n\n" + "\n\n".join(f"  $ {c}" for c in commands)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"unlearnkit {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="unlearnkit",
    help="Machine unlearning with per-example difficulty as a first-class measurement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    epilog=examples("unlearnkit demo", "unlearnkit methods salun", "unlearnkit COMMAND --help"),
)
data_app = typer.Typer(help="List, inspect and fetch datasets.", no_args_is_help=True)
forget_app = typer.Typer(help="Build forget sets (files of training indices).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(forget_app, name="forget-set")


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
    ),
) -> None:
    """Machine unlearning with per-example difficulty as a first-class measurement."""


def _console(stderr: bool = False) -> Console:
    """A console that wraps at the terminal's width, and not at all in a pipe or a log file."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=100_000, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)


def flag(*names: str, help: str) -> typer.models.OptionInfo:  # noqa: A002 (typer's name)
    """A boolean option that is present or absent (shown without a ``<bool>`` value in --help)."""
    return typer.Option(False, *names, metavar="", help=help)


# Options shared by many commands. Short flags mean one thing everywhere:
# -d --dataset, -m --model (a registered model name), -r --run, -f --forget, -o --out,
# -n --size, -q --quiet.
DATA_ROOT = typer.Option(None, "--data-root", help="Directory searched first for dataset files.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda (auto takes a GPU when there is one).")
AMP = flag("--amp", help="Mixed precision (bfloat16 autocast) in the training loop; for GPUs.")
# Options many commands share, declared once so that a flag means the same everywhere.
RUN = typer.Option(..., "--run", "-r", help="Run directory of the original model.")
FORGET = typer.Option(..., "--forget", "-f", help="Forget file (.txt or .json of training indices).")
METHOD = typer.Option(..., "--method", help="Registered unlearning method (`unlearnkit methods` lists them).")
DATASET = typer.Option("digits", "--dataset", "-d", help="Registered dataset name.")
MODEL = typer.Option("mlp", "--model", "-m", help="Registered model name.")
QUIET = flag("--quiet", "-q", help="No progress bars.")
OVERWRITE = flag("--overwrite", help="Replace an existing output.")
