"""The ForgetSet type: sorted unique training indices plus how they were chosen.

Files are ``.txt`` (one original training index a line) or ``.json``
(``{"indices": [...], "kind": ..., ...provenance}``); every command accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.data.base import DataBundle, check_seed
from unlearnkit.errors import ConfigError, DataError
from unlearnkit.io import read_index_file, sha256_indices, write_index_file


@dataclass
class ForgetSet:
    """``indices``: sorted unique int64 original training indices.
    ``meta``: provenance (kind, size, seed, score, level, es, ...)."""

    indices: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        self.indices = np.unique(np.asarray(self.indices, dtype=np.int64))

    def __len__(self) -> int:
        return int(len(self.indices))

    @property
    def sha256(self) -> str:
        return sha256_indices(self.indices)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "custom"))

    def positions(self, data: DataBundle) -> np.ndarray:
        """Row positions in ``data.x_train``; raises for out-of-range or validation indices."""
        return data.positions(self.indices, what="forget indices")

    def check(self, data: DataBundle) -> np.ndarray:
        """Validate against ``data`` (non-empty, inside the training split); returns positions."""
        if len(self) == 0:
            raise DataError(f"{self.source or 'forget set'}: the forget set is empty")
        return self.positions(data)


def check_trained_on(forget: ForgetSet, excluded: np.ndarray, where: str = "the model") -> None:
    """Refuse forget indices the model never trained on (``excluded``: its run's excluded indices).

    Unlearning what was never learned is a mistake that would pass silently: the
    forget accuracy would already look like a retrained model's, and an exact
    method's result would be mislabelled as having removed those rows.
    """
    never = np.intersect1d(forget.indices, np.asarray(excluded, dtype=np.int64))
    if len(never):
        raise DataError(
            f"{forget.source or 'forget set'}: {len(never)} index(es) were never trained on by {where} "
            f"(excluded from its training, e.g. {never[:5].tolist()}); drop them from the forget set"
        )


def load_forget(path: str | Path, data: DataBundle | None = None) -> ForgetSet:
    """Read a forget file; with ``data``, also check it against the training split."""
    indices, meta = read_index_file(path)
    fs = ForgetSet(indices, meta, source=str(path))
    if data is not None:
        fs.check(data)
    return fs


def save_forget(path: str | Path, fs: ForgetSet) -> None:
    """Write ``.json`` (with provenance and sha256) or ``.txt`` (indices only), atomically."""
    write_index_file(path, fs.indices, {**fs.meta, "size": len(fs), "sha256": fs.sha256})


def random_forget_set(data: DataBundle, size: int, seed: int, class_balanced: bool = False,
                      exclude: np.ndarray | None = None) -> ForgetSet:
    """``size`` training indices drawn uniformly without replacement with ``seed``.

    ``class_balanced`` draws ``size // C`` per class (the remainder goes to
    classes picked at random), so every class loses the same share. Training
    indices in ``exclude`` are never drawn.
    """
    idx = data.index_train.numpy()
    keep = ~np.isin(idx, exclude) if exclude is not None else np.ones(len(idx), dtype=bool)
    idx = idx[keep]
    n = len(idx)
    if size <= 0 or size > n:
        raise ConfigError(f"forget-set size must be in 1..{n} (the training set of {data.name}), got {size}")
    rng = np.random.default_rng(check_seed(seed))
    if not class_balanced:
        chosen = rng.choice(idx, size=size, replace=False)
    else:
        y = data.y_train.numpy()[keep]
        classes = np.unique(y)
        counts = np.full(len(classes), size // len(classes))
        counts[rng.choice(len(classes), size % len(classes), replace=False)] += 1
        short = [int(c) for c, k in zip(classes, counts) if k > (y == c).sum()]
        if short:
            raise ConfigError(f"class-balanced forget set of {size}: classes {short} have too few examples")
        chosen = np.concatenate(
            [rng.choice(idx[y == c], size=k, replace=False) for c, k in zip(classes, counts)]
        )
    meta = {"kind": "random", "dataset": data.name, "seed": int(seed), "class": None, "class_balanced": class_balanced}
    return ForgetSet(chosen, meta)


def tuning_reserve(data: DataBundle, fraction: float, seed: int) -> np.ndarray:
    """The training indices set aside for tuning: a class-stratified random ``fraction`` of
    every class (at least one example per class and one left out of it), drawn with ``seed``.

    The bench draws the forget sets it evaluates from the other examples and its validation
    forget sets from these, with the same construction, so a validation set is as hard as the
    set it stands for and never overlaps an evaluated one.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"the tuning reserve must be a fraction in (0, 1), got {fraction}")
    rng = np.random.default_rng(check_seed(seed))
    idx, y = data.index_train.numpy(), data.y_train.numpy()
    parts = []
    for c in np.unique(y):
        members = idx[y == c]
        k = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        parts.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(parts))


def class_forget_set(data: DataBundle, cls: int) -> ForgetSet:
    """Every training index of class ``cls`` (full-class forgetting)."""
    if not 0 <= int(cls) < data.num_classes:
        raise ConfigError(f"unknown class {cls}; {data.name} has classes 0..{data.num_classes - 1}")
    chosen = data.index_train.numpy()[data.y_train.numpy() == int(cls)]
    if len(chosen) == 0:
        raise DataError(f"class {cls} has no training examples in {data.name}")
    return ForgetSet(chosen, {"kind": "class", "dataset": data.name, "seed": None, "class": int(cls)})
