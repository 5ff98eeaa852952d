"""File helpers: atomic writes, locks, hashing and index files.

Everything the toolkit writes goes to a temporary path first and is renamed
into place, so an interrupted command never leaves a half-written file, and
every OSError on the way becomes one line naming the path and the cause
(:func:`os_error`). A directory written by several commands in turn (a run
directory, a bench directory) is guarded by a :class:`DirLock`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from unlearnkit.errors import BusyError, DataError, OutputError, UnlearnkitError

if TYPE_CHECKING:  # pandas is imported by the callers that have frames; CLI start-up stays light
    import pandas as pd


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_indices(indices: np.ndarray | list[int]) -> str:
    """Hash of a sorted index list; identifies a forget or exclude set."""
    arr = np.asarray(sorted(int(i) for i in indices), dtype=np.int64)
    return hashlib.sha256(arr.tobytes()).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def os_error(e: OSError, path: str | Path | None = None, action: str | None = "write") -> OutputError:
    """The one-line error for an OSError: the path, what could not be done (if known), and why.

    Every writer here raises through this, and the CLI turns any OSError that
    reaches it into this line, so a read-only directory, a missing permission or
    a full disk never shows a traceback.
    """
    where = path if path is not None else (e.filename or "?")
    if e.errno == errno.ENOSPC:
        cause = "no space left on device"
    else:
        cause = e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
    return OutputError(f"{where}: cannot {action} ({cause})" if action else f"{where}: {cause}")


@contextlib.contextmanager
def reporting(path: str | Path, action: str = "write") -> Iterator[None]:
    """Turn an OSError raised in the body into :func:`os_error`'s one-line error naming ``path``."""
    try:
        yield
    except OSError as e:
        raise os_error(e, path, action) from None


def check_new_file(path: str | Path, overwrite: bool) -> None:
    """Refuse to replace an existing file unless ``overwrite`` (checked before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; pass --overwrite to replace it")


# Temporary names carry their owner (host and pid), so a later writer can tell the
# leftovers of a killed process from a live writer's files and remove only the former.
_HOST = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
_INT_RE = re.compile(r"^[+-]?[0-9]+\Z")
_UMASK = os.umask(0)
os.umask(_UMASK)


def _tag() -> str:
    return f"{_HOST}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


# .NAME.HOST-PID.tmp | .NAME.HOST-PID.RANDOM.tmp | .NAME.HOST-PID.old | .NAME.HOST-PID.stale
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)-(?P<pid>\d+)\.(?:\w+\.)?(?:tmp|old|stale)$")


def sweep_stale_temps(directory: str | Path, name: str | None = None) -> list[Path]:
    """Remove temporaries in ``directory`` (of ``name`` only, if given) left by dead processes.

    A process killed with SIGKILL cannot clean up after itself; the next writer
    of the same path (or the next bench over the same directory) does it. Only
    this host's temporaries whose process is gone are touched; a directory set
    aside for replacement whose replacement never arrived is restored instead.
    Returns what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if not m or (name is not None and m["name"] != name) or m["host"] != _HOST:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        target = p.with_name(m["name"])
        if p.name.endswith(".old") and not target.exists():
            # Killed between atomic_dir's two renames: this is the previous version; put it back.
            with contextlib.suppress(OSError):
                os.replace(p, target)
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
    return removed


