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
from unlearnkit.errors import ConfigError, DataError, UnlearnkitError

TEST_FRACTION = 0.2
MIN_EXAMPLES = 2  # one to train on and one to test on, at the least
MAX_CLASSES = 100_000
OPTIONS = {"test_seed": 0}
USAGE = "npz:PATH.npz with arrays x, y and optionally x_test, y_test"


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """Check ``y`` is ``n`` non-negative integer labels (integral floats allowed); returns int64."""
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: '{key}' must have shape [{n}] to match the features, got {list(y.shape)}")
    integral = (np.issubdtype(y.dtype, np.integer) and not np.issubdtype(y.dtype, np.bool_)) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    )
    if not integral:
        raise DataError(f"{path}: '{key}' must hold integer class labels, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: '{key}' has negative labels; classes must be 0..K-1")
    if len(y) and float(y.max()) >= MAX_CLASSES:  # an absurd label would build an absurd output layer
        raise DataError(f"{path}: '{key}' has label {y.max():.0f}; at most {MAX_CLASSES} classes (labels 0..K-1)")
    return y.astype(np.int64)


def _features(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """Check ``x`` is a real-valued array ``[n, ...]`` with no empty dimension and finite values; returns float32."""
    numeric = x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.ndim < 2 or not numeric:
        raise DataError(f"{path}: '{key}' must be a real-valued array [n, ...], got {x.dtype} {list(x.shape)}")
    if 0 in x.shape[1:]:
        raise DataError(f"{path}: '{key}' has an empty feature dimension: shape {list(x.shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float32)
    bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1) if len(out) else np.zeros(0, bool)
    if bad.any():
        raise DataError(
            f"{path}: '{key}' holds NaN or infinite values (or values beyond float32) in {int(bad.sum())} "
            f"row(s), the first at row {int(np.argmax(bad))}; clean or drop them"
        )
    return out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every member of the file as an array; pickled objects and non-array members are refused."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy file, not an archive
            raise DataError(f"{path}: a single array, not an .npz archive; expected {USAGE}")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except UnlearnkitError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path}: holds pickled objects, which are never loaded (arrays must be numeric)") from None
        raise DataError(f"{path}: not a readable .npz file ({str(e).splitlines()[0]})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {str(e)[:100]})") from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):  # a member that is not in .npy format comes back as raw bytes
            raise DataError(f"{path}: member '{k}' is not a NumPy array (.npy); expected {USAGE}")
    return arrays


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
            raise ConfigError("npz needs a file: " + USAGE)
        where = self.locate(data_root)
        if where is None:
            raise DataError(f"{self.full_name}: file not found; looked in {', '.join(self.search_paths(data_root))}")
        path = Path(where)
        arrays = _read_arrays(path)
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(missing)}; expected {USAGE}")
        if ("x_test" in arrays) != ("y_test" in arrays):
            raise DataError(f"{path}: give both x_test and y_test, or neither")
        x = _features(path, "x", arrays["x"])
        y = _labels(path, "y", arrays["y"], len(x))
        if len(x) < MIN_EXAMPLES:
            raise DataError(f"{path}: {len(x)} example(s) in 'x'; need at least {MIN_EXAMPLES} (to train and to test)")
        if "x_test" in arrays:
            x_te = _features(path, "x_test", arrays["x_test"])
            y_te = _labels(path, "y_test", arrays["y_test"], len(x_te))
            if len(x_te) == 0:
                raise DataError(f"{path}: 'x_test' has no rows; give test examples or leave x_test out")
            if x_te.shape[1:] != x.shape[1:]:
                raise DataError(f"{path}: x_test rows {list(x_te.shape[1:])} differ from x rows {list(x.shape[1:])}")
        else:
            tr, te = split_off_test(y, TEST_FRACTION, opts["test_seed"])
            x, y, x_te, y_te = x[tr], y[tr], x[te], y[te]
        if len(np.unique(y)) < 2:
            raise DataError(
                f"{path}: the training part has a single class ({int(y[0])}); a classifier and its "
                "unlearning need at least 2 classes"
            )
        num_classes = int(max(y.max(initial=0), y_te.max(initial=0)) + 1)
        return make_bundle(
            self.full_name, x, y, x_te, y_te,
            val_fraction=val_fraction, split_seed=split_seed, num_classes=num_classes,
        )
