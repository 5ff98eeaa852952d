"""The DataBundle every loader returns, and the deterministic validation split."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.errors import UnlearnkitError


@dataclass
class DataBundle:
    """Train / validation / test tensors of one dataset.

    ``x_*`` are float32 tensors ``[n, *input_shape]`` (images ``[n, C, H, W]``,
    tabular ``[n, d]``) or int64 token ids ``[n, L]`` for text (0 = padding).
    ``y_*`` are int64 labels in ``[0, num_classes)``.
    ``index_train`` / ``index_val`` are int64 positions in the dataset's
    original training set; ``index_train`` is sorted ascending. Forget and
    exclude files speak in these indices.
    ``state`` holds what was fitted on the training split (e.g. a text
    vocabulary); it is saved with a run so the data can be rebuilt exactly.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    index_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    index_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    spec: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_text(self) -> bool:
        return not self.x_train.is_floating_point()

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def positions(self, indices: np.ndarray | list[int], what: str = "index") -> np.ndarray:
        """Row positions in ``x_train`` of original training indices.

        Raises a one-line error for indices that are outside the training set
        or that fall in the validation split.
        """
        idx = np.asarray(indices, dtype=np.int64)
        train_idx = self.index_train.numpy()
        pos = np.searchsorted(train_idx, idx)
        pos_c = np.clip(pos, 0, len(train_idx) - 1)
        ok = train_idx[pos_c] == idx
        if not ok.all():
            bad = idx[~ok]
            val = set(self.index_val.numpy().tolist())
            in_val = [int(b) for b in bad if int(b) in val]
            if in_val:
                raise UnlearnkitError(
                    f"{what} {in_val[:5]} belong to the validation split of {self.name}, not the training set"
                )
            total = len(train_idx) + len(val)
            raise UnlearnkitError(
                f"{what} {bad[:5].tolist()} are outside the training set of {self.name} (valid: 0..{total - 1})"
            )
        return pos_c

    def complement(self, positions: np.ndarray) -> np.ndarray:
        """Row positions of the training set not in ``positions`` (e.g. the retain set)."""
        mask = np.ones(self.n_train, dtype=bool)
        mask[np.asarray(positions, dtype=np.int64)] = False
        return np.nonzero(mask)[0]


