"""The dataset registry and the one function that loads any dataset by name."""

from __future__ import annotations

from typing import Any

from unlearnkit.data.base import DataBundle, Dataset
from unlearnkit.registry import Registry

DATASETS: Registry[type[Dataset]] = Registry("dataset", entry_points="unlearnkit.datasets")

DEFAULT_VAL_FRACTION = 0.1


def get_dataset(name: str) -> Dataset:
    """Instantiate a dataset by name; ``prefix:arg`` names pass ``arg`` (``tabular:wine``)."""
    base, _, arg = name.partition(":")
    return DATASETS.get(base)(arg or None)


def load_dataset(
    name: str,
    data_root: str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    split_seed: int = 0,
    state: dict[str, Any] | None = None,
    **options: Any,
) -> DataBundle:
    """Load a registered dataset with a deterministic validation split.

    The returned bundle's ``spec`` records everything needed to load it again.
    """
    ds = get_dataset(name)
    bundle = ds.load(data_root, val_fraction, split_seed, state=state, **options)
    bundle.spec = {
        "name": name,
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "options": dict(options),
        "data_root": data_root,
    }
    return bundle
