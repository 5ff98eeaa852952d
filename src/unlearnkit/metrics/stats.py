"""Mean and confidence interval over seeds."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of ``values`` with a Student-t confidence interval.

    Half-width = t_{(1+level)/2, n−1} · s / √n with ``s`` the sample standard
    deviation (ddof=1). NaN values are dropped first. One value gives
    ``(value, nan, nan)`` (no spread to estimate); none gives all NaN.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if v.size == 1:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (mean, mean - half, mean + half)
