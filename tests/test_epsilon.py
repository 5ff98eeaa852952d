"""Per-example ε and the challenge score: hand-worked values, edge cases, and an
independent re-implementation of the NeurIPS 2023 challenge scorer
(google-deepmind/unlearning_evaluation, metric.py) that the ``grid="scorer"``
option must reproduce.

The re-implementation below follows the scorer step by step, on CPU torch
(the original runs on CUDA): its float32 rates, its float32 single-threshold
grid, its attack-discarding rules and its bucket loop. It is the reference the
test checks against; it is not used by the package.
"""

import math
import warnings

import numpy as np
import pytest
import torch

from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics import (
    bucket_score,
    challenge_max_epsilon,
    final_score,
    forget_quality,
    per_example_epsilon,
)

LN3 = math.log(3)
DELTA, CAP, PER_UNIT, BUFFER = 1e-5, 50.0, 100, 2.0


# ---------------------------------------------------------------- the scorer, re-implemented
def _scorer_rates_interval(p: torch.Tensor, q: torch.Tensor):
    """(tpr, fnr, fpr, tnr) of the scorer's interval grid: the peakier group is predicted inside."""
    p_range, q_range = p.max() - p.min(), q.max() - q.min()
    width = q_range if p_range > q_range else p_range
    if p_range >= q_range:
        p, q = q, p
    lo_r = (p.min() + width - BUFFER).numpy()
    hi_r = (p.max() + BUFFER).numpy()
    rights = np.linspace(lo_r, hi_r, num=int(np.ceil((hi_r - lo_r) * PER_UNIT)))
    w = width.numpy()
    n_left = int(np.ceil(2 * BUFFER * PER_UNIT))
    lefts = np.concatenate([np.linspace(t - w - BUFFER, t - w + BUFFER, num=n_left) for t in rights])
    rights = np.repeat(rights, n_left)
    lt, rt = torch.from_numpy(lefts)[None, :], torch.from_numpy(rights)[None, :]

    def inside(c: torch.Tensor) -> torch.Tensor:
        return ((lt <= c[:, None]) & (c[:, None] <= rt)).float()

    tp, fp = inside(p).mean(0), inside(q).mean(0)
    return tp, (1 - inside(p)).mean(0), fp, (1 - inside(q)).mean(0)


def _scorer_rates_single(p: torch.Tensor, q: torch.Tensor):
    """(tpr, fnr, fpr, tnr) of the scorer's single-threshold grid (positive: >= t)."""
    both = torch.cat([p, q])
    steps = int(torch.ceil((both.max() - both.min()) * PER_UNIT))
    t = torch.linspace(both.min(), both.max(), steps)[None, :]  # float32, as the scorer's
    return (
        (p[:, None] >= t).float().mean(0),
        (p[:, None] < t).float().mean(0),
        (q[:, None] >= t).float().mean(0),
        (q[:, None] < t).float().mean(0),
    )


