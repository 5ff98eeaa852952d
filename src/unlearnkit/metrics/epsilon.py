"""Per-example ε and the NeurIPS 2023 unlearning challenge score.

For each forget example we have its logit-scaled confidence
``log p_y − log(1 − p_y)`` under N unlearned and N retrained models (different
seeds). An *attack* is a rule that says "unlearned" or "retrained" from one
confidence; its false positive / false negative rates bound how far the two
groups are from (ε, δ)-indistinguishable on that example:

    ε(attack) = max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)

and the example's ε is the maximum over attacks, clipped to [0, cap]. The
attacks are the challenge's two families:

- **single threshold**: "positive if confidence >= t", the positive group being
  the one with the larger median (the unlearned one on a tie);
- **interval** (double threshold): "positive if t1 <= confidence <= t2", the
  positive group being the *peakier* one (smaller range max − min; on a tie
  the group with the smaller median). Either group can be the one inside the
  interval, so both orientations occur, chosen per example. As in the scorer,
  the right end t2 lies in [min + w − 2, max + 2] of the peaky group (w its
  range) and the width t2 − t1 in [w − 2, w + 2].

Rules, as the challenge's scorer applies them to every attack:

- FPR = FNR = 0 (perfect separation) gives ε = cap;
- an attack with exactly one of FPR, FNR equal to 0 is discarded (with N
  samples a single zero rate is an artefact of too few models), as is one
  whose ε is undefined (FPR = FNR = 1);
- if one group's range is below ``peaky_ratio`` (1%) times the other's, the
  unlearned distribution is degenerate and ε = cap;
- an example with no usable attack gets ε = 0 (the scorer stops with an error
  there; no evidence of a difference is what it means).

Where the thresholds come from (``grid``):

- ``"exact"`` (default): every distinct attack of both families, i.e. a
  threshold at every observed confidence, and every set of consecutive
  observed confidences that an interval of the family (below) can cover. No
  attack is missed, so this ε is never below the grid's.
- ``"scorer"``: the challenge's grid: single thresholds every 0.01 between the
  smallest and largest confidence (in float32, as its code computes them);
  intervals whose right end runs over [min + w − 2, max + 2] of the peaky group
  (w its range) and whose left end runs over [right − w − 2, right − w + 2],
  400 steps each (so intervals are about as wide as the peaky group's range,
  ±2). Rates are computed in float64 here (the scorer: float32), so
  ε agrees with the scorer's to about 1e-6. A grid step can fall between two
  close confidences and miss an attack, so grid ε can be lower than exact ε.

Score of an example: bucket ``b = floor(ε / 0.5)`` earns ``2**-b`` points
(ε in [0, 0.5) → 1, [0.5, 1) → 1/2, ...) up to ``ceil(log(N − 1))``, the
largest ε that N unlearned models can show; beyond it 0 points. Forget quality
F = mean points over the forget set; final score = F · (RA_u / RA_r) · (TA_u / TA_r).
With N = 2 the truncation point is 0 and every example scores 0: ε needs more
models to say anything.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike

from unlearnkit.errors import UnlearnkitError

DELTA = 1e-5
EPSILON_CAP = 50.0
BUCKET_WIDTH = 0.5
PEAKY_RATIO = 0.01
# The challenge's grid: thresholds per unit of confidence, and the margin (in
# confidence units) its intervals extend beyond the peaky group.
GRID_PER_UNIT = 100
GRID_BUFFER = 2.0
# Cap on [examples × attacks] cells held at once by the exact interval family.
_CHUNK_CELLS = 4_000_000

Grid = Literal["exact", "scorer"]
Family = Literal["single", "interval"]
FAMILIES: tuple[Family, ...] = ("single", "interval")


def _as_confs(a: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise UnlearnkitError(f"{name}: expected an array [n_examples, n_models], got shape {x.shape}")
    if x.shape[1] < 2:
        raise UnlearnkitError(f"{name}: per-example ε needs at least 2 models, got {x.shape[1]}")
    if not np.isfinite(x).all():
        raise UnlearnkitError(f"{name}: confidences must be finite")
    return x


def _attack_epsilon(fpr: np.ndarray, fnr: np.ndarray, valid: np.ndarray, delta: float) -> np.ndarray:
    """Best ε over the last axis of attacks (rates in [0, 1]), with the scorer's rules.

    ``valid`` marks cells that are attacks at all. Returns ``max`` over the
    attacks kept, ``-inf`` where none is kept, ``inf`` for perfect separation.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = np.clip(eps, 0.0, None)
    both_zero = (fpr == 0) & (fnr == 0)
    one_zero = ((fpr == 0) | (fnr == 0)) & ~both_zero
    eps = np.where(both_zero, np.inf, eps)
    keep = valid & ~one_zero & ~np.isnan(eps)
    return np.where(keep, eps, -np.inf).max(axis=-1, initial=-np.inf)


