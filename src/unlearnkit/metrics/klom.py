"""KLoM: KL divergence of margins (Georgiev et al., "Attribute-to-Delete", ICLR 2025).

For one example, each model gives a *margin*: the correct-class logit minus the
log-sum-exp of the other logits (equal to ``log p_y − log(1 − p_y)``, the
statistic per-example ε uses), clipped to [−100, 100]. N unlearned models give
one sample of margins, N oracle models (retrained without the forget set,
different seeds) another. Both are binned on shared edges (20 equal bins over
the range of the two samples together) and

    KLoM_i = KL(P_oracle ‖ P_unlearned) = Σ_b p_b log(p_b / q_b),

with q_b raised to at least 1e-5 where p_b > 0 (then renormalised), so an empty
unlearned bin costs a large but finite amount. 0 = the unlearned models'
margins are distributed like retraining's; larger = further. The direction is
the one the data-unlearning-bench evaluation computes (its ``kl_from_margins``
is called with the oracle margins first, which its binning function treats as
P). Its binning (``np.digitize``) leaves out samples equal to the largest
value; here every sample is counted (the last bin is closed).

The benchmark reports, per split (forget, retain, validation), the 95th
percentile of KLoM over the split's examples: a method must be close on
nearly every example, not on average.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from unlearnkit.errors import UnlearnkitError

BINS = 20
SMOOTH = 1e-5
CLIP = 100.0
PERCENTILE = 95.0
_CHUNK = 20_000  # examples per histogram block


def _hist(x: np.ndarray, lo: np.ndarray, width: np.ndarray, bins: int) -> np.ndarray:
    """Per-row histogram ``[E, bins]`` of ``x [E, N]`` on edges ``lo + width * k / bins``."""
    idx = np.floor((x - lo[:, None]) / width[:, None] * bins).astype(np.int64)
    idx = np.clip(idx, 0, bins - 1)  # the largest value belongs to the last (closed) bin
    counts = np.zeros((x.shape[0], bins))
    np.add.at(counts, (np.repeat(np.arange(x.shape[0]), x.shape[1]), idx.ravel()), 1.0)
    return counts / x.shape[1]


def klom(
    unlearned: ArrayLike,
    oracle: ArrayLike,
    *,
    bins: int = BINS,
    smooth: float = SMOOTH,
    clip: float = CLIP,
) -> np.ndarray:
    """KLoM of every example, shape ``[n_examples]``, >= 0 (nats).

    ``unlearned`` ``[n_examples, N_u]`` and ``oracle`` ``[n_examples, N_o]``
    hold margins (N_u, N_o >= 2). Vectorised over examples.
    """
    u = np.asarray(unlearned, dtype=np.float64)
    o = np.asarray(oracle, dtype=np.float64)
    for name, a in (("unlearned margins", u), ("oracle margins", o)):
        if a.ndim != 2:
            raise UnlearnkitError(f"{name}: expected an array [n_examples, n_models], got shape {a.shape}")
        if a.shape[1] < 2:
            raise UnlearnkitError(f"{name}: KLoM needs at least 2 models per side, got {a.shape[1]}")
        if np.isnan(a).any():
            raise UnlearnkitError(f"{name}: margins must not be NaN")
    if u.shape[0] != o.shape[0]:
        raise UnlearnkitError(f"unlearned and oracle margins cover {u.shape[0]} and {o.shape[0]} examples")
    if bins < 1:
        raise UnlearnkitError(f"bins must be >= 1, got {bins}")
    out = np.empty(u.shape[0])
    for a in range(0, u.shape[0], _CHUNK):
        uu = np.clip(u[a:a + _CHUNK], -clip, clip)
        oo = np.clip(o[a:a + _CHUNK], -clip, clip)
        lo = np.minimum(uu.min(axis=1), oo.min(axis=1))
        hi = np.maximum(uu.max(axis=1), oo.max(axis=1))
        width = np.where(hi > lo, hi - lo, 1.0)  # all values equal: one bin of width 1
        p = _hist(oo, lo, width, bins)
        q = _hist(uu, lo, width, bins)
        q = np.where(p > 0, np.maximum(q, smooth), q)
        q = q / q.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p / q), 0.0)
        out[a:a + _CHUNK] = terms.sum(axis=1)
    return out


def klom_percentile(values: ArrayLike, q: float = PERCENTILE) -> float:
    """The ``q``-th percentile of per-example KLoM (NaN for no examples)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.percentile(v, q)) if v.size else float("nan")
