"""The lock that keeps two bench processes from writing the same directory.

``DIR/bench.lock`` holds the owner's pid, host and start time. A second
process refuses with a message naming the owner; a lock left by a dead
process on this host, or one that is empty or not a lock file (a crash or a
full disk), is taken over (and the caller is told so). A lock from another
host cannot be checked and is never taken over. The mechanism is
:class:`unlearnkit.io.DirLock`, the same one that guards run directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from unlearnkit.io import DirLock, sweep_stale_temps

LOCK = "bench.lock"


class BenchLock(DirLock):
    """Context manager holding ``DIR/bench.lock`` for the duration of a bench (refuses at once when held).

    On taking the lock it removes what killed runs left behind: temporary unit
    directories (``units/KIND/.KEY.HOST-PID.*.tmp``) of processes that are gone.
    """

    def __init__(self, directory: str | Path, notify: Callable[[str], None] | None = None) -> None:
        super().__init__(directory, LOCK, what="bench", notify=notify)

    def acquire(self) -> None:
        super().acquire()
        root = self.path.parent
        removed = sweep_stale_temps(root)
        for kind in (root / "units").glob("*/"):
            removed += sweep_stale_temps(kind)
        if removed:
            self.notify(f"{root}: removed {len(removed)} temporary file(s) left by killed runs")