def _runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For row-sorted values ``[E, n]``: is each column the first / last of a run of ties."""
    start = np.ones_like(v, dtype=bool)
    end = np.ones_like(v, dtype=bool)
    start[:, 1:] = v[:, 1:] != v[:, :-1]
    end[:, :-1] = start[:, 1:]
    return start, end


def _single_exact(pos: np.ndarray, neg: np.ndarray, delta: float) -> np.ndarray:
    """Single thresholds at every observed value; ``pos`` rows are the larger-median group."""
    n_p, n_n = pos.shape[1], neg.shape[1]
    values = np.concatenate([pos, neg], axis=1)
    is_pos = np.concatenate([np.ones(n_p), np.zeros(n_n)])
    order = np.argsort(-values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    lab = is_pos[order]
    # A cut after column k predicts positive for the k+1 largest values; a cut
    # inside a run of ties is no threshold.
    fnr = 1.0 - np.cumsum(lab, axis=1) / n_p
    fpr = np.cumsum(1.0 - lab, axis=1) / n_n
    _, end = _runs(v)
    return _attack_epsilon(fpr, fnr, end, delta)


def _interval_exact(inside: np.ndarray, outside: np.ndarray, delta: float) -> np.ndarray:
    """Every distinct interval attack of the challenge's family; ``inside`` rows are the peakier group.

    The family: intervals [l, r] with r in [min + w − 2, max + 2] of the inside
    group (w its range) and l in [r − w − 2, r − w + 2]. An attack is the set of
    sorted values i..j it covers; it exists when some (l, r) of the family has
    l in (v_{i−1}, v_i] and r in [v_j, v_{j+1}).
    """
    n_in, n_out = inside.shape[1], outside.shape[1]
    values = np.concatenate([inside, outside], axis=1)
    is_in = np.concatenate([np.ones(n_in), np.zeros(n_out)])
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    lab = is_in[order]
    e, n = v.shape
    zero = np.zeros((e, 1))
    cum_in = np.concatenate([zero, np.cumsum(lab, axis=1)], axis=1)
    cum_out = np.concatenate([zero, np.cumsum(1.0 - lab, axis=1)], axis=1)
    start, end = _runs(v)
    # Cell [e, i, j]: the interval covering sorted columns i..j.
    tpr = (cum_in[:, None, 1:] - cum_in[:, :n, None]) / n_in
    fpr = (cum_out[:, None, 1:] - cum_out[:, :n, None]) / n_out
    w = (inside.max(axis=1) - inside.min(axis=1))[:, None, None]
    r_min = inside.min(axis=1)[:, None, None] + w - GRID_BUFFER
    r_max = inside.max(axis=1)[:, None, None] + GRID_BUFFER
    below = np.concatenate([np.full((e, 1), -np.inf), v[:, :-1]], axis=1)  # v_{i-1}
    above = np.concatenate([v[:, 1:], np.full((e, 1), np.inf)], axis=1)  # v_{j+1}
    # r must satisfy: r >= lo_c, r > lo_o, r <= hi_c, r < hi_o (l's range folded in).
    lo_c = np.maximum(v[:, None, :], r_min)
    lo_o = below[:, :, None] + w - GRID_BUFFER
    hi_c = np.minimum(r_max, v[:, :, None] + w + GRID_BUFFER)
    hi_o = above[:, None, :]
    feasible = (lo_c <= hi_c) & (lo_c < hi_o) & (lo_o < hi_c) & (lo_o < hi_o)
    valid = feasible & start[:, :, None] & end[:, None, :] & np.triu(np.ones((n, n), dtype=bool))[None]
    return _attack_epsilon(fpr.reshape(e, -1), (1.0 - tpr).reshape(e, -1), valid.reshape(e, -1), delta)


def _single_grid(pos: np.ndarray, neg: np.ndarray, delta: float) -> np.ndarray:
    """The scorer's single-threshold grid for one example (1-d ``pos``, ``neg``)."""
    lo = min(pos.min(), neg.min())
    hi = max(pos.max(), neg.max())
    steps = int(math.ceil((hi - lo) * GRID_PER_UNIT))
    t = torch.linspace(float(lo), float(hi), steps, dtype=torch.float32).numpy().astype(np.float64)
    sp, sn = np.sort(pos), np.sort(neg)
    fnr = np.searchsorted(sp, t, side="left") / len(sp)  # pos < t
    fpr = 1.0 - np.searchsorted(sn, t, side="left") / len(sn)  # neg >= t
    return _attack_epsilon(fpr, fnr, np.ones_like(t, dtype=bool), delta)


