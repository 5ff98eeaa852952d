"""``boundary_shrink`` (Chen et al. 2023), retain-free.

For each forget example, a small FGSM step on the input (ε·sign ∇ₓCE) finds the
nearest wrong class: the class the perturbed input falls into, or, if it stays
in the true class, the perturbed input's runner-up class. S is relabelled with
it and the model is fine-tuned on S only. Inputs that are not floats (token
ids) cannot be perturbed; for them the clean runner-up class is used.
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, fit, rows


class BoundaryShrinkParams(OptimParams):
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(5, ge=1)
    eps: float = Field(0.1, ge=0, description="FGSM step size, in input units")


def nearest_wrong_labels(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                         batch_size: int, device: torch.device) -> torch.Tensor:
    """Per row of ``x [n, ...]``: the class an ε-FGSM step pushes it into, or the
    runner-up if it stays in ``y``; int64 ``[n]`` (CPU)."""
    model.eval()
    out = []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        xb, yb = xb.to(device), yb.to(device)
        if xb.is_floating_point():
            xb = xb.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            (gx,) = torch.autograd.grad(loss, xb)
            xb = (xb + eps * gx.sign()).detach()
        with torch.no_grad():
            top2 = model(xb).topk(2, dim=1).indices
        out.append(torch.where(top2[:, 0] == yb, top2[:, 1], top2[:, 0]).cpu())
    return torch.cat(out)


@METHODS.register("boundary_shrink")
class BoundaryShrink(Method):
    requires = frozenset()
    Params = BoundaryShrinkParams
    tune_grid = {"lr": [1e-3, 0.01, 0.03], "epochs": [1, 5]}

    def run(self, ctx: MethodContext, params: BoundaryShrinkParams) -> MethodOutput:
        x, y = rows(ctx, ctx.forget)
        labels = nearest_wrong_labels(ctx.model, x, y, params.eps, params.batch_size, ctx.device)
        done = fit(ctx, params, x, labels, desc="boundary_shrink")
        return MethodOutput(ctx.model, done + len(y))
