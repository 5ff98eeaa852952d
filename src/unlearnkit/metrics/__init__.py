"""Evaluation metrics: accuracies, ToW, MIA and per-example ε (SPEC §8)."""

from unlearnkit.metrics.tow import avg_gap, tow_mia, tug_of_war

__all__ = ["avg_gap", "tow_mia", "tug_of_war"]
