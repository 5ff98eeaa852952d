"""``retrain``: fresh initialisation, the original's training recipe, on D_r. The reference."""

from __future__ import annotations

from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput, Params
from unlearnkit.methods.common import rows
from unlearnkit.runs import new_model
from unlearnkit.training import TrainConfig, seed_everything, train


class RetrainParams(Params):
    seed: int | None = Field(None, description="initialisation/shuffling seed; default: the unlearn seed")


@METHODS.register("retrain")
class Retrain(Method):
    """Exact unlearning: train from scratch on D_r with ``run.meta["train"]``."""

    name = "retrain"
    needs_retain = True
    exact = True
    Params = RetrainParams

    def run(self, ctx: MethodContext, params: RetrainParams) -> MethodOutput:
        seed = ctx.seed if params.seed is None else params.seed
        cfg = TrainConfig(**{**ctx.run.meta["train"], "seed": seed})
        spec = ctx.run.meta["model"]
        seed_everything(seed)
        model = new_model(spec["name"], ctx.data, spec.get("kwargs", {}))
        x, y = rows(ctx, ctx.retain)
        res = train(
            model, x, y, cfg, device=ctx.device, record_dynamics=False, quiet=ctx.quiet, desc="retrain",
        )
        return MethodOutput(res.model, res.examples_processed)