def scorer_epsilons(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """ε per example; inputs [num models, num examples] as the scorer takes them."""
    r_pos = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    pos = np.where(r_pos, retrained, unlearned)
    neg = np.where(r_pos, unlearned, retrained)
    out = []
    for i in range(pos.shape[1]):
        p, q = pos[:, i], neg[:, i]
        p_range, q_range = np.ptp(p), np.ptp(q)
        big = p_range if p_range > q_range else q_range
        small = q_range if p_range > q_range else p_range
        with np.errstate(invalid="ignore"):
            if small / big < 0.01:
                out.append(CAP)
                continue
        pt, qt = torch.from_numpy(p), torch.from_numpy(q)
        rates = [torch.cat(pair) for pair in zip(_scorer_rates_interval(pt, qt), _scorer_rates_single(pt, qt))]
        tpr, fnr, fpr, tnr = rates
        eps = torch.zeros(len(tpr))
        eps = torch.where((fpr + fnr == 0) & (tpr + tnr == 2), torch.full_like(eps, math.inf), eps)
        eps = torch.where((eps == 0) & (fpr * fnr == 0), torch.full_like(eps, math.nan), eps)
        f, n = fpr.numpy(), fnr.numpy()
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (FPR = FNR = 1)
            value = np.clip(np.nanmax([np.log(1 - DELTA - f) - np.log(n), np.log(1 - DELTA - n) - np.log(f)], axis=0), 0, None)
        eps = torch.where(eps == 0, torch.from_numpy(value), eps).numpy()
        kept = eps[~np.isnan(eps)]
        # The scorer fails when no attack survives; its meaning is "no evidence".
        out.append(float(np.max(kept)) if kept.size else 0.0)
    return np.clip(np.array(out), 0, CAP)


def scorer_forget_score(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """The scorer's forget quality: bucket points up to ceil(log(N − 1)), mean over examples."""
    eps = scorer_epsilons(unlearned, retrained)
    top = np.ceil(np.log(unlearned.shape[0] - 1))
    buckets, start, points = [], 0.0, 1.0
    while start + 0.5 <= top:
        buckets.append((start, points))
        start, points = start + 0.5, points / 2
    total = 0.0
    for e in eps:
        for s, pts in buckets:
            if e < s + 0.5:
                total += pts
                break
    return total / retrained.shape[1]


def _samples(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic confidences [n, k] per group: identical, shifted, wider, narrower, tied."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 1.0, (n, k))
    kind = np.arange(n) % 5
    shift = rng.uniform(-2, 2, (n, 1))
    scale = rng.uniform(0.2, 3.0, (n, 1))
    u = np.where(kind[:, None] == 0, rng.normal(0, 1, (n, k)), 0)
    u = u + np.where(kind[:, None] == 1, rng.normal(0, 1, (n, k)) + shift, 0)
    u = u + np.where(kind[:, None] == 2, rng.normal(0, 1, (n, k)) * scale, 0)
    u = u + np.where(kind[:, None] == 3, rng.normal(0, 0.05, (n, k)) + rng.uniform(-1, 1, (n, 1)), 0)
    u = u + np.where(kind[:, None] == 4, np.round(rng.normal(0, 1, (n, k)) * 4) / 4, 0)
    r = np.where(kind[:, None] == 4, np.round(r * 4) / 4, r)
    return u, r


@pytest.mark.parametrize("k", [4, 16])
def test_grid_option_matches_the_scorer(k):
    u, r = _samples(k, 40, k)
    ours = per_example_epsilon(u, r, grid="scorer")
    theirs = scorer_epsilons(u.T, r.T)
    # The scorer's rates are float32 (k/N rounded), ours float64: agreement to ~1e-6.
    assert np.max(np.abs(ours - theirs)) < 1e-5
    # Its forget score with the truncation at ceil(log(N - 1)).
    fq = forget_quality(ours, max_epsilon=challenge_max_epsilon(k))
    assert fq == pytest.approx(scorer_forget_score(u.T, r.T), abs=1e-12)
    # The exact families contain every grid attack: never lower.
    exact = per_example_epsilon(u, r)
    assert (exact >= ours - 1e-5).all()


def test_interval_family_matters_on_a_narrower_unlearned_group():
    # Unlearned values sit inside the retrained spread: no single threshold separates
    # them, an interval around them does (both orientations of the interval).
    rng = np.random.default_rng(1)
    r = rng.normal(0, 1, (50, 16))
    u = rng.normal(0, 0.15, (50, 16))
    single = per_example_epsilon(u, r, families=("single",))
    both = per_example_epsilon(u, r)
    assert both.mean() > single.mean() + 0.3
    # Swapping the groups puts the interval around the retrained side: same ε.
    np.testing.assert_allclose(per_example_epsilon(r, u), both)
    np.testing.assert_allclose(per_example_epsilon(r, u, grid="scorer"), per_example_epsilon(u, r, grid="scorer"))


# ---------------------------------------------------------------- hand-worked and edge cases
def test_epsilon_hand_worked():
    # Unlearned median 2.5 > retrained 0.5, so unlearned is the positive class. Sorted:
    # 4u 3u 2.5r 2u 1r 0.5u 0r -1r. Cuts with both rates > 0:
    #   top 3 (FNR 1/2, FPR 1/4): max(log(.75/.5), log(.5/.25)) = log 2
    #   top 4 (FNR 1/4, FPR 1/4): log(.75/.25) = log 3   <- the max
    #   top 5 (FNR 1/4, FPR 1/2): log 2
    # Intervals (equal ranges: the smaller-median retrained group inside): [-1, 1]
    # holds 3/4 of r and 1/4 of u, log 3 again; none does better.
    u = [[4.0, 3.0, 2.0, 0.5]]
    r = [[1.0, 0.0, -1.0, 2.5]]
    eps = per_example_epsilon(u, r)
    assert eps[0] == pytest.approx(LN3, abs=1e-4)
    assert per_example_epsilon(u, r, families=("single",))[0] == pytest.approx(LN3, abs=1e-4)
    # floor(1.0986 / 0.5) = bucket 2 -> 1/4 point.
    assert bucket_score(eps)[0] == 0.25
    assert per_example_epsilon(r, u)[0] == pytest.approx(eps[0])
    assert per_example_epsilon(-np.array(u), -np.array(r))[0] == pytest.approx(eps[0])


def test_interval_hand_worked():
    # u = {0, 0.1, 0.2} inside r = {-2, 0.15, 2}. Ranges 0.2 < 4: u inside.
    # Single thresholds give at most log 2; the interval [0, 0.2] holds all of u and
    # 1/3 of r: FNR 0 -> discarded; [0, 0.1] holds 2/3 of u, none of r -> discarded;
    # [0.1, 0.2] holds 2/3 u and 1/3 r: max(log((1-1/3)/(1/3)), log((1-1/3)/(1/3))) = log 2.
    u = [[0.0, 0.1, 0.2]]
    r = [[-2.0, 0.15, 2.0]]
    assert per_example_epsilon(u, r)[0] == pytest.approx(math.log(2), abs=1e-4)


def test_epsilon_edge_cases():
    assert per_example_epsilon([[3.0, 4.0]], [[1.0, 2.0]])[0] == 50.0  # perfect separation
    assert per_example_epsilon([[1.0, 3.0]], [[0.0, 2.0]])[0] == 0.0
    assert per_example_epsilon([[1.0, 1.001]], [[0.0, 5.0]])[0] == 50.0  # peaky: range ratio < 1%
    assert per_example_epsilon([[1.0, 1.0]], [[1.0, 1.0]])[0] == 0.0  # nothing to tell apart
    assert per_example_epsilon([[1.0, 1.0]], [[1.0, 1.0]], grid="scorer")[0] == 0.0
    with pytest.raises(UnlearnkitError, match="at least 2"):
        per_example_epsilon([[1.0]], [[1.0]])
    with pytest.raises(UnlearnkitError, match="cover"):
        per_example_epsilon(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(UnlearnkitError, match="grid"):
        per_example_epsilon(np.zeros((2, 3)), np.zeros((2, 3)), grid="fine")
    with pytest.raises(UnlearnkitError, match="at least 2"):
        challenge_max_epsilon(1)


def _epsilon_brute(u: np.ndarray, r: np.ndarray, delta: float = 1e-5, cap: float = 50.0) -> float:
    """Both attack families by brute force, for confidences on the 1/4 lattice.

    Every boundary of the families' (threshold, interval) regions then lies on
    that lattice, so candidate thresholds and interval ends on the 1/16 lattice
    reach every attack the continuous family contains (and are exact floats).
    """
    lo, hi = sorted([np.ptp(u), np.ptp(r)])
    if hi > 0 and lo / hi < 0.01:
        return cap
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    inside, outside = (pos, neg) if np.ptp(pos) < np.ptp(neg) else (neg, pos)
    grid = np.arange(min(u.min(), r.min()) - 5, max(u.max(), r.max()) + 5, 1 / 16)
    t = grid[(grid >= min(u.min(), r.min())) & (grid <= max(u.max(), r.max()))]
    fpr = [np.mean(neg[:, None] >= t, axis=0)]
    fnr = [np.mean(pos[:, None] < t, axis=0)]
    w = np.ptp(inside)
    left, right = np.meshgrid(grid, grid, indexing="ij")
    fam = (right >= inside.min() + w - 2) & (right <= inside.max() + 2)
    fam &= (left >= right - w - 2) & (left <= right - w + 2)
    left, right = left[fam], right[fam]
    fpr.append(np.mean((outside[:, None] >= left) & (outside[:, None] <= right), axis=0))
    fnr.append(1 - np.mean((inside[:, None] >= left) & (inside[:, None] <= right), axis=0))
    fpr, fnr = np.concatenate(fpr), np.concatenate(fnr)
    if ((fpr == 0) & (fnr == 0)).any():
        return cap
    keep = (fpr > 0) & (fnr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr[keep]) - np.log(fnr[keep]), np.log(1 - delta - fnr[keep]) - np.log(fpr[keep]))
    eps = eps[~np.isnan(eps)]
    return float(min(max(eps.max(initial=0.0), 0.0), cap))


def test_epsilon_vectorised_matches_brute_force():
    rng = np.random.default_rng(7)
    n = 40
    # On the 1/4 lattice (ties included), groups of different sizes.
    u = np.round(rng.normal(rng.uniform(-1, 1, (n, 1)), rng.uniform(0.3, 1.5, (n, 1)), (n, 6)) * 4) / 4
    r = np.round(rng.normal(0.0, 1.0, (n, 5)) * 4) / 4
    expected = [_epsilon_brute(u[i], r[i]) for i in range(n)]
    np.testing.assert_allclose(per_example_epsilon(u, r), expected, atol=1e-9)


def test_epsilon_on_synthetic_separation():
    rng = np.random.default_rng(0)
    n, k = 300, 32
    base_u, r = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    eps = [per_example_epsilon(base_u + s, r) for s in shifts]
    means = [e.mean() for e in eps]
    quality = [forget_quality(e, max_epsilon=challenge_max_epsilon(k)) for e in eps]
    assert all(a < b for a, b in zip(means, means[1:]))
    assert all(a >= b for a, b in zip(quality, quality[1:])) and quality[0] > quality[-1]
    assert means[0] < 2.0 and eps[0].max() < 50
    far = per_example_epsilon(base_u + 100.0, r)
    assert (far == 50.0).all() and forget_quality(far, max_epsilon=challenge_max_epsilon(k)) == 0.0


def test_bucket_score_truncation_and_final_score():
    e = np.array([0.0, 0.49, 0.5, 1.2, 50.0])
    np.testing.assert_allclose(bucket_score(e), [1, 1, 0.5, 0.25, 2.0**-100])
    np.testing.assert_allclose(bucket_score(e, max_epsilon=1.0), [1, 1, 0.5, 0, 0])
    assert challenge_max_epsilon(512) == 7.0  # ceil(log 511) = ceil(6.24)
    # ε = 7 earns nothing at N = 512 (without truncation it would earn 2^-14).
    assert bucket_score([7.0], max_epsilon=challenge_max_epsilon(512))[0] == 0.0
    assert challenge_max_epsilon(2) == 0.0  # N = 2: every example scores 0
    assert forget_quality(e[:4]) == pytest.approx((1 + 1 + 0.5 + 0.25) / 4)
    assert final_score(0.5, 0.9, 1.0, 0.8, 0.9) == pytest.approx(0.4)
    assert math.isnan(final_score(0.5, 0.9, 0.0, 0.8, 0.9))
