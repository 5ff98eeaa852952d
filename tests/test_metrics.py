"""Pure metric functions against hand-worked values and synthetic distributions."""

import math

import numpy as np
import pytest
from scipy import stats

from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics import (
    accuracy,
    avg_gap,
    bucket_score,
    challenge_max_epsilon,
    final_score,
    forget_quality,
    logit_confidence,
    mean_ci,
    mia_auc,
    mia_efficacy,
    per_example_epsilon,
    per_example_outputs,
    tow_mia,
    tug_of_war,
)

LN3 = math.log(3)


# ---------------------------------------------------------------- per-example outputs
def test_per_example_outputs_hand_worked():
    # Row 0, label 0: softmax = (3/4, 1/4): p=3/4, loss=ln(4/3), conf=ln(3/4)-ln(1/4)=ln 3, correct.
    # Row 1, label 1: p=1/4, loss=ln 4, conf=-ln 3, wrong.
    out2 = per_example_outputs(np.array([[LN3, 0.0], [LN3, 0.0]]), [0, 1])
    np.testing.assert_allclose(out2["p_true"], [0.75, 0.25])
    np.testing.assert_allclose(out2["loss"], [math.log(4 / 3), math.log(4)])
    np.testing.assert_allclose(out2["logit_conf"], [LN3, -LN3])
    assert out2["correct"].tolist() == [True, False]
    # 3 classes, label 2: softmax = (1, 2, 3)/6 -> p=1/2, conf = ln(1/2) - ln(1/2) = 0.
    out3 = per_example_outputs(np.array([[0.0, math.log(2), LN3]]), [2])
    np.testing.assert_allclose(out3["p_true"], [0.5])
    np.testing.assert_allclose(out3["logit_conf"], [0.0], atol=1e-12)
    assert out3["correct"].tolist() == [True]


def test_logit_confidence_is_stable_for_extreme_logits():
    # p_y rounds to 1 (or 0) in float64, yet log p - log(1-p) = z_y - z_other exactly.
    z = np.array([[1000.0, 0.0], [1000.0, 0.0]])
    np.testing.assert_allclose(logit_confidence(z, [0, 1]), [1000.0, -1000.0])
    out = per_example_outputs(z, [0, 1])
    assert np.isfinite(out[["loss", "logit_conf"]].to_numpy()).all()
    np.testing.assert_allclose(out["loss"], [0.0, 1000.0])


def test_accuracy():
    assert accuracy([True, False, True, True]) == 0.75
    assert math.isnan(accuracy([]))


# ---------------------------------------------------------------- ToW family
def test_tow_family_hand_worked():
    u = {"forget": 0.9, "retain": 1.0, "test": 0.8, "mia": 0.5}
    r = {"forget": 0.8, "retain": 0.9, "test": 0.8, "mia": 0.3}
    # (1-0.1)(1-0.1)(1-0) = 0.81; with MIA: (1-0.2)(1-0.1)(1-0) = 0.72; gap (0.1+0.1+0)/3.
    assert tug_of_war(u, r) == pytest.approx(0.81)
    assert tow_mia(u, r) == pytest.approx(0.72)
    assert avg_gap(u, r) == pytest.approx(0.2 / 3)
    assert tug_of_war(u, u) == 1.0 and tow_mia(u, u) == 1.0 and avg_gap(u, u) == 0.0


# ---------------------------------------------------------------- MIA
def test_mia_efficacy_separable_and_identical():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.9, 1.0, 500)
    nonmembers = rng.uniform(0.0, 0.5, 500)
    # A forget set that looks like training data is called member (efficacy 0), and vice versa.
    assert mia_efficacy(members, nonmembers, rng.uniform(0.9, 1.0, 100)) == 0.0
    assert mia_efficacy(members, nonmembers, rng.uniform(0.0, 0.5, 100)) == 1.0
    # Identical distributions: the attack has nothing to learn, the verdict is a coin toss.
    same = mia_efficacy(rng.uniform(size=500), rng.uniform(size=500), rng.uniform(size=400), seed=1)
    assert 0.2 < same < 0.8


