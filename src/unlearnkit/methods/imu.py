"""IMU: influence-weighted, retain-free gradient ascent (docs/imu_sisa.md), and ``imu_uniform``,
the same procedure with uniform weights (the fair ablation).

Influence is restricted to the linear head ``W [C, d]``, ``b [C]`` (the task's
``head``). For one example with penultimate features ``h = task.features(x)`` and softmax ``p``, the gradient
of its cross-entropy is ``g = (p - onehot(y)) ⊗ [h; 1]`` (``[C, d + 1]``, bias
last). With ``E [n, C]`` the rows ``p_i - onehot(y_i)`` and ``H [n, d + 1]`` the
rows ``[h_i; 1]``, everything is closed form, from one batched forward pass:

- diagonal empirical Fisher ``F = (E∘E)ᵀ(H∘H) / n + λ``, mean gradient ``ḡ = EᵀH / n``;
- influence ``I_i = -g_iᵀ F⁻¹ ḡ = -Σ_cj E_ic M_cj H_ij`` with ``M = ḡ / F``, computed as
  ``-((E @ M) * H).sum(1)``: no per-example gradient is ever materialised.

Examples with ``I_i < 0`` are kept (optionally only the ``top_fraction`` largest
``|I_i|``); their weight is ``sqrt(|I_i|)`` clipped at the ``clip_percentile``-th
percentile of the kept weights; the others get 0. Each step minimises
``-Σ w_i ℓ_i / Σ w_i + α ||θ_head||₁`` (weight and bias) with SGD on the head
(``all_layers`` updates every parameter). ``recompute``: ``epoch`` (default,
"dynamic") recomputes influences and weights at the start of every epoch,
``step`` before every step (batches are drawn from the subset kept at the start of
the epoch; an example whose influence turned non-negative gets weight 0), ``once``
at the start only (what the public code does).

Since ``Σ_i I_i = -n ḡᵀF⁻¹ḡ <= 0``, some example has negative influence unless
the mean head gradient is exactly zero (e.g. a forget set fit with saturated
confidence); then IMU refuses with an error instead of silently doing nothing.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import (
    OptimParams, cross_entropy, descend, epoch_batches, epoch_range, rows, train_config,
)
from unlearnkit.task import Task
from unlearnkit.training import make_optimizer, predict_embeddings, targets_for


class ImuParams(OptimParams):
    """Defaults chosen on digits/mlp (see docs/imu_sisa.md)."""

    lr: float = Field(0.01, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.0, ge=0, description="L2 on the updated parameters (the L1 term is alpha)")
    alpha: float = Field(1e-4, ge=0, description="L1 penalty on the head's weight and bias")
    lam: float = Field(0.01, gt=0, description="damping λ added to the diagonal Fisher")
    clip_percentile: float = Field(93.0, gt=0, le=100, description="weights clipped at this percentile")
    top_fraction: float = Field(1.0, gt=0, le=1, description="keep this fraction of negative-influence examples")
    recompute: Literal["once", "epoch", "step"] = "epoch"
    all_layers: bool = Field(False, description="update every layer, not only the head")


@torch.no_grad()
def head_influence(head: nn.Linear, h: torch.Tensor, y: torch.Tensor, lam: float = 0.01) -> torch.Tensor:
    """Influences ``I [n]`` (returned as float64) of examples with embeddings ``h [n, d]`` and labels
    ``y [n]`` on the mean forget loss through ``head``, from the closed-form head gradients (module
    docstring). Computed in the head's precision (float32 matmuls are ~50x faster than float64 on
    CPU; the result matches per-example autograd to ~1e-6 relative).

    For a sequence model ``h [n, L, d]`` are the hidden states and ``y [n, L]`` the token ids
    (see :func:`sequence_head_influence`)."""
    h = h.to(head.weight.device, head.weight.dtype)
    y = y.to(head.weight.device)
    if h.dim() == 3:
        return sequence_head_influence(head, h, y, lam)
    logits = head(h)
    e = torch.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)  # [n, C]
    h1 = torch.cat([h, h.new_ones(len(h), 1)], dim=1)  # [n, d + 1]
    n = len(h)
    fisher = (e * e).T @ (h1 * h1) / n + lam  # [C, d + 1]
    mean_grad = e.T @ h1 / n  # [C, d + 1]
    return -((e @ (mean_grad / fisher)) * h1).sum(1).double()


@torch.no_grad()
def sequence_head_influence(head: nn.Linear, h: torch.Tensor, x: torch.Tensor, lam: float = 0.01) -> torch.Tensor:
    """Influences ``I [n]`` (float64) of sequences through the output layer of a next-token model.

    ``h [n, L, d]``: hidden states, position ``t`` predicting token ``x[:, t + 1]``; ``x [n, L]``:
    token ids (0 = padding, not predicted). A sequence's head gradient is the mean over its
    predicted tokens of ``(p_t - onehot(x_{t+1})) ⊗ [h_t; 1]``: a sum of outer products, so (unlike
    one example of a classifier) it does not factorise; it is built for all sequences at once with
    one batched contraction, ``G [n, C, d + 1]``. Then, as for classifiers, the diagonal Fisher
    ``F = mean_i G_i∘G_i + λ``, ``ḡ = mean_i G_i`` and ``I_i = -<G_i, ḡ / F>``.
    """
    hp, target = h[:, :-1], x[:, 1:]
    logits = head(hp)  # [n, L-1, C]
    mask = (target != 0).to(logits.dtype)
    e = (torch.softmax(logits, dim=2) - F.one_hot(target, logits.shape[2]).to(logits.dtype)) * mask[..., None]
    h1 = torch.cat([hp, hp.new_ones(*hp.shape[:2], 1)], dim=2)  # [n, L-1, d + 1]
    g = torch.einsum("ntc,ntd->ncd", e, h1) / mask.sum(1).clamp_min(1.0)[:, None, None]
    fisher = (g * g).mean(0) + lam
    return -(g * (g.mean(0) / fisher)).sum((1, 2)).double()


def model_influence(
    model: nn.Module | Task, x: torch.Tensor, y: torch.Tensor, lam: float = 0.01,
    batch_size: int = 1024, device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`head_influence` of rows ``x [n, ...]``, ``y [n]`` under a model or task (its head and
    features, in eval mode)."""
    task = model if isinstance(model, Task) else Task(model)
    feats = predict_embeddings(task.model, x, batch_size, device, features=task.features)
    return head_influence(task.head, feats, targets_for(task.model, x, y), lam)


