"""``retrain``: fresh initialisation (``task.build_model()``), the original's training recipe
(``task.recipe``), on D_r. The reference."""

from __future__ import annotations

from pydantic import Field

from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput, Params
from unlearnkit.methods.common import rows
from unlearnkit.training import seed_everything, train


class RetrainParams(Params):
    seed: int | None = Field(None, description="initialisation/shuffling seed; default: the unlearn seed")


@METHODS.register("retrain")
class Retrain(Method):
    """Exact unlearning: train a fresh model from scratch on D_r with the task's recipe."""

    requires = frozenset({"retain", "build_model", "recipe"})
    objectives = frozenset({"classify", "next_token"})
    exact = True
    Params = RetrainParams

    def run(self, ctx: MethodContext, params: RetrainParams) -> MethodOutput:
        seed = ctx.seed if params.seed is None else params.seed
        cfg = ctx.task.recipe.model_copy(update={"seed": seed})
        seed_everything(seed)
        model = ctx.task.build_model()
        x, y = rows(ctx, ctx.retain)
        res = train(
            model, x, y, cfg, device=ctx.device, record_dynamics=False, quiet=ctx.quiet, desc="retrain",
            measure_fit=False,
        )
        return MethodOutput(res.model, res.examples_processed)
