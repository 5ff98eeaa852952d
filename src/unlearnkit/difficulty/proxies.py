"""Memorization and its cheap proxies (docs/difficulty.md).

- memorization: read from a ``unlearnkit memorization`` directory (Feldman estimate),
  refused when it was estimated on another dataset, split or model architecture.
- confidence, binary_accuracy: means over epochs of the training dynamics
  recorded by ``unlearnkit train`` (free).
- cumulative_loss (cumulative sample loss, Ravikumar et al., ICML 2025) and
  loss_variance: the sum and the variance over epochs of each example's
  training loss, from the same dynamics (free).
- max_confidence, entropy: measured on the final model θ_o. The dynamics table
  records only p_true / correct / loss per epoch, so these two are not averaged
  over epochs (documented approximation).
- holdout_retraining: fine-tune a copy of θ_o on the validation split, symmetric
  KL between the two models' predictions on each training example.
- loss_curvature: input-space curvature on θ_o (the final checkpoint only; the
  definition averages over epochs, and runs keep one checkpoint).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.difficulty import geometry
from unlearnkit.difficulty.memorization import load_memorization
from unlearnkit.difficulty.scores import ScoreContext, register_score
from unlearnkit.errors import UnlearnkitError
from unlearnkit.runs import Run
from unlearnkit.training import TrainConfig, predict_logits, resolve_device, train

HOLDOUT_EPOCHS = 5
HOLDOUT_LR_FACTOR = 0.1  # fine-tune at a tenth of the run's learning rate, constant schedule
CURVATURE_H = 0.01
CURVATURE_BATCH = 256


def memorization_expectation(run: Run) -> dict[str, Any]:
    """What a memorization directory must match to score ``run``: its dataset and split, and
    its model architecture (passed as ``expect`` to :func:`load_memorization`)."""
    spec = run.meta.get("dataset", {})
    return {
        "dataset": {k: spec.get(k) for k in ("name", "val_fraction", "split_seed", "options")},
        "model": run.meta.get("model", {}).get("name"),
    }


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> np.ndarray:
    """KL(p‖q) + KL(q‖p) between the rows' softmax distributions, ``[n]`` (nats)."""
    la, lb = torch.log_softmax(logits_a.double(), 1), torch.log_softmax(logits_b.double(), 1)
    return ((la.exp() - lb.exp()) * (la - lb)).sum(1).numpy()


def holdout_retraining(
    model: nn.Module, x: torch.Tensor, x_holdout: torch.Tensor, y_holdout: torch.Tensor, cfg: TrainConfig,
    device: torch.device | str = "auto",
) -> np.ndarray:
    """Symmetric KL, per row of ``x`` ``[n, ...]``, between ``model`` and a copy of it
    fine-tuned on the held-out ``(x_holdout, y_holdout)`` with ``cfg``; ``[n]`` (nats).
    High => the example's prediction relied on training on it => higher memorization."""
    device = resolve_device(device)
    tuned = copy.deepcopy(model)
    train(tuned, x_holdout, y_holdout, cfg, device=device, record_dynamics=False, desc="holdout fine-tune",
          measure_fit=False)
    return symmetric_kl(predict_logits(model, x, device=device), predict_logits(tuned, x, device=device))