def influence_by_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float = 0.01) -> torch.Tensor:
    """What :func:`model_influence` computes in batches, by its definition, one example at a time.

    g_i: the gradient of example i's cross-entropy w.r.t. the head (``model.head``, an
    ``nn.Linear`` with bias), from its own autograd call; F = mean_i g_i² + ``lam`` (the diagonal
    Fisher); I_i = -g_iᵀ F⁻¹ mean_j g_j. Returns ``[n]`` float64. Slow (n backward passes): the
    reference that tests/test_imu.py and benchmarks/imu.py hold the batched version to.
    """
    grads = []
    for i in range(len(y)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        gw, gb = torch.autograd.grad(loss, [model.head.weight, model.head.bias])
        grads.append(torch.cat([gw, gb[:, None]], 1).flatten().double())
    g = torch.stack(grads)
    return -(g @ (g.mean(0) / ((g * g).mean(0) + lam)))


def imu_weights(influence: torch.Tensor, clip_percentile: float = 93.0, top_fraction: float = 1.0) -> torch.Tensor:
    """Weights ``w [n]`` (float64): ``sqrt(|I_i|)`` for the kept examples (``I_i < 0``, then the
    ``top_fraction`` largest ``|I_i|``, ties by position), clipped at the ``clip_percentile``-th
    percentile of the kept weights; 0 for the others."""
    influence = influence.double()
    neg = influence < 0
    if not bool(neg.any()):
        raise UnlearnkitError(
            "imu: no forget example has negative influence (the mean head gradient on the forget set is zero, "
            "e.g. it is fit with saturated confidence), so there is nothing to unlearn by ascent; use another method"
        )
    mag = torch.where(neg, -influence, torch.zeros_like(influence))
    keep = neg.clone()
    if top_fraction < 1.0:
        k = max(1, math.ceil(top_fraction * int(neg.sum())))
        keep = torch.zeros_like(neg)
        keep[torch.argsort(mag, descending=True, stable=True)[:k]] = True
    w = torch.where(keep, mag.sqrt(), torch.zeros_like(mag))
    cap = torch.quantile(w[keep], clip_percentile / 100.0)
    return w.clamp(max=float(cap))


def influence_table(
    model: nn.Module | Task, x: torch.Tensor, y: torch.Tensor, index: np.ndarray,
    lam: float = 0.01, clip_percentile: float = 93.0, top_fraction: float = 1.0,
) -> pd.DataFrame:
    """Per-example ``index``, ``influence`` and IMU ``weight`` of rows ``x``, ``y``."""
    infl = model_influence(model, x, y, lam)
    w = imu_weights(infl, clip_percentile, top_fraction)
    return pd.DataFrame({"index": np.asarray(index, np.int64), "influence": infl.cpu().numpy(), "weight": w.cpu().numpy()})


@METHODS.register("imu")
class Imu(Method):
    """Influence-weighted gradient ascent on the forget set + L1 on the head (retain-free)."""

    requires = frozenset({"features", "head"})
    objectives = frozenset({"classify", "next_token"})
    Params = ImuParams
    uniform: ClassVar[bool] = False  # imu_uniform: w_i = 1 on the same kept examples
    tune_grid = {"lr": [1e-4, 1e-3, 1e-2], "epochs": [1, 5]}  # as neggrad: ascent diverges fast

    @staticmethod
    def features(ctx: MethodContext, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of rows ``x`` under the current ``ctx.model`` (eval mode, batched)."""
        return predict_embeddings(ctx.model, x, device=ctx.device, features=ctx.task.features)

    def run(self, ctx: MethodContext, params: ImuParams) -> MethodOutput:
        p, model, dev, head = params, ctx.model, ctx.device, ctx.task.head
        x, y = rows(ctx, ctx.forget)
        y = targets_for(model, x, y).to(dev)  # token ids for a sequence model
        n = len(y)
        # Head only: the body is frozen, so its (eval-mode) embeddings are computed once
        # and every step is a cheap head-only forward.
        h = None if p.all_layers else self.features(ctx, x).to(dev)
        trained = model.parameters() if p.all_layers else head.parameters()
        opt = make_optimizer(trained, train_config(p, ctx.seed))
        gen = torch.Generator().manual_seed(ctx.seed)
        computations = 0

        def refresh() -> torch.Tensor:
            nonlocal computations
            computations += 1
            feats = h if h is not None else self.features(ctx, x)
            w = imu_weights(head_influence(head, feats, y, p.lam), p.clip_percentile, p.top_fraction)
            return (w > 0).double() if self.uniform else w

        w = refresh()
        first_kept = int((w > 0).sum())
        steps = processed = 0
        for epoch in epoch_range(ctx, p.epochs, self.name):
            if epoch > 0 and p.recompute == "epoch":
                w = refresh()
            kept = torch.nonzero(w > 0)[:, 0]
            for b in epoch_batches(len(kept), p.batch_size, gen):
                if p.recompute == "step" and steps > 0:
                    w = refresh()
                idx = kept[b].to(dev)
                wb = w[idx].to(torch.float32)
                if float(wb.sum()) == 0.0:  # every example of this batch lost its negative influence
                    continue
                if h is not None:
                    logits = head(h[idx])
                else:
                    model.train()
                    logits = model(x[idx.cpu()].to(dev))
                loss = -(wb * cross_entropy(logits, y[idx])).sum() / wb.sum()
                loss = loss + p.alpha * sum(q.abs().sum() for q in head.parameters())
                descend(opt, loss, f"{self.name} epoch {epoch + 1}, step {steps + 1}")
                steps += 1
                processed += len(idx)
        model.eval()
        extra = {
            "forget": n,
            "kept": first_kept,
            "influence_computations": computations,
            "steps": steps,
            "recompute": p.recompute,
        }
        # Ascent rows (forward+backward) plus the forward passes of the influence computations.
        return MethodOutput(model, processed + computations * n, extra)


@METHODS.register("imu_uniform")
class ImuUniform(Imu):
    """IMU with ``w_i = 1`` on the same kept examples: same selection, loss form, optimiser and
    hyperparameters (imu's presets), so a comparison of the two isolates the weighting."""

    uniform = True
    presets_of = "imu"
    tune_grid = {}  # tuned through imu: its own tuning would compare two differently tuned methods
