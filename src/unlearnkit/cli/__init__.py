"""Command-line interface: thin typer commands over the Python API.

Each ``*_cmd.py`` module in this package registers its commands on ``app``
(imported automatically). Every expected failure is an
:class:`UnlearnkitError`; :func:`main` prints it as one line on stderr and
exits with code 2 (no traceback), and does the same for an OSError (a
directory that cannot be written or read, a full disk).
"""

from __future__ import annotations

import sys

import typer

from unlearnkit.cli.app import app
from unlearnkit.cli.output import print_error
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import os_error
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__, suffix="_cmd")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``unlearnkit`` console script."""
    try:
        # Non-standalone so that usage errors (unknown option, bad value) reach us and are
        # printed as one line too, instead of typer's boxed panel.
        code = app(args=argv, prog_name="unlearnkit", standalone_mode=False)
    except UnlearnkitError as e:
        print_error(str(e))
        sys.exit(2)
    except OSError as e:  # one not met by a writer of ours (e.g. a directory we only read): still one line
        print_error(str(os_error(e, action=None)))
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors
        if type(e).__name__ != "NoArgsIsHelpError":  # that one has already printed the help
            message = e.format_message() if hasattr(e, "format_message") else str(e)
            print_error(message)
        sys.exit(getattr(e, "exit_code", 2))
    if isinstance(code, int) and code:  # typer.Exit(code) and Ctrl-C (130) come back as a code
        sys.exit(code)


__all__ = ["app", "main"]