def loss_curvature(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, h: float = CURVATURE_H,
    batch_size: int = CURVATURE_BATCH, device: torch.device | str = "auto",
) -> np.ndarray:
    """Input-space loss curvature ``||∇x ℓ(x + h·v) − ∇x ℓ(x)||`` per example, ``[n]``.

    ``v = sign(∇x ℓ) / ||sign(∇x ℓ)||`` (per example). Batched: because each
    example's loss depends only on its own input (eval mode), the gradient of
    the summed batch loss w.r.t. the inputs is every example's own gradient.
    High => higher memorization.
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def input_grad(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        xb = xb.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xb), yb, reduction="sum")
        return torch.autograd.grad(loss, xb)[0].flatten(1)

    out = []
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb, yb = xb.to(device), yb.to(device)
            g = input_grad(xb, yb)
            s = g.sign()
            v = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)
            g2 = input_grad(xb + h * v.view_as(xb), yb)
            out.append((g2 - g).norm(dim=1).double().cpu())
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return torch.cat(out).numpy()


@register_score("memorization", higher_is_harder=True, needs=("memorization",),
                cost="K model trainings (`unlearnkit memorization`)")
def _memorization(ctx: ScoreContext) -> dict[str, np.ndarray]:
    """Feldman memorization (subsampled ensemble estimate) with its standard error; high => harder."""
    table, _ = load_memorization(ctx.memorization_dir, expect=memorization_expectation(ctx.run))
    table = table.set_index("index").reindex(ctx.index)
    cols = ["memorization", "memorization_se", "memorization_n_out"]
    return {c: table[c].to_numpy(dtype=np.float64) for c in cols if c in table.columns}


@register_score("confidence", higher_is_harder=False, needs=("dynamics",), cost="free (training dynamics)")
def _confidence(ctx: ScoreContext) -> np.ndarray:
    """Mean true-label probability over training epochs (C-proxy); high => easier (low memorization)."""
    return ctx.dynamics_means()["p_true"].to_numpy()


@register_score("binary_accuracy", higher_is_harder=False, needs=("dynamics",), cost="free (training dynamics)")
def _binary_accuracy(ctx: ScoreContext) -> np.ndarray:
    """Fraction of training epochs in which the example was classified correctly; high => easier."""
    return ctx.dynamics_means()["correct"].to_numpy()


def dynamics_losses(ctx: ScoreContext) -> pd.DataFrame:
    """Per-example sum and (population) variance over epochs of the recorded training loss,
    aligned with ``ctx.index`` (columns ``sum``, ``var``; nats, nats²)."""

    def load() -> pd.DataFrame:
        dyn = ctx.run.dynamics()
        stats = dyn.groupby("index")["loss"].agg(sum="sum", var=lambda v: float(np.var(v))).reindex(ctx.index)
        if stats.isna().any().any():
            raise UnlearnkitError(
                f"{ctx.run.path}: dynamics.parquet does not cover every trained example; re-run `unlearnkit train`"
            )
        return stats

    return ctx.cached("dynamics_losses", load)


@register_score("cumulative_loss", higher_is_harder=True, needs=("dynamics",), cost="free (training dynamics)")
def _cumulative_loss(ctx: ScoreContext) -> np.ndarray:
    """Cumulative sample loss: the example's training loss summed over epochs; high => harder (memorized)."""
    return dynamics_losses(ctx)["sum"].to_numpy(dtype=np.float64)


@register_score("loss_variance", higher_is_harder=True, needs=("dynamics",), cost="free (training dynamics)")
def _loss_variance(ctx: ScoreContext) -> np.ndarray:
    """Variance over epochs of the example's training loss; high => harder (memorized)."""
    return dynamics_losses(ctx)["var"].to_numpy(dtype=np.float64)


@register_score("max_confidence", higher_is_harder=False, cost="one forward pass")
def _max_confidence(ctx: ScoreContext) -> np.ndarray:
    """Largest predicted probability on the final model θ_o (not averaged over epochs); high => easier."""
    return geometry.max_confidence(ctx.logits())


@register_score("entropy", higher_is_harder=True, cost="one forward pass")
def _entropy(ctx: ScoreContext) -> np.ndarray:
    """Predictive entropy on the final model θ_o (not averaged over epochs); high => harder."""
    return geometry.entropy(ctx.logits())


@register_score("holdout_retraining", higher_is_harder=True, needs=("model", "validation"),
                cost=f"{HOLDOUT_EPOCHS} fine-tuning epochs on the validation split + 2 forward passes")
def _holdout_retraining(ctx: ScoreContext) -> np.ndarray:
    """Symmetric KL between θ_o and θ_o fine-tuned on the validation split; high => harder."""
    base = TrainConfig(**ctx.run.meta.get("train", {}))
    cfg = base.model_copy(update={
        "epochs": HOLDOUT_EPOCHS, "lr": base.lr * HOLDOUT_LR_FACTOR, "schedule": "constant",
        "augment": False, "seed": ctx.seed,
    })
    data = ctx.run.data
    return holdout_retraining(ctx.model, ctx.x, data.x_val, data.y_val, cfg, ctx.device)


@register_score("loss_curvature", higher_is_harder=True, needs=("model", "float_inputs"),
                cost="two batched input-gradient passes")
def _loss_curvature(ctx: ScoreContext) -> np.ndarray:
    """Input-space loss curvature on the final model θ_o (h = 0.01; not averaged over epochs); high => harder."""
    return loss_curvature(ctx.model, ctx.x, ctx.y, device=ctx.device)
