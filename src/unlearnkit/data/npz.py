"""``npz:<path>``: a user's own arrays in a NumPy ``.npz`` file.

Keys: ``x`` (``[n, ...]`` features or images), ``y`` (``[n]`` integer labels
``>= 0``) and optionally ``x_test``, ``y_test``. Without a test part, 20% is
split off, stratified when every class has two or more members, seeded by
``test_seed`` (option, default 0). ``x`` is returned as float32. The file is
opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.data.base import DataBundle, Dataset, make_bundle, parse_options, split_off_test
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError

TEST_FRACTION = 0.2
OPTIONS = {"test_seed": 0}
USAGE = "npz:PATH.npz with arrays x, y and optionally x_test, y_test"


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """Check ``y`` is ``n`` non-negative integer labels (integral floats allowed); returns int64."""
    if y.ndim != 1 or len(y) != n:
        raise UnlearnkitError(f"{path}: '{key}' must have shape [{n}] to match the features, got {list(y.shape)}")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    )
    if not integral or np.issubdtype(y.dtype, np.bool_):
        raise UnlearnkitError(f"{path}: '{key}' must hold integer class labels, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise UnlearnkitError(f"{path}: '{key}' has negative labels; classes must be 0..K-1")
    return y.astype(np.int64)


def _features(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim < 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise UnlearnkitError(f"{path}: '{key}' must be a numeric array [n, ...], got {x.dtype} {list(x.shape)}")
    return x.astype(np.float32)


@DATASETS.register("npz")
class Npz(Dataset):
    name = "npz"
    description = "your own arrays: " + USAGE

    def search_paths(self, data_root: str | None) -> list[str]:
        if not self.arg:
            return []
        p = Path(self.arg).expanduser()
        relative = [str(Path(data_root) / p)] if data_root and not p.is_absolute() else []
        return relative + [str(p)]

    def locate(self, data_root: str | None) -> str | None:
        return next((p for p in self.search_paths(data_root) if Path(p).is_file()), None)

    def availability(self, data_root: str | None) -> tuple[bool, str]:
        if not self.arg:
            return True, "usage: " + USAGE
        return super().availability(data_root)

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        opts = parse_options(self.full_name, options, OPTIONS)
        if not self.arg:
            raise UnlearnkitError("npz needs a file: " + USAGE)
        where = self.locate(data_root)
        if where is None:
            raise UnlearnkitError(f"{self.full_name}: file not found; looked in {', '.join(self.search_paths(data_root))}")
        path = Path(where)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise UnlearnkitError(f"{path}: not a readable .npz file ({str(e).splitlines()[0]})") from None
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise UnlearnkitError(f"{path}: missing array(s) {', '.join(missing)}; expected {USAGE}")
        if ("x_test" in arrays) != ("y_test" in arrays):
            raise UnlearnkitError(f"{path}: give both x_test and y_test, or neither")
        x = _features(path, "x", arrays["x"])
        y = _labels(path, "y", arrays["y"], len(x))
        if "x_test" in arrays:
            x_te = _features(path, "x_test", arrays["x_test"])
            y_te = _labels(path, "y_test", arrays["y_test"], len(x_te))
            if x_te.shape[1:] != x.shape[1:]:
                raise UnlearnkitError(f"{path}: x_test rows {list(x_te.shape[1:])} differ from x rows {list(x.shape[1:])}")
        else:
            tr, te = split_off_test(y, TEST_FRACTION, opts["test_seed"])
            x, y, x_te, y_te = x[tr], y[tr], x[te], y[te]
        num_classes = int(max(y.max(initial=0), y_te.max(initial=0)) + 1)
        return make_bundle(
            self.full_name, x, y, x_te, y_te,
            val_fraction=val_fraction, split_seed=split_seed, num_classes=num_classes,
        )