def _interval_grid(inside: np.ndarray, outside: np.ndarray, delta: float) -> np.ndarray:
    """The scorer's interval grid for one example; ``inside`` is the peakier group."""
    width = inside.max() - inside.min()
    right_lo = inside.min() + width - GRID_BUFFER
    right_hi = inside.max() + GRID_BUFFER
    right = np.linspace(right_lo, right_hi, int(np.ceil((right_hi - right_lo) * GRID_PER_UNIT)))
    n_left = int(np.ceil(2 * GRID_BUFFER * GRID_PER_UNIT))
    left = np.concatenate([np.linspace(r - width - GRID_BUFFER, r - width + GRID_BUFFER, n_left) for r in right])
    right = np.repeat(right, n_left)
    si, so = np.sort(inside), np.sort(outside)
    # Count of values in [left, right] = #(<= right) − #(< left).
    tpr = (np.searchsorted(si, right, side="right") - np.searchsorted(si, left, side="left")) / len(si)
    fpr = (np.searchsorted(so, right, side="right") - np.searchsorted(so, left, side="left")) / len(so)
    return _attack_epsilon(fpr, 1.0 - tpr, np.ones_like(tpr, dtype=bool), delta)


def per_example_epsilon(
    unlearned: ArrayLike,
    retrained: ArrayLike,
    *,
    grid: Grid = "exact",
    families: tuple[Family, ...] = FAMILIES,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
    peaky_ratio: float = PEAKY_RATIO,
) -> np.ndarray:
    """ε of every example, shape ``[n_examples]``, in [0, cap] (lower = better unlearned).

    ``unlearned`` ``[n_examples, N_u]`` and ``retrained`` ``[n_examples, N_r]``
    hold logit-scaled confidences (N_u, N_r >= 2; they need not be equal).
    ``grid``: ``"exact"`` (every distinct attack) or ``"scorer"`` (the
    challenge's threshold grid); ``families``: which attack families to use
    (default both; ``("single",)`` gives the single-threshold ε alone).
    The exact families are vectorised over examples (the interval family holds
    ``n_examples × (N_u + N_r)²`` cells, in chunks); the grid loops over examples
    (~160,000 intervals each).
    """
    u = _as_confs(unlearned, "unlearned confidences")
    r = _as_confs(retrained, "retrained confidences")
    if u.shape[0] != r.shape[0]:
        raise UnlearnkitError(f"unlearned and retrained confidences cover {u.shape[0]} and {r.shape[0]} examples")
    if grid not in ("exact", "scorer"):
        raise UnlearnkitError(f"grid must be 'exact' or 'scorer', got {grid!r}")
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        raise UnlearnkitError(f"families must be a non-empty subset of {FAMILIES}, got {families!r}")
    n = u.shape[0]
    if n == 0:
        return np.zeros(0)

    # Single thresholds: positive = larger median (unlearned on a tie).
    r_pos = (np.median(r, axis=1) > np.median(u, axis=1))[:, None]
    # Intervals: inside = the peakier group; on equal ranges the smaller-median one.
    range_u, range_r = np.ptp(u, axis=1), np.ptp(r, axis=1)
    range_pos = np.where(r_pos[:, 0], range_r, range_u)
    range_neg = np.where(r_pos[:, 0], range_u, range_r)
    inside_is_pos = (range_pos < range_neg)[:, None]

    best = np.full(n, -np.inf)
    if grid == "exact":
        chunk = max(1, _CHUNK_CELLS // (u.shape[1] + r.shape[1]) ** 2)
        for a in range(0, n, chunk):
            s = slice(a, a + chunk)
            uu, rr = u[s], r[s]
            # Rows are split by orientation (the groups may differ in size).
            for to_r in (False, True):
                if "single" in families:
                    rows = np.flatnonzero(r_pos[s, 0] == to_r)
                    pos, neg = (rr[rows], uu[rows]) if to_r else (uu[rows], rr[rows])
                    if len(rows):
                        best[a + rows] = np.fmax(best[a + rows], _single_exact(pos, neg, delta))
                if "interval" in families:
                    rows = np.flatnonzero((r_pos[s, 0] == inside_is_pos[s, 0]) == to_r)  # inside = retrained
                    inside, outside = (rr[rows], uu[rows]) if to_r else (uu[rows], rr[rows])
                    if len(rows):
                        best[a + rows] = np.fmax(best[a + rows], _interval_exact(inside, outside, delta))
    else:
        for i in range(n):
            pos, neg = (r[i], u[i]) if r_pos[i, 0] else (u[i], r[i])
            if "single" in families:
                best[i] = max(best[i], float(_single_grid(pos, neg, delta)))
            if "interval" in families:
                inside, outside = (pos, neg) if inside_is_pos[i, 0] else (neg, pos)
                best[i] = max(best[i], float(_interval_grid(inside, outside, delta)))
    best = np.where(np.isneginf(best), 0.0, best)  # no usable attack: no evidence

    largest = np.maximum(range_u, range_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = (largest > 0) & (np.minimum(range_u, range_r) / largest < peaky_ratio)
    best = np.where(peaky, np.inf, best)
    return np.clip(best, 0.0, cap)


def bucket_score(
    epsilons: ArrayLike, *, width: float = BUCKET_WIDTH, max_epsilon: float | None = None
) -> np.ndarray:
    """Points per example: ``2 ** -floor(ε / width)``, shape like ``epsilons``.

    With ``max_epsilon`` (the challenge: :func:`challenge_max_epsilon`),
    examples with ε >= max_epsilon get 0.
    """
    e = np.asarray(epsilons, dtype=np.float64)
    points = np.exp2(-np.floor(e / width))
    if max_epsilon is not None:
        points = np.where(e >= max_epsilon, 0.0, points)
    return points


def challenge_max_epsilon(n_models: int) -> float:
    """The challenge's truncation point ``ceil(log(N − 1))`` for N unlearned models (N >= 2)."""
    if n_models < 2:
        raise UnlearnkitError(f"per-example ε needs at least 2 models, got {n_models}")
    return float(math.ceil(math.log(n_models - 1)))


def forget_quality(
    epsilons: ArrayLike, *, width: float = BUCKET_WIDTH, max_epsilon: float | None = None
) -> float:
    """F = mean :func:`bucket_score` over the forget set, in [0, 1] (1 = like retraining)."""
    e = np.asarray(epsilons, dtype=np.float64)
    return float(bucket_score(e, width=width, max_epsilon=max_epsilon).mean()) if e.size else math.nan


def final_score(
    forget_q: float, retain_acc_u: float, retain_acc_r: float, test_acc_u: float, test_acc_r: float
) -> float:
    """Challenge final score ``F · (RA_u / RA_r) · (TA_u / TA_r)`` (accuracies averaged over models).

    NaN when a reference accuracy is 0 or NaN.
    """
    if not retain_acc_r or not test_acc_r or math.isnan(retain_acc_r) or math.isnan(test_acc_r):
        return math.nan
    return float(forget_q * (retain_acc_u / retain_acc_r) * (test_acc_u / test_acc_r))
