"""Datasets: a registry of loaders that all return a :class:`DataBundle`."""

from unlearnkit.data.base import DataBundle, Dataset, make_bundle, split_validation
from unlearnkit.data.registry import DATASETS, DEFAULT_VAL_FRACTION, get_dataset, load_dataset

# Importing the loader modules registers them.
from unlearnkit.data import sklearn_data  # noqa: F401,E402

__all__ = [
    "DATASETS",
    "DEFAULT_VAL_FRACTION",
    "DataBundle",
    "Dataset",
    "get_dataset",
    "load_dataset",
    "make_bundle",
    "split_validation",
]