def split_validation(
    n: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically split ``range(n)`` into sorted (train, validation) positions."""
    if not 0.0 <= val_fraction < 1.0:
        raise UnlearnkitError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def make_bundle(
    name: str,
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    x_test: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    val_fraction: float,
    split_seed: int,
    num_classes: int | None = None,
    spec: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> DataBundle:
    """Carve the validation split out of the full training set and build the bundle."""
    xt = torch.as_tensor(x_train)
    yt = torch.as_tensor(y_train, dtype=torch.int64)
    tr, va = split_validation(len(yt), val_fraction, split_seed)
    if num_classes is None:
        num_classes = int(max(int(yt.max()), int(torch.as_tensor(y_test).max())) + 1)
    return DataBundle(
        name=name,
        x_train=xt[tr],
        y_train=yt[tr],
        index_train=torch.as_tensor(tr, dtype=torch.int64),
        x_val=xt[va],
        y_val=yt[va],
        index_val=torch.as_tensor(va, dtype=torch.int64),
        x_test=torch.as_tensor(x_test),
        y_test=torch.as_tensor(y_test, dtype=torch.int64),
        num_classes=num_classes,
        spec=dict(spec or {}),
        state=dict(state or {}),
    )


class Dataset:
    """A registered dataset: how to find its files, load them and (maybe) fetch them.

    Subclasses set ``name``/``description`` and implement :meth:`load`; file-based
    ones also implement :meth:`search_paths`. ``arg`` is the part after ``:`` in
    parametrised names such as ``tabular:wine`` or ``npz:/path/file.npz``.
    """

    name: str = ""
    description: str = ""

    def __init__(self, arg: str | None = None) -> None:
        self.arg = arg

    @property
    def full_name(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name

    def search_paths(self, data_root: str | None) -> list[str]:
        """Directories looked in, in order; empty for datasets bundled with a package."""
        return []

    def locate(self, data_root: str | None) -> str | None:
        """The directory or file holding the data, or None if it is not available."""
        return "bundled"

    def availability(self, data_root: str | None) -> tuple[bool, str]:
        """(available, where found or where looked) for ``unlearnkit data list``."""
        where = self.locate(data_root)
        if where is not None:
            return True, where
        return False, "looked in: " + ", ".join(self.search_paths(data_root))

    def load(
        self,
        data_root: str | None,
        val_fraction: float,
        split_seed: int,
        state: dict[str, Any] | None = None,
        **options: Any,
    ) -> DataBundle:
        raise NotImplementedError

    def fetch(self, data_root: str | None) -> str:
        """Obtain the data if it can be obtained here; returns what was done."""
        ok, where = self.availability(data_root)
        if ok:
            return f"{self.full_name}: already available ({where})"
        raise UnlearnkitError(f"{self.full_name}: cannot be fetched automatically; {where}")


# Where file-based datasets are looked for, after --data-root and $UNLEARNKIT_DATA.
DATA_ENV = "UNLEARNKIT_DATA"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unlearnkit`` (default ``~/.cache/unlearnkit``): where ``data fetch`` puts files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unlearnkit"


def parse_options(dataset: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Check a loader's options against ``defaults`` and coerce CLI strings to their types.

    ``defaults`` maps each valid option to its default (its type gives the
    coercion: ``"true"``/``"1"`` -> True for bools, ``"32"`` -> 32 for ints).
    Coercion is idempotent, so options recorded in run.json load again.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise UnlearnkitError(f"{dataset}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")
    out = dict(defaults)
    for key, value in options.items():
        kind = type(defaults[key])
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError
                value = value.lower() in ("1", "true", "yes")
            elif kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
                raise ValueError
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise UnlearnkitError(f"{dataset}: option {key}={value!r} is not a valid {kind.__name__}") from None
    return out


def split_off_test(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) positions of ``y [n]``, stratified by label when every class has 2+ members.

    Used by datasets without an official test split; sorting keeps the original
    order so training indices follow the source file.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and round(len(y) * fraction) >= len(counts) else None
    tr, te = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(te)


class FileDataset(Dataset):
    """A dataset read from files, looked for in a fixed order of directories.

    Order: ``<data_root>/<name>/``, ``<data_root>/``, ``$UNLEARNKIT_DATA/<name>/``,
    ``$UNLEARNKIT_DATA/``, ``<cache_dir()>/<name>/``, ``/usr/share/datasets/<name>/``.
    Subclasses implement :meth:`find_in` and set ``how_to_get`` (one line).
    """

    how_to_get: str = ""

    def search_paths(self, data_root: str | None) -> list[str]:
        dirs: list[Path] = []
        for base in (data_root, os.environ.get(DATA_ENV)):
            if base:
                dirs += [Path(base) / self.name, Path(base)]
        dirs += [cache_dir() / self.name, SYSTEM_DATA_DIR / self.name]
        return list(dict.fromkeys(str(d) for d in dirs))

    def find_in(self, directory: Path) -> Path | None:
        """The location of the data inside ``directory`` (itself or a subdirectory), or None."""
        raise NotImplementedError

    def locate(self, data_root: str | None) -> str | None:
        for d in self.search_paths(data_root):
            found = self.find_in(Path(d)) if Path(d).is_dir() else None
            if found is not None:
                return str(found)
        return None

    def require(self, data_root: str | None) -> Path:
        """The located data, or a one-line error saying where it looked and how to get it."""
        where = self.locate(data_root)
        if where is None:
            raise UnlearnkitError(
                f"{self.name}: data files not found; looked in {', '.join(self.search_paths(data_root))}; "
                f"{self.how_to_get}"
            )
        return Path(where)

    def fetch(self, data_root: str | None) -> str:
        """Files that cannot be downloaded here: report where they are, or how to get them."""
        where = self.locate(data_root)
        if where is not None:
            return f"{self.name}: already available ({where})"
        raise UnlearnkitError(f"{self.name}: not found; {self.how_to_get}")
