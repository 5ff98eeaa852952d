"""Per-example difficulty: scores, the Entanglement Score and forget sets by difficulty.
(The instance-level analysis runs methods, so it lives above them, in :mod:`unlearnkit.meta`.)

Importing this package registers every score (``proxies``, ``geometry``, ``influence``).
"""

from unlearnkit.difficulty.scores import (
    CHEAP_SCORES,
    SCORES,
    ScoreContext,
    ScoreSpec,
    compute_scores,
    load_scores,
    register_score,
    score_direction,
    score_run,
)
from unlearnkit.difficulty.geometry import entanglement_score, run_entanglement
from unlearnkit.difficulty import influence, proxies  # noqa: F401  (register their scores)
from unlearnkit.difficulty.forget_sets import forget_by_entanglement, forget_by_score

__all__ = [
    "CHEAP_SCORES",
    "SCORES",
    "ScoreContext",
    "ScoreSpec",
    "compute_scores",
    "entanglement_score",
    "forget_by_entanglement",
    "forget_by_score",
    "load_scores",
    "register_score",
    "run_entanglement",
    "score_direction",
    "score_run",
]
