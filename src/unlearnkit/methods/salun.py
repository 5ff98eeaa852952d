"""``salun`` (SalUn): random_label with gradients masked to the most salient weights.

Saliency of a weight = |∂ CE(S) / ∂θ| (summed over the forget set, original
model). The mask keeps the LARGEST ``mask_ratio`` fraction over all weights
together (one public port keeps the smallest by mistake); only their gradients
pass (weight decay still applies to every weight, as in SalUn's code).
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, rows
from unlearnkit.methods.random_label import fit_random_labels


class SalUnParams(OptimParams):
    lr: float = Field(0.1, gt=0)
    epochs: int = Field(10, ge=1)
    mask_ratio: float = Field(0.5, gt=0, le=1, description="fraction of weights (largest saliency) allowed to change")


def saliency_mask(ctx: MethodContext, ratio: float, batch_size: int) -> dict[str, torch.Tensor]:
    """0/1 masks (parameter name -> tensor like the parameter) keeping the ``ratio`` most
    salient weights, saliency = |gradient of the summed CE over S|."""
    model, dev = ctx.model, ctx.device
    model.eval()
    model.zero_grad(set_to_none=True)
    x, y = rows(ctx, ctx.forget)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        torch.nn.functional.cross_entropy(model(xb.to(dev)), yb.to(dev), reduction="sum").backward()
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    flat = torch.cat([p.grad.abs().flatten() for _, p in named])
    keep = torch.zeros_like(flat)
    keep[flat.topk(max(1, round(ratio * flat.numel()))).indices] = 1.0
    model.zero_grad(set_to_none=True)
    masks, start = {}, 0
    for n, p in named:
        masks[n] = keep[start : start + p.numel()].view_as(p)
        start += p.numel()
    return masks


@METHODS.register("salun")
class SalUn(Method):
    requires = frozenset({"retain"})
    Params = SalUnParams
    tune_grid = {"lr": [0.01, 0.03, 0.1], "epochs": [1, 2]}

    def run(self, ctx: MethodContext, params: SalUnParams) -> MethodOutput:
        masks = saliency_mask(ctx, params.mask_ratio, params.batch_size)
        done = fit_random_labels(ctx, params, grad_mask=masks, desc="salun")
        kept = sum(int(m.sum()) for m in masks.values())
        return MethodOutput(ctx.model, done + len(ctx.forget), {"mask_kept": kept})
