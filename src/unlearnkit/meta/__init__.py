"""Meta-unlearning, the layer above the methods: RUM (refine the forget set by difficulty, unlearn the
groups in sequence), the instance-level analysis (how hard each forget example is for each method) and tuning on
validation forget sets matched to a forget set's difficulty."""

from unlearnkit.meta.instance import InstanceAnalysis, analyze_instances
from unlearnkit.meta.reference import Reference, retrain_reference

from unlearnkit.meta.rum import (
    RumOutcome,
    centroid_scores,
    refine,
    rum,
    rum_run,
    search_methods,
)
from unlearnkit.meta.tune import TuneResult, tune, validation_forget_set

__all__ = [
    "InstanceAnalysis",
    "analyze_instances",
    "RumOutcome",
    "centroid_scores",
    "refine",
    "Reference",
    "retrain_reference",
    "rum",
    "rum_run",
    "search_methods",
    "tune",
    "TuneResult",
    "validation_forget_set",
]
