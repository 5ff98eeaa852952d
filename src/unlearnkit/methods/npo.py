"""``npo``: negative preference optimisation on the forget set (Zhang et al., 2024), retain-free.

With ``log π(s)`` the total log-likelihood of forget example ``s`` (a classifier:
``log p(y | x)``; a sequence model: the sum over its predicted tokens of
``log p(x_{t+1} | x_{<=t})``), the loss is

    L = (2/β) · mean_s log(1 + (π_θ(s) / π_ref(s))^β) = (2/β) · mean_s softplus(β·(log π_θ(s) − log π_ref(s)))

where ``π_ref`` is the original model (its log-likelihoods are computed once,
before the first step, since it never changes). The gradient is gradient
ascent's reweighted by ``2·σ(β·r)``, ``r`` the log-ratio, so an example's push
fades once it is less likely than under the reference: NPO slows down the
collapse plain ascent runs into; as β → 0 it becomes gradient ascent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, cross_entropy, descend, epoch_batches, epoch_range, optimizer, rows
from unlearnkit.training import predict_logits, targets_for


class NpoParams(OptimParams):
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    beta: float = Field(0.1, gt=0, description="inverse temperature β of the preference loss")


def total_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log π`` per example ``[b]``: ``log p(y | x)`` for a classifier, the summed next-token
    log-probabilities (over non-padding targets) for a sequence model."""
    tokens = 1.0 if targets.dim() == 1 else (targets[:, 1:] != 0).sum(1).to(logits.dtype)
    return -cross_entropy(logits, targets) * tokens


def npo_loss(log_p: torch.Tensor, log_p_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """``(2/β) · mean softplus(β · (log_p − log_p_ref))`` over a batch of ``[b]`` log-likelihoods."""
    return (2.0 / beta) * F.softplus(beta * (log_p - log_p_ref)).mean()


@METHODS.register("npo")
class Npo(Method):
    """Negative preference optimisation on the forget set against the original as reference."""

    requires = frozenset()
    objectives = frozenset({"classify", "next_token"})
    Params = NpoParams
    tune_grid = {"lr": [1e-4, 1e-3, 1e-2], "epochs": [1, 5]}

    def run(self, ctx: MethodContext, params: NpoParams) -> MethodOutput:
        model, dev = ctx.model, ctx.device
        x, y = rows(ctx, ctx.forget)
        t = targets_for(model, x, y)
        ref = total_log_likelihood(predict_logits(model, x, device=dev), t).to(dev)
        opt = optimizer(model, params, ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        steps = 0
        for epoch in epoch_range(ctx, params.epochs, self.name):
            model.train()
            for b in epoch_batches(len(t), params.batch_size, gen):
                xb, tb = x[b].to(dev), t[b].to(dev)
                loss = npo_loss(total_log_likelihood(model(xb), tb), ref[b.to(dev)], params.beta)
                steps += 1
                descend(opt, loss, f"npo epoch {epoch + 1}, step {steps}")
        model.eval()
        # One forward pass for the reference plus forward+backward per epoch.
        return MethodOutput(model, (params.epochs + 1) * len(t), {"steps": steps})