def test_mia_efficacy_subsampling_is_seeded():
    rng = np.random.default_rng(3)
    a, b, t = rng.normal(0.6, 0.2, 3000), rng.normal(0.5, 0.2, 3000), rng.normal(0.55, 0.2, 300)
    assert mia_efficacy(a, b, t, max_per_side=200, seed=5) == mia_efficacy(a, b, t, max_per_side=200, seed=5)
    assert math.isnan(mia_efficacy([], b, t))
    with pytest.raises(ValueError):
        mia_efficacy(a, b, t, max_per_side=0)


def test_mia_auc_separable_and_identical():
    rng = np.random.default_rng(0)
    assert mia_auc(rng.uniform(2, 3, 200), rng.uniform(0, 1, 300)) == pytest.approx(1.0)
    # Forget losses lower than test losses (memorised): separable the other way, still AUC 1.
    assert mia_auc(rng.uniform(0, 0.1, 200), rng.uniform(1, 2, 300)) == pytest.approx(1.0)
    same = mia_auc(rng.exponential(size=300), rng.exponential(size=300))
    assert 0.35 < same < 0.65
    assert math.isnan(mia_auc([1.0], [0.5, 0.2]))


# ---------------------------------------------------------------- per-example epsilon
def test_epsilon_hand_worked():
    # Unlearned median 2.5 > retrained 0.5, so unlearned is the positive class. Sorted:
    # 4u 3u 2.5r 2u 1r 0.5u 0r -1r. Cuts with both rates > 0:
    #   top 3 (FNR 1/2, FPR 1/4): max(log(.75/.5), log(.5/.25)) = log 2
    #   top 4 (FNR 1/4, FPR 1/4): log(.75/.25) = log 3   <- the max
    #   top 5 (FNR 1/4, FPR 1/2): log 2
    u = [[4.0, 3.0, 2.0, 0.5]]
    r = [[1.0, 0.0, -1.0, 2.5]]
    eps = per_example_epsilon(u, r)
    assert eps[0] == pytest.approx(LN3, abs=1e-4)
    # floor(1.0986 / 0.5) = bucket 2 -> 1/4 point.
    assert bucket_score(eps)[0] == 0.25
    # The metric does not care which group is which, nor about the sign of the confidence.
    assert per_example_epsilon(r, u)[0] == pytest.approx(eps[0])
    assert per_example_epsilon(-np.array(u), -np.array(r))[0] == pytest.approx(eps[0])


def test_epsilon_edge_cases():
    # Perfect separation (FPR = FNR = 0 at a threshold): the cap.
    assert per_example_epsilon([[3.0, 4.0]], [[1.0, 2.0]])[0] == 50.0
    # Interleaved 2 vs 2: the only cut with both rates > 0 has FPR = FNR = 1/2 -> 0.
    assert per_example_epsilon([[1.0, 3.0]], [[0.0, 2.0]])[0] == 0.0
    # Peaky unlearned distribution (range 0.001 vs 5): the cap, as in the challenge.
    assert per_example_epsilon([[1.0, 1.001]], [[0.0, 5.0]])[0] == 50.0
    # All values equal: nothing to tell apart.
    assert per_example_epsilon([[1.0, 1.0]], [[1.0, 1.0]])[0] == 0.0
    with pytest.raises(UnlearnkitError, match="at least 2"):
        per_example_epsilon([[1.0]], [[1.0]])
    with pytest.raises(UnlearnkitError, match="cover"):
        per_example_epsilon(np.zeros((2, 3)), np.zeros((3, 3)))


