"""KLoM on synthetic margins: hand-worked, against scipy on np.histogram, direction, bad input."""

import math

import numpy as np
import pytest
from scipy import stats

from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.klom import klom, klom_percentile


def _reference(unl: np.ndarray, ora: np.ndarray, bins=20, smooth=1e-5, clip=100.0) -> float:
    """One example, written with np.histogram and scipy's relative entropy (KL(oracle || unlearned))."""
    u, o = np.clip(unl, -clip, clip), np.clip(ora, -clip, clip)
    lo, hi = min(u.min(), o.min()), max(u.max(), o.max())
    if hi <= lo:
        hi = lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(o, edges)[0] / len(o)
    q = np.histogram(u, edges)[0] / len(u)
    q = np.where(p > 0, np.maximum(q, smooth), q)
    return float(stats.entropy(p, q))


def test_matches_histogram_reference():
    rng = np.random.default_rng(0)
    u = rng.normal(rng.uniform(-2, 2, (50, 1)), rng.uniform(0.2, 2, (50, 1)), (50, 16))
    o = rng.normal(0, 1, (50, 12))
    u[0] = 500.0  # clipped to 100
    ours = klom(u, o)
    np.testing.assert_allclose(ours, [_reference(u[i], o[i]) for i in range(50)], rtol=1e-10, atol=1e-12)


def test_hand_worked_and_direction():
    # Oracle margins {0, 0, 1, 1}, unlearned {0, 0, 0, 1}; edges over [0, 1], 2 bins.
    # P = (1/2, 1/2), Q = (3/4, 1/4): KL(P||Q) = 1/2 log(2/3) + 1/2 log 2.
    o = np.array([[0.0, 0.0, 1.0, 1.0]])
    u = np.array([[0.0, 0.0, 0.0, 1.0]])
    expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
    assert klom(u, o, bins=2)[0] == pytest.approx(expected)
    # The other direction, KL(Q||P) = 3/4 log(3/2) + 1/4 log(1/2), is a different number.
    assert klom(o, u, bins=2)[0] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert klom(o, u, bins=2)[0] != pytest.approx(expected)


def test_identical_small_separated_large():
    rng = np.random.default_rng(1)
    o = rng.normal(0, 1, (200, 64))
    same = klom(rng.normal(0, 1, (200, 64)), o)
    far = klom(rng.normal(50, 1, (200, 64)), o)
    assert np.median(same) < 1.0  # sampling noise of 20 bins from 64 models
    # Every oracle bin is empty for the unlearned models: about log(1 / 1e-5).
    assert far.min() > 10
    assert klom_percentile(far) > klom_percentile(same)
    assert klom(o, o).max() == 0.0
    assert klom(np.ones((3, 4)), np.ones((3, 4))).max() == 0.0  # all values equal


def test_bad_input():
    with pytest.raises(UnlearnkitError, match="at least 2"):
        klom(np.zeros((3, 1)), np.zeros((3, 4)))
    with pytest.raises(UnlearnkitError, match="cover"):
        klom(np.zeros((3, 2)), np.zeros((4, 2)))
    assert math.isnan(klom_percentile([]))
