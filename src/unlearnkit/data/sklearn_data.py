"""Datasets bundled with scikit-learn: ``digits`` and ``tabular:<name>``."""

from __future__ import annotations

from typing import Any

import numpy as np

from unlearnkit.data.base import DataBundle, Dataset, make_bundle
from unlearnkit.data.registry import DATASETS
from unlearnkit.errors import UnlearnkitError

TEST_FRACTION = 0.2  # scikit-learn's sets have no official test split; fixed split seed 0


def _split_test(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split  # scikit-learn is imported only to load

    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=0, stratify=y)


@DATASETS.register("digits")
class Digits(Dataset):
    name = "digits"
    description = "scikit-learn's 1,797 8x8 handwritten digits, as [1, 8, 8] images in [0, 1]"

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        if options:
            raise UnlearnkitError(f"digits takes no options, got {sorted(options)}")
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
        x_tr, x_te, y_tr, y_te = _split_test(x, d.target)
        return make_bundle(
            "digits", x_tr, y_tr, x_te, y_te, val_fraction=val_fraction, split_seed=split_seed, num_classes=10
        )


TABULAR = ("breast_cancer", "wine", "iris")  # sklearn.datasets.load_<name>


@DATASETS.register("tabular")
class Tabular(Dataset):
    name = "tabular"
    description = "scikit-learn's bundled tables (tabular:breast_cancer, tabular:wine, tabular:iris), standardised"

    def locate(self, data_root):
        return "bundled" if self.arg in TABULAR else None

    def availability(self, data_root):
        if self.arg is None:
            return True, "bundled: " + ", ".join(f"tabular:{k}" for k in TABULAR)
        return super().availability(data_root)

    def load(self, data_root, val_fraction, split_seed, state=None, **options: Any) -> DataBundle:
        if self.arg not in TABULAR:
            raise UnlearnkitError(f"unknown table '{self.arg}'; choose from: {', '.join(TABULAR)}")
        import sklearn.datasets

        d = getattr(sklearn.datasets, f"load_{self.arg}")()
        x_tr, x_te, y_tr, y_te = _split_test(d.data.astype(np.float64), d.target)
        # Standardise with training statistics only (the test split stays unseen).
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8
        x_tr, x_te = ((x_tr - mu) / sd).astype(np.float32), ((x_te - mu) / sd).astype(np.float32)
        return make_bundle(
            self.full_name, x_tr, y_tr, x_te, y_te, val_fraction=val_fraction, split_seed=split_seed
        )
