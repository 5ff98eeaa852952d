"""Verdicts on synthetic results of known effect (paired t over seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.stats import Verdict, correlation_verdict, mean_ci, paired_verdict


def _seeds(base: np.ndarray, shift: float, noise: float, seed: int) -> tuple[dict, dict]:
    """``a = base + shift + noise``, ``b = base`` keyed by seed: a known effect ``shift``."""
    rng = np.random.default_rng(seed)
    a = {s: float(v + shift + rng.normal(0, noise)) for s, v in enumerate(base)}
    b = {s: float(v) for s, v in enumerate(base)}
    return a, b


def test_held_when_effect_is_large_and_in_claimed_direction():
    base = np.random.default_rng(0).uniform(0.3, 0.7, size=8)
    a, b = _seeds(base, shift=0.2, noise=0.02, seed=1)
    v = paired_verdict("a > b", a, b)
    assert isinstance(v, Verdict)
    assert v.status == "held" and v.n == 8
    assert v.lo > 0 and v.diff == pytest.approx(np.mean([a[s] - b[s] for s in a]))
    # the same data judged for the opposite claim is contradicted
    assert paired_verdict("a < b", a, b, direction="less").status == "contradicted"


def test_contradicted_when_effect_goes_the_other_way():
    base = np.linspace(0.2, 0.8, 6)
    a, b = _seeds(base, shift=-0.15, noise=0.02, seed=2)
    v = paired_verdict("a > b", a, b)
    assert v.status == "contradicted" and v.hi < 0
    assert paired_verdict("a < b", a, b, direction="less").status == "held"


def test_inconclusive_when_effect_is_small_against_the_seed_noise():
    # the demo's case: a 0.003 difference with per-seed noise of 0.1
    base = np.linspace(0.5, 0.7, 3)
    a, b = _seeds(base, shift=0.003, noise=0.1, seed=3)
    v = paired_verdict("a > b", a, b)
    assert v.status == "inconclusive" and v.lo < 0 < v.hi


def test_ci_is_the_paired_t_interval():
    a = {0: 0.9, 1: 0.7, 2: 0.8, 3: 0.85}
    b = {0: 0.6, 1: 0.65, 2: 0.5, 3: 0.7}
    d = np.array([a[k] - b[k] for k in a])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / math.sqrt(4)
    v = paired_verdict("a > b", a, b)
    assert v.lo == pytest.approx(d.mean() - half) and v.hi == pytest.approx(d.mean() + half)
    # pairing matters: an unpaired comparison of the same numbers would differ
    res = stats.ttest_rel(list(a.values()), list(b.values()))
    assert v.status == ("held" if res.pvalue / 2 < 0.025 and res.statistic > 0 else "inconclusive")


def test_one_seed_gives_n1_and_no_ci():
    v = paired_verdict("a > b", {0: 0.9}, {0: 0.1})
    assert v.n == 1 and v.status == "inconclusive"
    assert math.isnan(v.lo) and math.isnan(v.hi)


def test_missing_key_is_named():
    with pytest.raises(UnlearnkitError, match=r"key 2 is missing on the second side"):
        paired_verdict("a > b", {0: 1.0, 1: 1.0, 2: 1.0}, {0: 0.0, 1: 0.0})
    with pytest.raises(UnlearnkitError, match=r"\(1, 'fs'\)"):
        paired_verdict("a > b", {(0, "fs"): 1.0}, {(0, "fs"): 0.0, (1, "fs"): 0.0})


def test_nan_pairs_are_dropped_and_counted():
    v = paired_verdict("a > b", {0: 1.0, 1: float("nan"), 2: 1.1}, {0: 0.0, 1: 0.0, 2: 0.05})
    assert v.n == 2 and "1 pair" in v.detail


def test_mean_ci_bounds_clip_the_interval_not_the_mean():
    vals = [0.99, 1.0, 0.9, 1.0]
    m, lo, hi = mean_ci(vals)
    assert hi > 1.0
    mc, loc, hic = mean_ci(vals, bounds=(0.0, 1.0))
    assert mc == pytest.approx(m) and loc == pytest.approx(lo) and hic == 1.0
    assert mean_ci([0.01, 0.0, 0.2], bounds=(0.0, 1.0))[1] == 0.0


def test_correlation_verdict_known_trend():
    rng = np.random.default_rng(4)
    es = {s: {f: float(f) for f in range(5)} for s in range(4)}
    up = {s: {f: float(f) + rng.normal(0, 0.3) for f in range(5)} for s in range(4)}
    down = {s: {f: -float(f) + rng.normal(0, 0.3) for f in range(5)} for s in range(4)}
    flat = {s: {f: float(rng.normal()) for f in range(5)} for s in range(4)}
    assert correlation_verdict("harder with ES", es, up).status == "held"
    assert correlation_verdict("harder with ES", es, down).status == "contradicted"
    v = correlation_verdict("harder with ES", es, flat)
    assert v.status == "inconclusive" and -1.0 <= v.lo and v.hi <= 1.0
    assert v.n == 4 and "5 points" in v.detail


def test_correlation_needs_three_points_per_seed():
    x = {0: {"a": 1.0, "b": 2.0}, 1: {"a": 1.0, "b": 2.0}}
    with pytest.raises(UnlearnkitError, match="seed 0 has 2 point"):
        correlation_verdict("trend", x, x)
