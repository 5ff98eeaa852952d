"""Self-influence (TracIn-style).

TracIn's self-influence of example i is Σ_checkpoints η_t ||∇θ ℓ_i(θ_t)||².
A run keeps only its final checkpoint, so this is the one-checkpoint version
η ||∇θ ℓ_i(θ_o)||², with η the run's base learning rate (the final learning
rate of a cosine schedule is 0, which would zero every score). With one
checkpoint it ranks examples exactly as ``grad_norm`` does; the values differ
(squared, scaled by η) and it shares grad_norm's batched per-example gradients.
"""

from __future__ import annotations

import numpy as np

from unlearnkit.difficulty.geometry import context_grad_sq_norms
from unlearnkit.difficulty.scores import ScoreContext, register_score


def tracin_self_influence(grad_sq_norms: list[np.ndarray], lrs: list[float]) -> np.ndarray:
    """Σ_t η_t ||∇ℓ_i(θ_t)||² from per-checkpoint squared gradient norms ``[n]`` and learning rates."""
    if len(grad_sq_norms) != len(lrs) or not lrs:
        raise ValueError("need one learning rate per checkpoint, and at least one checkpoint")
    return sum(lr * g for lr, g in zip(lrs, grad_sq_norms))


@register_score("self_influence", higher_is_harder=True,
                cost="shares grad_norm's batched per-example backward pass")
def _self_influence(ctx: ScoreContext) -> np.ndarray:
    """TracIn self-influence with the final checkpoint only, η·||∇θ ℓ||² (η = base lr); high => harder."""
    sq = context_grad_sq_norms(ctx)
    lr = float(ctx.run.meta.get("train", {}).get("lr", 1.0))
    return tracin_self_influence([sq], [lr])
