"""Evaluation metrics: accuracies, ToW, MIA and per-example ε.

Pure functions (arrays in, numbers out) live in ``accuracy``, ``tow``, ``mia``,
``epsilon``, ``klom`` and ``stats`` (CIs and verdicts); ``evaluate`` applies
them to runs.
"""

from unlearnkit.metrics.accuracy import accuracy, logit_confidence, per_example_outputs
from unlearnkit.metrics.epsilon import (
    bucket_score,
    challenge_max_epsilon,
    final_score,
    forget_quality,
    per_example_epsilon,
)
from unlearnkit.metrics.evaluate import (
    EvalReport,
    EvalResult,
    check_reference,
    evaluate_model,
    evaluate_runs,
    load_runs,
)
from unlearnkit.metrics.klom import klom, klom_percentile
from unlearnkit.metrics.mia import mia_auc, mia_efficacy
from unlearnkit.metrics.stats import Verdict, correlation_verdict, mean_ci, paired_verdict
from unlearnkit.metrics.tow import avg_gap, tow_mia, tug_of_war

__all__ = [
    "EvalReport",
    "EvalResult",
    "Verdict",
    "accuracy",
    "avg_gap",
    "bucket_score",
    "challenge_max_epsilon",
    "check_reference",
    "correlation_verdict",
    "evaluate_model",
    "evaluate_runs",
    "final_score",
    "forget_quality",
    "klom",
    "klom_percentile",
    "load_runs",
    "logit_confidence",
    "mean_ci",
    "mia_auc",
    "mia_efficacy",
    "paired_verdict",
    "per_example_epsilon",
    "per_example_outputs",
    "tow_mia",
    "tug_of_war",
]
