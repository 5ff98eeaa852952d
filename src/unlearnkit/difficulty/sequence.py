"""Sequence-level memorization and the forget requests of the sequence task.

Memorization of training sequence ``i`` is estimated as Feldman's in-vs-out gap,
with likelihood in place of correctness:

    mem_i = mean over models trained WITH i of ll_i  −  mean over models trained WITHOUT i of ll_i

where ``ll_i`` is the mean per-token log-likelihood (nats). The ``k`` models (k
even) come in complementary pairs: each pair splits the training set into two
random halves and trains one model on each, so every sequence is in exactly
``k/2`` models and out of ``k/2`` (no sequence lacks an "out" estimate, as can
happen with independent random subsets). All models train through the one
training loop with the original's recipe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unlearnkit.data import DataBundle, ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.sequence import sequence_log_likelihoods
from unlearnkit.runs import new_model
from unlearnkit.training import TrainConfig, resolve_device, seed_everything, train


def paired_half_masks(n: int, k: int, seed: int) -> np.ndarray:
    """Membership ``[k, n]`` (bool): rows ``2j`` and ``2j+1`` are complementary random halves."""
    if k < 2 or k % 2:
        raise UnlearnkitError(f"sequence memorization needs an even number of models k >= 2, got {k}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, n), dtype=bool)
    for j in range(k // 2):
        half = rng.permutation(n)[: n // 2]
        masks[2 * j, half] = True
        masks[2 * j + 1] = ~masks[2 * j]
    return masks


def in_out_gap(ll: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-example ``mean ll over models with it − mean ll over models without it`` from
    ``ll [k, n]`` and ``masks [k, n]``; NaN where one side has no model."""
    ll = np.asarray(ll, dtype=np.float64)
    m = np.asarray(masks, dtype=bool)
    n_in, n_out = m.sum(0), (~m).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ll * m).sum(0) / n_in - (ll * ~m).sum(0) / n_out


def sequence_memorization(
    data: DataBundle,
    model_name: str,
    cfg: TrainConfig,
    *,
    k: int = 4,
    model_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> pd.DataFrame:
    """Memorization of every training sequence (module docstring) from ``k`` models.

    Returns a table keyed by ``index`` (original training index) with columns
    ``memorization`` (nats per token; high = the sequence is much more likely when
    trained on) and ``ll_in``/``ll_out``.
    """
    dev = resolve_device(device)
    n = data.n_train
    masks = paired_half_masks(n, k, seed)
    ll = np.zeros((k, n))
    for j in range(k):
        seed_everything(seed * 1000 + j)
        model = new_model(model_name, data, model_kwargs)
        rows = np.nonzero(masks[j])[0]
        member_cfg = cfg.model_copy(update={"seed": seed * 1000 + j})
        train(model, data.x_train[rows], data.y_train[rows], member_cfg, device=dev,
              record_dynamics=False, quiet=quiet, desc=f"memorization model {j + 1}/{k}", measure_fit=False)
        ll[j] = sequence_log_likelihoods(model, data.x_train)[0]  # on its device; the numbers come back
    return pd.DataFrame({
        "index": data.index_train.numpy(),
        "memorization": in_out_gap(ll, masks),
        "ll_in": (ll * masks).sum(0) / masks.sum(0),
        "ll_out": (ll * ~masks).sum(0) / (~masks).sum(0),
    })


def most_memorized(scores: pd.DataFrame, size: int) -> ForgetSet:
    """The ``size`` training sequences with the highest memorization (ties by index)."""
    if not 1 <= size <= len(scores):
        raise UnlearnkitError(f"forget-set size must be in 1..{len(scores)}, got {size}")
    top = scores.sort_values(["memorization", "index"], ascending=[False, True]).head(size)
    return ForgetSet(top["index"].to_numpy(), {"kind": "memorization", "level": "high", "score": "sequence_memorization",
                                                "mean_memorization": float(top["memorization"].mean())})
