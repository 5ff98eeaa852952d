"""``finetune`` (FT): keep training the original on D_r only."""

from __future__ import annotations

from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput
from unlearnkit.methods.common import OptimParams, fit, rows


class FinetuneParams(OptimParams):
    lr: float = Field(0.01, gt=0)
    epochs: int = Field(10, ge=1)


@METHODS.register("finetune")
class Finetune(Method):
    requires = frozenset({"retain"})
    objectives = frozenset({"classify", "next_token"})
    Params = FinetuneParams
    tune_grid = {"lr": [0.01, 0.03, 0.1], "epochs": [1, 2]}

    def run(self, ctx: MethodContext, params: FinetuneParams) -> MethodOutput:
        x, y = rows(ctx, ctx.retain)
        return MethodOutput(ctx.model, fit(ctx, params, x, y, desc="finetune"))