def remove_stale_temps(path: Path) -> list[Path]:
    """:func:`sweep_stale_temps` for the temporaries of one ``path``."""
    return sweep_stale_temps(path.parent, path.name)


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The one primitive behind every writer here; modules writing their own formats
    (memorization blocks, report figures) use it directly. An OSError (read-only
    directory, disk full, ...) becomes a one-line :class:`OutputError` naming
    ``path``; nothing is left behind and an existing ``path`` is untouched.
    """
    path = Path(path)
    with reporting(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; cannot write a file there")
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_tag()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_parquet(path: str | Path, df: "pd.DataFrame") -> None:
    """Write a DataFrame to Parquet, atomically."""
    atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write raw bytes, atomically (e.g. a fetched data file)."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def read_parquet(path: str | Path) -> "pd.DataFrame":
    """Read a Parquet table; a missing, unreadable or corrupted file is a one-line :class:`DataError`."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet table ({(str(e).splitlines() or ['?'])[0][:120]})") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's contents; a missing, unreadable or binary file is a one-line :class:`DataError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as e:
        raise DataError(str(os_error(e, path, "read"))) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file (byte {e.start})") from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file; missing, unreadable or invalid JSON is a one-line :class:`DataError`."""
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, marker: str = "run.json") -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``out`` on success.

    Refuses an ``out`` that already holds ``marker`` unless ``overwrite``. If the
    body raises (including Ctrl-C), the temporary directory is removed and any
    existing ``out`` is untouched; temporaries of killed processes are removed
    by the next writer of ``out``. An OSError becomes a one-line :class:`OutputError`.
    """
    out = Path(out)
    with reporting(out):
        remove_stale_temps(out)  # first: it may restore an ``out`` a killed writer had set aside
        if out.exists():
            if not out.is_dir():
                raise OutputError(f"{out}: exists and is not a directory")
            if any(out.iterdir()) and not overwrite:
                what = "a run" if (out / marker).exists() else "files"
                raise OutputError(f"{out}: already holds {what}; pass --overwrite to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{_tag()}.", suffix=".tmp", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    try:
        try:
            yield tmp
        except UnlearnkitError as e:  # name the files where they were to appear, not the temporary
            if str(tmp) in str(e):
                e.args = (str(e).replace(str(tmp), str(out)),)
            raise
        with reporting(out):
            if out.exists():
                old = out.with_name(f".{out.name}.{_tag()}.old")
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _index_items(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """(entries, provenance) of an index file; a JSON string entry comes back as ``(str,)``, never valid."""
    if path.suffix == ".json":
        obj = read_json(path, "index file")
        if isinstance(obj, list):
            raw, meta = obj, {}
        elif isinstance(obj, dict) and "indices" in obj:
            raw, meta = obj["indices"], {k: v for k, v in obj.items() if k != "indices"}
        else:
            raise DataError(f'{path}: expected a JSON list or an object with "indices"')
        if not isinstance(raw, list):
            raise DataError(f'{path}: "indices" must be a JSON list of integers, got {type(raw).__name__}')
        # JSON entries must be numbers: a string there is a mistake, not a spelling of an index.
        return [(v,) if isinstance(v, str) else v for v in raw], meta
    lines = [ln.strip() for ln in read_text(path, "index file").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")], {}


def read_index_file(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a forget/exclude file: ``.txt`` (one index a line, ``#`` comments) or ``.json``.

    Returns (sorted unique int64 indices, provenance dict). Anything but a list
    of distinct non-negative integers is a one-line :class:`DataError` naming
    the first bad entry; range checks need the dataset and are done by
    :func:`unlearnkit.data.DataBundle.positions`.
    """
    path = Path(path)
    items, meta = _index_items(path)
    values = []
    for n, v in enumerate(items, 1):
        iv = _as_index(v)
        if iv is None:
            raise DataError(f"{path}: entry {n} ({_show(v)}) is not an integer index")
        if iv < 0:
            raise DataError(f"{path}: entry {n} ({iv}) is negative; indices count from 0")
        values.append(iv)
    arr = np.asarray(values, dtype=np.int64)
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise DataError(f"{path}: duplicate indices {dup}")
    return uniq, meta


