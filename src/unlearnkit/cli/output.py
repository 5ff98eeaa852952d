"""Error and warning lines on stderr, printed as plain text.

Messages name paths and shapes such as ``runs/[abc]`` or ``[n, 3072]``; rich
would read the brackets as markup and drop them, so the message is never
parsed: only the ``error:`` prefix is styled. A message is always one line.
"""

from __future__ import annotations

from rich.text import Text

from unlearnkit.cli.app import err_console


def _line(prefix: str, style: str, message: str) -> None:
    one_line = " ".join(str(message).split("\n"))
    err_console.print(Text.assemble((prefix, style), one_line), highlight=False, soft_wrap=True, emoji=False)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr."""
    _line("error: ", "bold red", message)


def print_warning(message: str) -> None:
    """``warning: MESSAGE`` on stderr."""
    _line("warning: ", "bold yellow", message)
