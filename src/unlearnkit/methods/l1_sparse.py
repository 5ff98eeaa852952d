"""``l1_sparse``: finetune on D_r plus α_t·‖θ‖₁, α_t decaying linearly from α to 0
over the run (Jia et al., "Model sparsity can simplify machine unlearning")."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, cross_entropy, fit, rows


class L1SparseParams(OptimParams):
    lr: float = Field(0.01, gt=0)
    epochs: int = Field(10, ge=1)
    alpha: float = Field(5e-4, ge=0, description="initial weight of the L1 penalty (decays linearly to 0)")


@METHODS.register("l1_sparse")
class L1Sparse(Method):
    requires = frozenset({"retain"})
    Params = L1SparseParams
    tune_grid = {"lr": [0.01, 0.03, 0.1], "epochs": [1, 2], "alpha": [1e-5, 1e-4]}

    def run(self, ctx: MethodContext, params: L1SparseParams) -> MethodOutput:
        x, y = rows(ctx, ctx.retain)
        weights = list(ctx.model.parameters())
        total = params.epochs * math.ceil(len(y) / params.batch_size)
        step = 0

        def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # Called once per optimiser step by `train`; adding the penalty to every
            # per-example loss adds it once to their mean.
            nonlocal step
            alpha_t = params.alpha * (1 - step / total)
            step += 1
            return cross_entropy(logits, target) + alpha_t * sum(w.abs().sum() for w in weights)

        return MethodOutput(ctx.model, fit(ctx, params, x, y, loss_fn=loss_fn, desc="l1_sparse"))
