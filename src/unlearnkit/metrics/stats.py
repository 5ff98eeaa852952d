"""Means with confidence intervals, and verdicts on claims (paired over seeds).

A claim such as "RUM beats vanilla on ToW" is judged on paired differences:
each key (a seed, or a ``(seed, forget_set)`` pair) contributes ``a[k] - b[k]``
and a Student-t 95% CI is put on their mean. The verdict is

* ``"held"`` when the CI excludes 0 in the claimed direction,
* ``"contradicted"`` when it excludes 0 in the other direction,
* ``"inconclusive"`` otherwise, and always when fewer than 2 pairs exist.

Correlation claims ("higher ES is harder") are judged the same way on the
per-seed Spearman ρ (see :func:`correlation_verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from unlearnkit.errors import UnlearnkitError

Status = Literal["held", "contradicted", "inconclusive"]
Direction = Literal["greater", "less"]


def mean_ci(
    values: ArrayLike,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of ``values`` with a Student-t confidence interval.

    Half-width = t_{(1+level)/2, n−1} · s / √n with ``s`` the sample standard
    deviation (ddof=1). NaN values are dropped first. One value gives
    ``(value, nan, nan)`` (no spread to estimate); none gives all NaN.
    ``bounds=(low, high)`` clips the interval to the quantity's range (an
    accuracy's CI never leaves [0, 1]); the mean is never clipped.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if v.size == 1:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (mean, lo, hi)


@dataclass
class Verdict:
    """A claim judged on a paired comparison.

    ``diff`` is the mean paired difference ``a - b`` (for a correlation claim:
    the mean per-seed Spearman ρ); ``lo``/``hi`` its CI (NaN when ``n < 2``);
    ``n`` the number of pairs (or seeds) behind it; ``method`` names the
    interval ("paired t"); ``detail`` is free text for the report (what was
    paired, what was dropped).
    """

    claim: str
    diff: float
    lo: float
    hi: float
    n: int
    status: Status
    method: str = "paired t"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (NaN stays NaN; the writer renders it)."""
        return asdict(self)


def _status(lo: float, hi: float, direction: Direction) -> Status:
    """Verdict from a CI: excludes 0 on the claimed side → held, other side → contradicted."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > 0:
        return "held" if direction == "greater" else "contradicted"
    if hi < 0:
        return "held" if direction == "less" else "contradicted"
    return "inconclusive"


def _verdict_from_values(
    claim: str,
    values: np.ndarray,
    direction: Direction,
    level: float,
    method: str,
    bounds: tuple[float, float] | None,
    detail: str,
) -> Verdict:
    if direction not in ("greater", "less"):
        raise UnlearnkitError(f"direction must be 'greater' or 'less', got {direction!r}")
    mean, lo, hi = mean_ci(values, level=level, bounds=bounds)
    n = int(np.count_nonzero(~np.isnan(values)))
    return Verdict(
        claim=claim,
        diff=mean,
        lo=lo,
        hi=hi,
        n=n,
        status=_status(lo, hi, direction),
        method=method,
        detail=detail,
    )


def paired_verdict(
    claim: str,
    a: Mapping[Hashable, float],
    b: Mapping[Hashable, float],
    *,
    direction: Direction = "greater",
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> Verdict:
    """Judge ``claim`` ("a is greater/less than b") on differences paired by key.

    ``a`` and ``b`` map the same keys (a seed, or ``(seed, forget_set)``) to one
    value each. A key present on one side only is an :class:`UnlearnkitError`
    naming it (an unpaired row would bias the mean). Pairs where either value
    is NaN are dropped and counted in ``detail``. The CI is Student-t over the
    paired differences; ``bounds`` optionally clips it (e.g. ``(-1, 1)`` for a
    difference of two accuracies). ``n < 2`` → "inconclusive", lo/hi NaN.
    """
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    if only_a or only_b:
        side, key = ("second", only_a[0]) if only_a else ("first", only_b[0])
        raise UnlearnkitError(
            f"cannot pair {claim!r}: key {key!r} is missing on the {side} side"
        )
    keys = list(a)
    diffs = np.array([float(a[k]) - float(b[k]) for k in keys], dtype=np.float64)
    dropped = int(np.isnan(diffs).sum())
    detail = f"{dropped} pair(s) with a missing value dropped" if dropped else ""
    return _verdict_from_values(claim, diffs, direction, level, "paired t", bounds, detail)


def correlation_verdict(
    claim: str,
    x: Mapping[Hashable, Mapping[Hashable, float]],
    y: Mapping[Hashable, Mapping[Hashable, float]],
    *,
    direction: Direction = "greater",
    level: float = 0.95,
    min_points: int = 3,
) -> Verdict:
    """Judge a monotone-association claim over seeds.

    ``x[seed][point]`` and ``y[seed][point]`` are the two quantities (e.g. the
    ES of each forget set and the method's ToW on it) for each seed. For each
    seed the Spearman ρ over its points is computed; the verdict is a Student-t
    CI over the per-seed ρ values (seeds are the independent replicates),
    clipped to [-1, 1]. ``direction="greater"`` claims a positive association.

    A seed needs at least ``min_points`` (default 3) shared points: with 2
    points ρ is always ±1 and says nothing. Such a seed is an
    :class:`UnlearnkitError`, as is a seed present on one side only. A seed
    whose x or y is constant has no defined ρ and is dropped (noted in
    ``detail``).
    """
    if min_points < 3:
        raise UnlearnkitError(f"a correlation needs at least 3 points per seed, got min_points={min_points}")
    only = [s for s in x if s not in y] + [s for s in y if s not in x]
    if only:
        raise UnlearnkitError(f"cannot pair {claim!r}: seed {only[0]!r} is missing on one side")
    rhos: list[float] = []
    constant = 0
    points_seen: set[int] = set()
    for seed in x:
        shared = [p for p in x[seed] if p in y[seed]]
        xs = np.array([x[seed][p] for p in shared], dtype=np.float64)
        ys = np.array([y[seed][p] for p in shared], dtype=np.float64)
        ok = ~(np.isnan(xs) | np.isnan(ys))
        xs, ys = xs[ok], ys[ok]
        if xs.size < min_points:
            raise UnlearnkitError(
                f"cannot judge {claim!r}: seed {seed!r} has {xs.size} point(s), "
                f"a correlation needs at least {min_points}"
            )
        points_seen.add(int(xs.size))
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            constant += 1
            continue
        rhos.append(float(stats.spearmanr(xs, ys).statistic))
    pts = "/".join(str(p) for p in sorted(points_seen))
    detail = f"Spearman rho per seed over {pts} points"
    if constant:
        detail += f"; {constant} seed(s) with a constant quantity dropped"
    return _verdict_from_values(
        claim, np.array(rhos, dtype=np.float64), direction, level, "t over per-seed Spearman", (-1.0, 1.0), detail
    )
