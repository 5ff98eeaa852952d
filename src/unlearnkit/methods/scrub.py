"""``scrub`` (SCRUB, Kurmanji et al. 2023): teacher = the original model, student = its copy.

Each epoch: a max-step pass over S (maximise KL(teacher‖student) at temperature
T; only in the first ``msteps`` epochs), then a min-step pass over D_r
(minimise γ·CE + β·KL(teacher‖student)).
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import (
    OptimParams, cross_entropy, descend, epoch_batches, epoch_range, kl_to_teacher, optimizer, rows,
)


class ScrubParams(OptimParams):
    lr: float = Field(5e-3, gt=0)
    epochs: int = Field(5, ge=1)
    msteps: int = Field(4, ge=0, description="epochs that begin with a max-step pass over S")
    temperature: float = Field(4.0, gt=0)
    gamma: float = Field(0.99, ge=0, description="weight of CE in the min-steps")
    beta: float = Field(0.001, ge=0, description="weight of KL(teacher‖student) in the min-steps")


@METHODS.register("scrub")
class Scrub(Method):
    requires = frozenset({"retain"})
    Params = ScrubParams
    tune_grid = {"lr": [5e-3, 0.02, 0.05], "epochs": [1, 2]}

    def run(self, ctx: MethodContext, params: ScrubParams) -> MethodOutput:
        dev, student = ctx.device, ctx.model.train()
        teacher = copy.deepcopy(ctx.original).to(dev).eval()
        for w in teacher.parameters():
            w.requires_grad_(False)
        xf, _ = rows(ctx, ctx.forget)
        xr, yr = rows(ctx, ctx.retain)
        gen = torch.Generator().manual_seed(ctx.seed)
        opt = optimizer(student, params, ctx.seed)
        done = 0
        for epoch in epoch_range(ctx, params.epochs, "scrub"):
            if epoch < params.msteps:
                for step, b in enumerate(epoch_batches(len(xf), params.batch_size, gen)):
                    xb = xf[b].to(dev)
                    loss = -kl_to_teacher(student(xb), teacher(xb), params.temperature)
                    descend(opt, loss, f"epoch {epoch + 1}, max-step {step + 1}")
                    done += len(b)
            for step, b in enumerate(epoch_batches(len(xr), params.batch_size, gen)):
                xb, yb = xr[b].to(dev), yr[b].to(dev)
                logits = student(xb)
                loss = params.gamma * cross_entropy(logits, yb).mean() + params.beta * kl_to_teacher(
                    logits, teacher(xb), params.temperature
                )
                descend(opt, loss, f"epoch {epoch + 1}, min-step {step + 1}")
                done += len(b)
        return MethodOutput(student.eval(), done)
