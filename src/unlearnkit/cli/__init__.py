"""Command-line interface: thin typer commands over the Python API.

Every expected failure is an :class:`UnlearnkitError`; :func:`main` prints it as
one line on stderr and exits with code 2 (no traceback).
"""

from __future__ import annotations

import sys

from unlearnkit.cli.app import app, err_console
from unlearnkit.errors import UnlearnkitError

# Importing the command modules registers their commands on ``app``.
from unlearnkit.cli import data_cmd, train_cmd  # noqa: F401,E402


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``unlearnkit`` console script."""
    try:
        app(args=argv, prog_name="unlearnkit")
    except UnlearnkitError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
