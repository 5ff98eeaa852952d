"""The DataBundle every loader returns, and the deterministic validation split."""

from __future__ import annotations

from dataclasses import dataclass, field
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
