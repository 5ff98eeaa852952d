"""``random_label`` (RL): train on D_r ∪ S, S relabelled with random wrong labels."""

from __future__ import annotations

import torch
from pydantic import Field

from unlearnkit.data.base import cat_rows
from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, fit, random_wrong_labels, rows


class RandomLabelParams(OptimParams):
    lr: float = Field(0.1, gt=0)
    epochs: int = Field(10, ge=1)


def fit_random_labels(
    ctx: MethodContext, params: OptimParams, grad_mask: dict[str, torch.Tensor] | None = None, desc: str = "random_label"
) -> int:
    """Train ``ctx.model`` on D_r plus S with random wrong labels (optionally gradient-masked);
    returns examples processed. Shared by ``random_label`` and ``salun``."""
    xf, yf = rows(ctx, ctx.forget)
    xr, yr = rows(ctx, ctx.retain)
    y_wrong = random_wrong_labels(yf, ctx.data.num_classes, ctx.seed)
    x, y = cat_rows(xr, xf), torch.cat([yr, y_wrong])
    return fit(ctx, params, x, y, grad_mask=grad_mask, desc=desc)


@METHODS.register("random_label")
class RandomLabel(Method):
    requires = frozenset({"retain"})
    Params = RandomLabelParams
    tune_grid = {"lr": [0.01, 0.03, 0.1], "epochs": [1, 2]}

    def run(self, ctx: MethodContext, params: RandomLabelParams) -> MethodOutput:
        return MethodOutput(ctx.model, fit_random_labels(ctx, params))