def _epsilon_loop(u: np.ndarray, r: np.ndarray, delta: float = 1e-5, cap: float = 50.0) -> float:
    """The challenge's single-threshold rule written as a plain loop over thresholds."""
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    lo, hi = sorted([np.ptp(u), np.ptp(r)])
    if hi > 0 and lo / hi < 0.01:
        return cap
    best = 0.0
    for t in np.unique(np.concatenate([pos, neg])):
        fnr, fpr = np.mean(pos < t), np.mean(neg >= t)
        if fpr == 0 and fnr == 0:
            return cap
        if fpr == 0 or fnr == 0:
            continue
        cands = [math.log(1 - delta - fpr) - math.log(fnr) if 1 - delta - fpr > 0 else -math.inf,
                 math.log(1 - delta - fnr) - math.log(fpr) if 1 - delta - fnr > 0 else -math.inf]
        best = max(best, *cands)
    return min(best, cap)


def test_epsilon_vectorised_matches_loop():
    rng = np.random.default_rng(7)
    n = 60
    u = rng.normal(rng.uniform(-1, 1, (n, 1)), 1.0, (n, 6)).round(1)  # rounding makes ties
    r = rng.normal(0.0, 1.0, (n, 5)).round(1)
    eps = per_example_epsilon(u, r)
    expected = [_epsilon_loop(u[i], r[i]) for i in range(n)]
    np.testing.assert_allclose(eps, expected, atol=1e-9)


def test_epsilon_on_synthetic_separation():
    rng = np.random.default_rng(0)
    n, k = 400, 32
    base_u, r = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    eps = [per_example_epsilon(base_u + s, r) for s in shifts]
    means = [e.mean() for e in eps]
    quality = [forget_quality(e) for e in eps]
    # Monotone in separation.
    assert all(a < b for a, b in zip(means, means[1:]))
    assert all(a > b for a, b in zip(quality, quality[1:]))
    # Identical distributions: no example near the cap, ε of the order of log 2 (threshold noise).
    assert means[0] < 2.0 and eps[0].max() < 50 and quality[0] > 0.2
    # Perfectly separated: every example at the cap and no points.
    far = per_example_epsilon(base_u + 100.0, r)
    assert (far == 50.0).all() and forget_quality(far) < 1e-20


def test_bucket_score_and_final_score():
    # buckets of width 0.5: [0, .5) -> 1, [.5, 1) -> 1/2, [1, 1.5) -> 1/4; 50 -> 2^-100.
    e = np.array([0.0, 0.49, 0.5, 1.2, 50.0])
    np.testing.assert_allclose(bucket_score(e), [1, 1, 0.5, 0.25, 2.0**-100])
    # The challenge's truncation: nothing at or beyond max_epsilon.
    np.testing.assert_allclose(bucket_score(e, max_epsilon=1.0), [1, 1, 0.5, 0, 0])
    assert challenge_max_epsilon(512) == 7.0  # ceil(log 511) = ceil(6.24)
    assert forget_quality(e[:4]) == pytest.approx((1 + 1 + 0.5 + 0.25) / 4)
    # F * (RA_u / RA_r) * (TA_u / TA_r) = 0.5 * 0.9 * (0.8 / 0.9) = 0.4
    assert final_score(0.5, 0.9, 1.0, 0.8, 0.9) == pytest.approx(0.4)
    assert math.isnan(final_score(0.5, 0.9, 0.0, 0.8, 0.9))


# ---------------------------------------------------------------- mean and CI
def test_mean_ci_matches_scipy():
    v = np.array([0.91, 0.95, 0.88, 0.93, 0.97])
    mean, lo, hi = mean_ci(v)
    elo, ehi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert mean == pytest.approx(v.mean()) and lo == pytest.approx(elo) and hi == pytest.approx(ehi)
    one = mean_ci([0.5])
    assert one[0] == 0.5 and math.isnan(one[1]) and math.isnan(one[2])
    # NaNs are dropped before aggregating.
    assert mean_ci([0.2, float("nan"), 0.4])[0] == pytest.approx(0.3)
    assert all(math.isnan(x) for x in mean_ci([]))
