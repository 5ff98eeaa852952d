"""``influence`` (IU): one Newton-like step with a WoodFisher inverse-Hessian estimate.

Removing S from the empirical risk moves the optimum by approximately
``Δθ = H⁻¹ (w_S·ḡ_S − w_r·ḡ_r)`` where ḡ_S, ḡ_r are the mean loss gradients on
S and D_r and w_S = |S|/|D|, w_r = |D_r|/|D| (Koh & Liang; Jia et al. 2023).
H is estimated by the damped empirical Fisher ``F = λI + GᵀG/N`` of N retain
examples' per-example gradients G ``[N, P]`` (WoodFisher), inverted exactly
with the Woodbury identity (an N×N solve, never a P×P matrix). The update is
``θ ← θ + α·F⁻¹v``, α in [1, 100]. λ = 1 by default, as in the public code of
Jia et al. (whose rank-one Sherman-Morrison loop inverts ``I + GᵀG/N``): a
smaller λ amplifies the directions the Fisher sees little of.

Only a subset of the parameters is updated, to bound memory (G is N×P floats):
``scope="head"`` the classifier head (the task's ``head``), ``scope="last"``
(default) the head plus the last Linear/Conv layer of the body. Per-example gradients are batched with
``torch.func`` (vmap over grad), not a Python loop over examples. ḡ_r is
estimated on ``retain_samples`` random retain examples.
"""

from __future__ import annotations

from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnkit.errors import UnlearnkitError
from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput, Params
from unlearnkit.methods.common import rows
from unlearnkit.models.base import find_head


class InfluenceParams(Params):
    alpha: float = Field(10.0, ge=1, le=100, description="scale of the Newton step")
    damping: float = Field(1.0, gt=0, description="λ, added to the Fisher's diagonal")
    scope: Literal["head", "last"] = Field("last", description="parameters updated: head, or head + last body layer")
    fisher_samples: int = Field(512, ge=1, description="retain examples in the empirical Fisher (N)")
    retain_samples: int = Field(2048, ge=1, description="retain examples for the mean retain gradient")
    batch_size: int = Field(128, ge=1, description="chunk size of the batched per-example gradients")


def scoped_parameters(model: nn.Module, scope: str, head: nn.Linear | None = None) -> list[str]:
    """Names of the parameters the step updates: the ``head`` (default: :func:`find_head`),
    plus (scope "last") the last other Linear/Conv layer registered in the model."""
    head = find_head(model)[1] if head is None else head
    head_ids = {id(p) for p in head.parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in head_ids]
    if scope == "last":
        body = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and m is not head]
        if body:
            ids = {id(p) for p in body[-1].parameters()}
            names += [n for n, p in model.named_parameters() if id(p) in ids]
    return names


def per_example_grads(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor,
                      batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Per-example CE gradients w.r.t. ``names``, flattened, in chunks ``[b, P]`` (float32)."""
    params = dict(model.named_parameters())
    chosen = {n: params[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in params.items() if n not in chosen}
    frozen.update(dict(model.named_buffers()))

    def loss_one(sel, xi, yi):
        out = functional_call(model, {**frozen, **sel}, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        g = per_example(chosen, xb.to(device), yb.to(device))
        yield torch.cat([g[n].reshape(len(yb), -1) for n in names], 1)


def woodfisher_solve(G: torch.Tensor, v: torch.Tensor, damping: float) -> torch.Tensor:
    """``(λI + GᵀG/N)⁻¹ v`` for ``G [N, P]``, ``v [P]``, via Woodbury (λ = ``damping``)."""
    n, lam = G.shape[0], damping
    # Only the N×N system is solved in float64; G (N×P, the big one) stays float32.
    small = n * lam * torch.eye(n, dtype=torch.float64, device=G.device) + (G @ G.T).double()
    coef = torch.linalg.solve(small, (G @ v).double()).float()
    return (v - G.T @ coef) / lam


@METHODS.register("influence")
class Influence(Method):
    requires = frozenset({"retain", "head"})
    Params = InfluenceParams
    tune_grid = {"alpha": [1.0, 3.0, 10.0, 30.0, 100.0], "damping": [0.1, 1.0]}

    def run(self, ctx: MethodContext, params: InfluenceParams) -> MethodOutput:
        model, dev = ctx.model.eval(), ctx.device
        names = scoped_parameters(model, params.scope, ctx.task.head)
        rng = np.random.default_rng(ctx.seed)
        sample = rng.permutation(ctx.retain)[: params.retain_samples]
        xr, yr = rows(ctx, sample)
        xf, yf = rows(ctx, ctx.forget)
        g_forget = sum(g.sum(0) for g in per_example_grads(model, names, xf, yf, params.batch_size, dev)) / len(yf)
        fisher_rows, g_retain = [], 0.0
        for g in per_example_grads(model, names, xr, yr, params.batch_size, dev):
            g_retain = g_retain + g.sum(0)
            if sum(len(r) for r in fisher_rows) < params.fisher_samples:
                fisher_rows.append(g)
        g_retain = g_retain / len(yr)
        G = torch.cat(fisher_rows)[: params.fisher_samples]
        n_f, n_r = len(ctx.forget), len(ctx.retain)
        v = (n_f * g_forget - n_r * g_retain) / (n_f + n_r)
        step = params.alpha * woodfisher_solve(G, v, params.damping)
        if not torch.isfinite(step).all():
            raise UnlearnkitError("influence: the Newton step is not finite; stopped, nothing written")
        params_by_name, start = dict(model.named_parameters()), 0
        with torch.no_grad():
            for n in names:  # the order `per_example_grads` flattened them in
                p = params_by_name[n]
                p.add_(step[start : start + p.numel()].view_as(p))
                start += p.numel()
        return MethodOutput(model, len(yf) + len(yr), {"parameters": names, "step_norm": float(step.norm())})
