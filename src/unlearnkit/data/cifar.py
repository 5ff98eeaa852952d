"""``cifar10`` and ``cifar100``: the official python-version layout in a local directory.

``cifar-10-batches-py/`` holds ``data_batch_1..5``, ``test_batch`` and
``batches.meta``; ``cifar-100-python/`` holds ``train``, ``test`` and ``meta``
(fine labels are used). Each file is a pickled dict with ``b"data"`` (uint8
``[n, 3072]``, channel-major 3x32x32) and ``b"labels"`` / ``b"fine_labels"``.
The pickles are read with a restricted unpickler that can only rebuild numpy
arrays, lists and dicts, so a tampered file cannot execute code.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.data.base import DataBundle, FileDataset, make_bundle, parse_options
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError

# Everything a pickled numpy array needs (numpy 1.x and 2.x spellings), and nothing else.
_RECONSTRUCT = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
_FROMBUFFER = np._core.numeric._frombuffer if hasattr(np, "_core") else np.core.numeric._frombuffer
SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1"): a pure function.
    ("_codecs", "encode"): codecs.encode,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy array constructors in :data:`SAFE_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnlearnkitError(
                f"refusing to unpickle {module}.{name}: only numpy arrays, lists and dicts are allowed"
            ) from None


def read_batch(path: str | Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file -> (uint8 images ``[n, 3, 32, 32]``, int64 labels ``[n]``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except UnlearnkitError as e:
        raise UnlearnkitError(f"{path}: {e}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError) as e:
        raise UnlearnkitError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or b"data" not in obj or label_key not in obj:
        raise UnlearnkitError(f"{path}: expected a dict with b'data' and {label_key!r}")
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UnlearnkitError(f"{path}: b'data' must be uint8 [n, 3072], got {data.dtype} {list(data.shape)}")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise UnlearnkitError(f"{path}: {label_key!r} must be {len(data)} integer labels")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class CifarDataset(FileDataset):
    """A CIFAR-format dataset: the files of one official python-version directory."""

    subdir: str = ""
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    label_key: bytes = b"labels"
    num_classes: int = 10

    def find_in(self, directory: Path) -> Path | None:
        for d in (directory / self.subdir, directory):
            if all((d / f).is_file() for f in self.train_files + self.test_files):
                return d
        return None

    def _read(self, where: Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [read_batch(where / f, self.label_key) for f in files]
        x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
        y = np.concatenate([p[1] for p in parts])
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise UnlearnkitError(f"{where}: labels must be in 0..{self.num_classes - 1}")
        return x, y

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        parse_options(self.name, options, {})
        where = self.require(data_root)
        x_tr, y_tr = self._read(where, self.train_files)
        x_te, y_te = self._read(where, self.test_files)
        return make_bundle(
            self.name, x_tr, y_tr, x_te, y_te,
            val_fraction=val_fraction, split_seed=split_seed, num_classes=self.num_classes,
        )


@DATASETS.register("cifar10")
class Cifar10(CifarDataset):
    name = "cifar10"
    description = "60,000 32x32 colour images, 10 classes (official python-version files)"
    subdir = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    how_to_get = (
        "CIFAR-10 cannot be downloaded here: unpack cifar-10-python.tar.gz (cifar-10-batches-py/) "
        "into $UNLEARNKIT_DATA/cifar10/ or --data-root"
    )


@DATASETS.register("cifar100")
class Cifar100(CifarDataset):
    name = "cifar100"
    description = "60,000 32x32 colour images, 100 fine classes (official python-version files)"
    subdir = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    label_key = b"fine_labels"
    num_classes = 100
    how_to_get = (
        "CIFAR-100 cannot be downloaded here: unpack cifar-100-python.tar.gz (cifar-100-python/) "
        "into $UNLEARNKIT_DATA/cifar100/ or --data-root"
    )
