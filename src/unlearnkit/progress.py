"""The one progress bar of every long loop (training, scoring, executors).

It sits at the bottom of the house (it imports only rich) so that low layers
such as :mod:`unlearnkit.parallel` can show progress without importing the
training loop.
"""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(quiet: bool) -> Progress:
    """The rich progress bar used by every long loop; ``quiet`` disables it.

    Tasks added to it carry an ``info`` field (free text shown after the count).
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=True,
    )
