"""``neggrad_plus`` (NG+): minimise α·CE(D_r batch) − (1−α)·CE(S batch).

One epoch is one pass over S in batches; every forget batch is paired with a
retain batch of the same size drawn from an endless shuffled pass over D_r, so
the cost scales with |S|, not |D_r|.
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, cycle_batches, descend, epoch_batches, epoch_range, optimizer, rows


class NegGradPlusParams(OptimParams):
    lr: float = Field(0.01, gt=0)
    epochs: int = Field(5, ge=1)
    alpha: float = Field(0.98, ge=0, le=1, description="weight of the retain loss (1 = finetune only)")


@METHODS.register("neggrad_plus")
class NegGradPlus(Method):
    requires = frozenset({"retain"})
    Params = NegGradPlusParams
    tune_grid = {"lr": [0.01, 0.05], "epochs": [2, 5], "alpha": [0.95, 0.99]}

    def run(self, ctx: MethodContext, params: NegGradPlusParams) -> MethodOutput:
        model, dev = ctx.model.train(), ctx.device
        xf, yf = rows(ctx, ctx.forget)
        xr, yr = rows(ctx, ctx.retain)
        gen = torch.Generator().manual_seed(ctx.seed)
        opt = optimizer(model, params, ctx.seed)
        retain_batches = cycle_batches(len(yr), params.batch_size, gen)
        done = 0
        for epoch in epoch_range(ctx, params.epochs, "neggrad_plus"):
            for step, fb in enumerate(epoch_batches(len(yf), params.batch_size, gen)):
                rb = next(retain_batches)
                loss_r = torch.nn.functional.cross_entropy(model(xr[rb].to(dev)), yr[rb].to(dev))
                loss_f = torch.nn.functional.cross_entropy(model(xf[fb].to(dev)), yf[fb].to(dev))
                loss = params.alpha * loss_r - (1 - params.alpha) * loss_f
                descend(opt, loss, f"epoch {epoch + 1}, step {step + 1}")
                done += len(fb) + len(rb)
        return MethodOutput(model.eval(), done)
