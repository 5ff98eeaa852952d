"""Datasets: a registry of loaders that all return a :class:`DataBundle`.

Every module in this package that registers a :class:`Dataset` subclass with
``@DATASETS.register(name)`` is imported automatically.
"""

from unlearnkit.data.base import DataBundle, Dataset, LazyRows, as_bundle, make_bundle, split_validation
from unlearnkit.data.forget import ForgetSet, load_forget, save_forget
from unlearnkit.data.registry import DATASETS, DEFAULT_VAL_FRACTION, get_dataset, load_dataset
from unlearnkit.plugins import import_submodules

import_submodules(__name__, __path__)

__all__ = [
    "DATASETS",
    "DEFAULT_VAL_FRACTION",
    "DataBundle",
    "Dataset",
    "ForgetSet",
    "LazyRows",
    "as_bundle",
    "get_dataset",
    "load_dataset",
    "load_forget",
    "make_bundle",
    "save_forget",
    "split_validation",
]
