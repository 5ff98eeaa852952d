"""Pure metric functions against hand-worked values and synthetic distributions."""

import math

import numpy as np
import pytest
from scipy import stats

from unlearnkit.metrics import (
    accuracy,
    avg_gap,
    logit_confidence,
    mean_ci,
    mia_auc,
    mia_efficacy,
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
