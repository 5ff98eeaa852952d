"""File helpers: atomic writes, hashing and index files.

Everything the toolkit writes goes to a temporary path first and is renamed
into place, so an interrupted command never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from unlearnkit.errors import UnlearnkitError


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


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The one primitive behind every writer here; modules writing their own formats
    (memorization blocks, report figures) use it directly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    """Write a DataFrame to Parquet, atomically."""
    atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write raw bytes, atomically (e.g. a fetched data file)."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise UnlearnkitError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnlearnkitError(f"{path}: not valid JSON ({e})") from None


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, marker: str = "run.json") -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``out`` on success.

    Refuses an ``out`` that already holds ``marker`` unless ``overwrite``. If the
    body raises (including Ctrl-C), the temporary directory is removed and any
    existing ``out`` is untouched.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UnlearnkitError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not overwrite:
            what = "a run" if (out / marker).exists() else "files"
            raise UnlearnkitError(f"{out}: already holds {what}; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_index_file(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a forget/exclude file: ``.txt`` (one index a line) or ``.json``.

    Returns (sorted unique int64 indices, provenance dict). Raises on
    non-integer or duplicate entries; range checks need the dataset and are
    done by :func:`unlearnkit.data.DataBundle.positions`.
    """
    path = Path(path)
    if not path.exists():
        raise UnlearnkitError(f"{path}: index file not found")
    meta: dict[str, Any] = {}
    if path.suffix == ".json":
        obj = read_json(path)
        if isinstance(obj, list):
            raw = obj
        elif isinstance(obj, dict) and "indices" in obj:
            raw = obj["indices"]
            meta = {k: v for k, v in obj.items() if k != "indices"}
        else:
            raise UnlearnkitError(f'{path}: expected a JSON list or an object with "indices"')
        items = [(str(v), v) for v in raw]
    else:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        items = [(ln, ln) for ln in lines if ln and not ln.startswith("#")]
    values = []
    for lineno, (text, v) in enumerate(items, 1):
        if isinstance(v, bool) or isinstance(v, float) and not v.is_integer():
            raise UnlearnkitError(f"{path}: entry {lineno} ({text!r}) is not an integer index")
        try:
            iv = int(v)
            if isinstance(v, str) and str(iv) != v.lstrip("+"):
                raise ValueError
        except (TypeError, ValueError):
            raise UnlearnkitError(f"{path}: entry {lineno} ({text!r}) is not an integer index") from None
        values.append(iv)
    arr = np.asarray(values, dtype=np.int64)
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise UnlearnkitError(f"{path}: duplicate indices {dup}")
    return uniq, meta


def write_index_file(path: str | Path, indices: np.ndarray | list[int], meta: dict[str, Any] | None = None) -> None:
    """Write indices as ``.txt`` or ``.json`` (with provenance) by the suffix."""
    path = Path(path)
    idx = sorted(int(i) for i in indices)
    if path.suffix == ".json":
        write_json(path, {"indices": idx, **(meta or {})})
    else:
        text = "".join(f"{i}\n" for i in idx)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
