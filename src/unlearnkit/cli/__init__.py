"""Command-line interface: thin typer commands over the Python API.

Each ``*_cmd.py`` module in this package registers its commands on ``app``
(imported automatically). Every expected failure is an
:class:`UnlearnkitError`; :func:`main` prints it as one line on stderr and
exits with code 2 (no traceback).
"""

from __future__ import annotations

import sys

import typer

from unlearnkit.cli.app import app, err_console
from unlearnkit.errors import UnlearnkitError
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__, suffix="_cmd")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``unlearnkit`` console script."""
    try:
        # Non-standalone so that usage errors (unknown option, bad value) reach us and are
        # printed as one line too, instead of typer's boxed panel.
        code = app(args=argv, prog_name="unlearnkit", standalone_mode=False)
    except UnlearnkitError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors
        if type(e).__name__ != "NoArgsIsHelpError":  # that one has already printed the help
            message = e.format_message() if hasattr(e, "format_message") else str(e)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    if isinstance(code, int) and code:  # typer.Exit(code) and Ctrl-C (130) come back as a code
        sys.exit(code)


__all__ = ["app", "main"]
