"""Meta-unlearning: RUM (refine the forget set by difficulty, unlearn the groups in sequence)."""

from unlearnkit.meta.rum import (
    RumOutcome,
    centroid_scores,
    higher_is_harder_for,
    refine,
    retrain_reference,
    rum,
    rum_run,
    search_methods,
    validation_forget,
)

__all__ = [
    "RumOutcome",
    "centroid_scores",
    "higher_is_harder_for",
    "refine",
    "retrain_reference",
    "rum",
    "rum_run",
    "search_methods",
    "validation_forget",
]
