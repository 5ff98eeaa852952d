"""``neggrad`` (GA): gradient ascent on the cross-entropy over the forget set S (retain-free)."""

from __future__ import annotations

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, cross_entropy, fit, rows


class NegGradParams(OptimParams):
    lr: float = Field(1e-4, gt=0)
    epochs: int = Field(5, ge=1)


def ascent_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Negated per-example cross-entropy: descending it ascends CE."""
    return -cross_entropy(logits, y)


@METHODS.register("neggrad")
class NegGrad(Method):
    requires = frozenset()
    objectives = frozenset({"classify", "next_token"})
    Params = NegGradParams
    tune_grid = {"lr": [1e-4, 1e-3, 1e-2], "epochs": [1, 5]}

    def run(self, ctx: MethodContext, params: NegGradParams) -> MethodOutput:
        x, y = rows(ctx, ctx.forget)
        return MethodOutput(ctx.model, fit(ctx, params, x, y, loss_fn=ascent_loss, desc="neggrad"))
