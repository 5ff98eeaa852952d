"""Per-example outputs of a classifier and accuracy. Pure functions on arrays.

Logits are ``[n, num_classes]`` (NumPy or a CPU torch tensor); labels are ``[n]``
ints in ``[0, num_classes)``. Everything is computed in float64 from log-sum-exp,
so confidences near 0 or 1 stay finite.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp


def _check(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"expected logits [n, C] and labels [n], got {z.shape} and {y.shape}")
    return z, y


def logit_confidence(logits, labels) -> np.ndarray:
    """Logit-scaled true-label confidence ``log p_y − log(1 − p_y)``, shape ``[n]``.

    Computed as ``z_y − logsumexp_{j≠y} z_j`` (exactly equal, but finite even
    when ``p_y`` rounds to 1 in floating point).
    """
    z, y = _check(logits, labels)
    rows = np.arange(len(y))
    others = z.copy()
    others[rows, y] = -np.inf
    return z[rows, y] - logsumexp(others, axis=1)


def per_example_outputs(logits, labels) -> pd.DataFrame:
    """Per-example ``p_true`` (softmax probability of the label), ``loss`` (cross-entropy,
    nats), ``correct`` (argmax == label) and ``logit_conf`` (:func:`logit_confidence`).

    Returns a DataFrame with one row per example, in input order (the caller adds ``index``).
    """
    z, y = _check(logits, labels)
    rows = np.arange(len(y))
    loss = logsumexp(z, axis=1) - z[rows, y]
    return pd.DataFrame(
        {
            "p_true": np.exp(-loss),
            "loss": loss,
            "correct": z.argmax(axis=1) == y if len(y) else np.zeros(0, dtype=bool),
            "logit_conf": logit_confidence(z, y),
        }
    )


def accuracy(correct) -> float:
    """Fraction of ``True`` in a boolean array, in [0, 1]; NaN for an empty set."""
    c = np.asarray(correct, dtype=bool)
    return float(c.mean()) if c.size else float("nan")
