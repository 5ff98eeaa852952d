"""Per-example ε and the NeurIPS 2023 unlearning challenge score (SPEC §8).

For each forget example we have the logit-scaled confidence
``log p_y − log(1 − p_y)`` under N unlearned and N retrained models (different
seeds). A threshold attack tries to tell the two groups apart; its false
positive / false negative rates at every threshold bound how far the unlearned
models are from (ε, δ)-indistinguishable from retraining on that example:

    ε = max over thresholds of max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)

clipped to [0, cap]. Rules taken from the challenge's grading code:

- the positive class of each example is the group with the larger median, and
  the attack predicts "positive" for confidences >= the threshold;
- a threshold with FPR = FNR = 0 (perfect separation) gives ε = cap;
- thresholds where exactly one of FPR, FNR is 0 are discarded (with N samples a
  single zero rate is an artefact of too few models);
- if one group's range (max − min) is below ``peaky_ratio`` times the other's,
  the unlearned distribution is degenerate and ε = cap.

Difference from the challenge: it also used a two-threshold (interval) rule
family; we sweep only single thresholds, at every observed value (the exact
set of distinct (FPR, FNR) pairs of that family), so our ε can only be lower.

Score of an example: bucket index ``b = floor(ε / 0.5)``, points ``2**-b``
(ε in [0, 0.5) → 1, [0.5, 1) → 1/2, [1, 1.5) → 1/4, ...). Forget quality
F = mean points over the forget set; final = F · (RA_u / RA_r) · (TA_u / TA_r).
The challenge also gave 0 points to ε >= ceil(log(N − 1)) (the largest finite
ε that N models can show); pass ``max_epsilon`` to apply that rule (with N = 2
it zeroes every example, so it is off by default).
"""

from __future__ import annotations

import math

import numpy as np

from unlearnkit.errors import UnlearnkitError

DELTA = 1e-5
EPSILON_CAP = 50.0
BUCKET_WIDTH = 0.5
PEAKY_RATIO = 0.01


def _as_confs(a, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise UnlearnkitError(f"{name}: expected an array [n_examples, n_models], got shape {x.shape}")
    if x.shape[1] < 2:
        raise UnlearnkitError(f"{name}: per-example ε needs at least 2 models, got {x.shape[1]}")
    if not np.isfinite(x).all():
        raise UnlearnkitError(f"{name}: confidences must be finite")
    return x


def per_example_epsilon(
    unlearned,
    retrained,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
    peaky_ratio: float = PEAKY_RATIO,
) -> np.ndarray:
    """ε of every example, shape ``[n_examples]``, in [0, cap] (lower = better unlearned).

    ``unlearned`` ``[n_examples, N_u]`` and ``retrained`` ``[n_examples, N_r]``
    hold logit-scaled confidences (N_u, N_r >= 2; they need not be equal).
    Vectorised over examples: one sort of ``[n_examples, N_u + N_r]``.
    """
    u = _as_confs(unlearned, "unlearned confidences")
    r = _as_confs(retrained, "retrained confidences")
    if u.shape[0] != r.shape[0]:
        raise UnlearnkitError(f"unlearned and retrained confidences cover {u.shape[0]} and {r.shape[0]} examples")
    n, n_u = u.shape
    n_r = r.shape[1]
    if n == 0:
        return np.zeros(0)

    # Make the unlearned group the positive (larger-median) one by mirroring rows
    # where the retrained median is larger: "x >= t" on -x is "x <= t" on x, and
    # the ε formula is symmetric in (FPR, FNR), so this is the challenge's rule.
    sign = np.where(np.median(r, axis=1) > np.median(u, axis=1), -1.0, 1.0)[:, None]
    values = np.concatenate([u * sign, r * sign], axis=1)
    is_pos = np.concatenate([np.ones(n_u), np.zeros(n_r)])
    order = np.argsort(-values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    lab = is_pos[order]
    # Cut after column k = predict positive for the k+1 largest values.
    fnr = 1.0 - np.cumsum(lab, axis=1) / n_u
    fpr = np.cumsum(1.0 - lab, axis=1) / n_r
    # A cut inside a run of tied values is not a threshold.
    valid = np.ones_like(v, dtype=bool)
    valid[:, :-1] = v[:, :-1] != v[:, 1:]

    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = np.clip(eps, 0.0, None)
    both_zero = (fpr == 0) & (fnr == 0)
    one_zero = (fpr * fnr == 0) & ~both_zero
    eps = np.where(both_zero, np.inf, eps)
    eps = np.where(valid & ~one_zero & ~np.isnan(eps), eps, -np.inf)
    best = eps.max(axis=1)
    best = np.where(np.isneginf(best), 0.0, best)  # no usable threshold: no evidence

    range_u, range_r = np.ptp(u, axis=1), np.ptp(r, axis=1)
    largest = np.maximum(range_u, range_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = (largest > 0) & (np.minimum(range_u, range_r) / largest < peaky_ratio)
    best = np.where(peaky, np.inf, best)
    return np.clip(best, 0.0, cap)


def bucket_score(epsilons, *, width: float = BUCKET_WIDTH, max_epsilon: float | None = None) -> np.ndarray:
    """Points per example: ``2 ** -floor(ε / width)``, shape like ``epsilons``.

    With ``max_epsilon`` (the challenge used ``ceil(log(N − 1))``), examples
    with ε >= max_epsilon get 0.
    """
    e = np.asarray(epsilons, dtype=np.float64)
    points = np.exp2(-np.floor(e / width))
    if max_epsilon is not None:
        points = np.where(e >= max_epsilon, 0.0, points)
    return points


def challenge_max_epsilon(n_models: int) -> float:
    """The challenge's truncation point ``ceil(log(N − 1))`` for N models per group."""
    return float(math.ceil(math.log(n_models - 1))) if n_models > 1 else 0.0


def forget_quality(epsilons, *, width: float = BUCKET_WIDTH, max_epsilon: float | None = None) -> float:
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
