"""``fashion-mnist`` and ``mnist``: the standard IDX files, gzipped or raw.

Files (each ``NAME`` or ``NAME.gz``): ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``.
Images become float32 ``[n, 1, 28, 28]`` in [0, 1] (``pad32``: zero-padded to
32x32; ``rgb``: repeated to 3 channels).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.data.base import SYSTEM_DATA_DIR, DataBundle, FileDataset, make_bundle, parse_options
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# train_size: keep the first N training images (0: all); the files are already shuffled, and a
# model that must memorize its training set (train accuracy ~1) fits a 10k subset on a CPU.
OPTIONS = {"pad32": False, "rgb": False, "train_size": 0}


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or raw) with ``ndim`` dimensions.

    Checks the magic number (``0x0000080N``) and that the data size matches the
    header; a wrong or truncated file raises a one-line error naming it.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UnlearnkitError(f"{path}: cannot read ({e})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UnlearnkitError(f"{path}: truncated IDX file ({len(raw)} bytes, no complete header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise UnlearnkitError(
            f"{path}: not a {ndim}-d unsigned-byte IDX file (magic {magic:#010x}, expected {0x0800 + ndim:#010x})"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = len(raw) - header
    if size != math.prod(dims):
        raise UnlearnkitError(
            f"{path}: truncated or wrong size ({size} data bytes, header {list(dims)} says {math.prod(dims)})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def to_images(raw: np.ndarray, pad32: bool, rgb: bool) -> np.ndarray:
    """uint8 ``[n, H, W]`` -> float32 ``[n, C, H', W']`` in [0, 1] (C = 3 if ``rgb``; 32x32 if ``pad32``)."""
    x = raw.astype(np.float32)[:, None] / 255.0
    if pad32:
        ph, pw = max(0, 32 - x.shape[2]), max(0, 32 - x.shape[3])
        x = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    if rgb:
        x = np.repeat(x, 3, axis=1)
    return x


class IdxDataset(FileDataset):
    """An MNIST-format dataset: 10 classes, 28x28 grey images in four IDX files."""

    def _file(self, directory: Path, stem: str) -> Path | None:
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                return directory / name
        return None

    def find_in(self, directory: Path) -> Path | None:
        return directory if all(self._file(directory, s) for s in FILES.values()) else None

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        opts = parse_options(self.name, options, OPTIONS)
        train_size = opts.pop("train_size")
        if train_size < 0:
            raise UnlearnkitError(f"{self.name}: option train_size must be >= 0 (0 keeps all), got {train_size}")
        where = self.require(data_root)
        arrays = {}
        for key, stem in FILES.items():
            arrays[key] = read_idx(self._file(where, stem), 3 if key.endswith("images") else 1)
        for split in ("train", "test"):
            xs, ys = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if len(xs) != len(ys):
                raise UnlearnkitError(
                    f"{where}: {split} images ({len(xs)}) and labels ({len(ys)}) differ in number"
                )
            if len(ys) and ys.max() >= 10:
                raise UnlearnkitError(f"{where}: {split} labels must be in 0..9, found {int(ys.max())}")
        keep = slice(0, train_size or None)
        return make_bundle(
            self.name,
            to_images(arrays["train_images"][keep], **opts),
            arrays["train_labels"][keep].astype(np.int64),
            to_images(arrays["test_images"], **opts),
            arrays["test_labels"].astype(np.int64),
            val_fraction=val_fraction,
            split_seed=split_seed,
            num_classes=10,
        )


DEBIAN_PACKAGE = "dataset-fashion-mnist"


def debian_apt_get() -> str | None:
    """Path of ``apt-get`` when running as root on Debian (so a package can be installed), else None."""
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        return None
    return shutil.which("apt-get")


@DATASETS.register("fashion-mnist")
class FashionMNIST(IdxDataset):
    name = "fashion-mnist"
    description = "Zalando's 70,000 28x28 clothing images, 10 classes (IDX files; options pad32, rgb)"
    how_to_get = f"get them with `unlearnkit data fetch fashion-mnist` (as root: apt-get install -y {DEBIAN_PACKAGE})"

    def fetch(self, data_root: str | None) -> str:
        """As root on Debian, install the ``dataset-fashion-mnist`` package; else say what to run."""
        if self.locate(data_root) is not None:
            return super().fetch(data_root)
        apt = debian_apt_get()
        if apt is None:
            raise UnlearnkitError(
                f"fashion-mnist: not found and cannot install it from here (needs root on Debian); run "
                f"`sudo apt-get install -y {DEBIAN_PACKAGE}`, or put the four IDX files in "
                f"$UNLEARNKIT_DATA/fashion-mnist/"
            )
        # The package lists may be stale on a fresh machine: update once if the first try fails.
        if subprocess.run([apt, "install", "-y", DEBIAN_PACKAGE]).returncode != 0:
            subprocess.run([apt, "update"])
            if subprocess.run([apt, "install", "-y", DEBIAN_PACKAGE]).returncode != 0:
                raise UnlearnkitError(f"fashion-mnist: `apt-get install -y {DEBIAN_PACKAGE}` failed (see above)")
        where = self.locate(data_root)
        if where is None:
            raise UnlearnkitError(f"fashion-mnist: installed {DEBIAN_PACKAGE} but found no files in {SYSTEM_DATA_DIR}")
        return f"fashion-mnist: installed {DEBIAN_PACKAGE} ({where})"


@DATASETS.register("mnist")
class MNIST(IdxDataset):
    name = "mnist"
    description = "LeCun's 70,000 28x28 handwritten digits, 10 classes (IDX files; options pad32, rgb)"
    how_to_get = (
        "MNIST cannot be downloaded here: copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into $UNLEARNKIT_DATA/mnist/ or --data-root"
    )
