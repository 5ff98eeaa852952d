"""Tug-of-War (ToW) and friends: how close an unlearned model's accuracies are to
the retrained reference's. Pure functions: numbers in, numbers out."""

from __future__ import annotations

from typing import Mapping

SPLITS = ("forget", "retain", "test")


def _gaps(unlearned: Mapping[str, float], retrained: Mapping[str, float], keys) -> list[float]:
    return [abs(float(unlearned[k]) - float(retrained[k])) for k in keys]


def tug_of_war(unlearned: Mapping[str, float], retrained: Mapping[str, float]) -> float:
    """ToW = (1 - Δforget)(1 - Δretain)(1 - Δtest) in [0, 1]; 1 = same accuracies as retraining.

    Each argument maps ``"forget"``, ``"retain"``, ``"test"`` to an accuracy in [0, 1].
    """
    out = 1.0
    for g in _gaps(unlearned, retrained, SPLITS):
        out *= 1.0 - g
    return out


def tow_mia(unlearned: Mapping[str, float], retrained: Mapping[str, float]) -> float:
    """ToW with the forget-accuracy gap replaced by the MIA-efficacy gap (key ``"mia"``)."""
    out = 1.0
    for g in _gaps(unlearned, retrained, ("mia", "retain", "test")):
        out *= 1.0 - g
    return out


def avg_gap(unlearned: Mapping[str, float], retrained: Mapping[str, float]) -> float:
    """Mean absolute accuracy gap over forget, retain and test (lower is better)."""
    gaps = _gaps(unlearned, retrained, SPLITS)
    return sum(gaps) / len(gaps)


def tow_inputs(record: Mapping[str, float]) -> dict[str, float]:
    """What :func:`tug_of_war` and :func:`tow_mia` read (``forget``, ``retain``, ``test``, ``mia``),
    taken from a flat evaluation record (``forget_acc``, ``retain_acc``, ``test_acc``, ``mia_efficacy``)."""
    return {"forget": record["forget_acc"], "retain": record["retain_acc"], "test": record["test_acc"],
            "mia": record["mia_efficacy"]}
