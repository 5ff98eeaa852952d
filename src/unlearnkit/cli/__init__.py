"""Command-line interface: thin typer commands over the Python API.

Each ``*_cmd.py`` module in this package registers its commands on ``app``
(imported automatically). Every expected failure is an
:class:`UnlearnkitError`; :func:`main` prints it as one line on stderr and
exits with code 2 (no traceback).
"""

from __future__ import annotations

import sys

from unlearnkit.cli.app import app, err_console
from unlearnkit.errors import UnlearnkitError
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__, suffix="_cmd")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``unlearnkit`` console script."""
    try:
        app(args=argv, prog_name="unlearnkit")
    except UnlearnkitError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
