"""A lock file so that two bench processes never write the same directory.

``DIR/bench.lock`` holds the owner's pid, host and start time. A second
process refuses with a message naming the owner; a lock left by a dead
process on this host is taken over (and the caller is told so). A lock from
another host cannot be checked and is never taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

from unlearnkit.errors import UnlearnkitError

LOCK = "bench.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class BenchLock:
    """Context manager holding ``DIR/bench.lock`` for the duration of a bench."""

    def __init__(self, directory: str | Path, notify: Callable[[str], None] | None = None) -> None:
        self.path = Path(directory) / LOCK
        self.notify = notify or (lambda msg: None)
        self.held = False

    def _create(self) -> bool:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return True

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # a second try after removing a stale lock
            if self._create():
                self.held = True
                return
            try:
                owner = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                owner = {}
            pid, host = owner.get("pid"), owner.get("host", "?")
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                self.notify(f"{self.path}: taking over a stale lock of pid {pid} (no longer running)")
                self.path.unlink(missing_ok=True)
                continue
            raise UnlearnkitError(
                f"{self.path.parent}: another bench (pid {pid} on {host}, started {owner.get('started', '?')}) "
                f"is writing here; wait for it, or delete {self.path} if that process is gone"
            )
        raise UnlearnkitError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "BenchLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