def _show(v: Any) -> str:
    """A short rendering of a bad entry for an error message."""
    try:
        text = json.dumps(v[0] if isinstance(v, tuple) else v, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _as_index(v: Any) -> int | None:
    """``v`` as an int64-sized integer (JSON int, integral float, or decimal digits), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        iv = int(v) if v.is_integer() else None
    elif isinstance(v, int):
        iv = v
    elif isinstance(v, str) and _INT_RE.match(v):
        iv = int(v)
    else:
        return None
    return iv if iv is not None and -(2**63) <= iv < 2**63 else None


def write_index_file(path: str | Path, indices: np.ndarray | list[int], meta: dict[str, Any] | None = None) -> None:
    """Write indices as ``.txt`` or ``.json`` (with provenance) by the suffix."""
    path = Path(path)
    idx = sorted(int(i) for i in indices)
    if path.suffix == ".json":
        write_json(path, {"indices": idx, **(meta or {})})
    else:
        text = "".join(f"{i}\n" for i in idx)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# errno values of a file system that does not do hard links
_NO_LINK = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


class DirLock:
    """A lock file ``DIRECTORY/NAME`` held while one process writes the directory.

    The file holds the owner's pid, host and start time and appears with its
    content in one step (written to a temporary name, then hard-linked into
    place), so a crash or a full disk never leaves a half-written lock. A lock
    that is empty, unreadable or not the JSON written here, or whose owner on
    this host is no longer running, is stale and taken over (``notify`` is told).
    A live owner's lock, or one from another host (which cannot be checked),
    makes :meth:`acquire` wait up to ``wait`` seconds and then raise
    :class:`BusyError` naming the owner.
    """

    settle = 0.2  # seconds to look again at an invalid lock before calling it stale

    def __init__(
        self,
        directory: str | Path,
        name: str = "run.lock",
        *,
        what: str = "process",
        wait: float = 0.0,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(directory) / name
        self.what = what
        self.wait = wait
        self.notify = notify or (lambda msg: None)
        self.held = False

    def _info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def _create(self) -> bool:
        """Put the lock file in place if there is none; False if one exists."""
        text = json.dumps(self._info())
        # Unique per call: threads of one process share the pid tag, and must not share the file.
        tmp = self.path.with_name(f".{self.path.name}.{_tag()}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_text(text)  # a full disk fails here, before any lock file exists
            try:
                os.link(tmp, self.path)  # fails if the lock exists; never shows a partial file
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in _NO_LINK:
                    raise
            return self._create_exclusive(text)
        finally:
            tmp.unlink(missing_ok=True)

    def _create_exclusive(self, text: str) -> bool:
        """For file systems without hard links: exclusive create, then write (removed if that fails)."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        return True

    def _read(self) -> bytes | None:
        """The lock file's bytes; None when there is none (b"" when it cannot be read)."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return b""

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        """The holder's record; None when the bytes are not a lock written here (stale)."""
        try:
            owner = json.loads(raw)
        except (ValueError, RecursionError):  # empty, binary, not JSON
            return None
        pid = owner.get("pid") if isinstance(owner, dict) else None
        ok = type(pid) is int and pid > 0 and isinstance(owner.get("host"), str)
        return owner if ok else None

    def _take_over(self, seen: bytes, why: str) -> None:
        """Remove the stale lock whose bytes were ``seen``, unless another process replaced it meanwhile."""
        self.notify(f"{self.path}: taking over {why}")
        grave = self.path.with_name(f".{self.path.name}.{_tag()}.{secrets.token_hex(4)}.stale")
        try:
            os.replace(self.path, grave)
        except FileNotFoundError:
            return
        try:
            if grave.read_bytes() != seen:  # a fresh lock taken in between: put it back
                with contextlib.suppress(FileExistsError):
                    os.link(grave, self.path)
        finally:
            grave.unlink(missing_ok=True)

    def acquire(self) -> None:
        with reporting(self.path, "create the lock"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.path)
            deadline = time.monotonic() + self.wait
            waited = False
            while True:
                if self._create():
                    self.held = True
                    return
                raw = self._read()
                if raw is None:  # released between our two looks
                    continue
                owner = self._parse(raw)
                if owner is None:
                    time.sleep(self.settle)  # the no-hard-link fallback writes after creating: look again
                    raw = self._read()
                    if raw is None:
                        continue
                    owner = self._parse(raw)
                if owner is None:
                    self._take_over(raw, "an invalid lock file (empty, unreadable or not a lock)")
                    continue
                pid, host = owner["pid"], owner["host"]
                if host == socket.gethostname() and not pid_alive(pid):
                    self._take_over(raw, f"a stale lock of pid {pid} (no longer running)")
                    continue
                if time.monotonic() >= deadline:
                    if waited:
                        raise BusyError(
                            f"{self.path.parent}: another {self.what} (pid {pid} on {host}) still holds {self.path} "
                            f"after {self.wait:.0f} s; delete that file if the process is stuck"
                        )
                    raise BusyError(
                        f"{self.path.parent}: another {self.what} (pid {pid} on {host}, started "
                        f"{owner.get('started', '?')}) is writing here; wait for it, or delete {self.path} "
                        "if that process is gone"
                    )
                if not waited:
                    self.notify(f"{self.path.parent}: waiting for another {self.what} (pid {pid} on {host}) "
                                f"to finish, at most {self.wait:.0f} s")
                    waited = True
                time.sleep(0.1)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "DirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
