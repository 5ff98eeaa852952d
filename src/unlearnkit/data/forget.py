"""The ForgetSet type: sorted unique training indices plus how they were chosen.

Files are ``.txt`` (one original training index a line) or ``.json``
(``{"indices": [...], "kind": ..., ...provenance}``); every command accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.data.base import DataBundle
from unlearnkit.errors import UnlearnkitError
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
            raise UnlearnkitError(f"{self.source or 'forget set'}: the forget set is empty")
        return self.positions(data)


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
