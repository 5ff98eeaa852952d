"""Forget sets that isolate difficulty (SPEC §3): by any score column, and by entanglement.

Levels always speak in hardness: ``high`` is the hardest end whatever the
score's sign (confidence-type scores are inverted through the registry's
``higher_is_harder``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unlearnkit.data import ForgetSet
from unlearnkit.difficulty.geometry import centroid_distance, forget_entanglement, run_embeddings
from unlearnkit.difficulty.scores import SCORES, SCORES_FILE, load_scores, score_columns, score_direction
from unlearnkit.errors import UnlearnkitError
from unlearnkit.runs import Run

SCORE_LEVELS = ("low", "medium", "high", "mix")
ENTANGLEMENT_LEVELS = ("low", "medium", "high")
# RUM's bins for B = 15 (counting from 0): low = 3, medium = 12, high = 14; as fractions of B - 1.
ENTANGLEMENT_BIN_FRACTION = {"low": 3 / 14, "medium": 12 / 14, "high": 1.0}


def _check_level(level: str, allowed: tuple[str, ...]) -> None:
    if level not in allowed:
        raise UnlearnkitError(f"unknown level '{level}'; choose from: {', '.join(allowed)}")


def _check_size(size: int, available: int, what: str) -> None:
    if size < 1:
        raise UnlearnkitError(f"forget-set size must be >= 1, got {size}")
    if size > available:
        raise UnlearnkitError(f"forget-set size {size} is larger than {what} ({available} examples)")


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def _run_info(run: Run) -> dict[str, Any]:
    return {"path": str(run.path), "weights_sha256": run.meta.get("weights_sha256")}


def select_by_level(values: np.ndarray, higher_is_harder: bool, level: str, size: int, center: float,
                    seed: int = 0) -> np.ndarray:
    """Row numbers into ``values`` ``[n]`` (all finite) of the ``size`` examples of ``level``.

    low/high: the ``size`` least/most hard; medium: the ``size`` closest to
    ``center``; mix: a third of each (low, medium from what is left, high gets
    the remainder), disjoint. Ties are broken by a permutation drawn from ``seed``.
    """
    n = len(values)
    tie = np.random.default_rng(seed).permutation(n)
    hardness = values if higher_is_harder else -values
    by_hardness = np.lexsort((tie, hardness))  # ascending hardness
    by_center = np.lexsort((tie, np.abs(values - center)))
    if level == "low":
        return by_hardness[:size]
    if level == "high":
        return by_hardness[::-1][:size]
    if level == "medium":
        return by_center[:size]
    if size < 3:
        raise UnlearnkitError(f"level 'mix' needs a size of at least 3, got {size}")
    third = size // 3
    low = by_hardness[:third]
    high = by_hardness[::-1][: size - 2 * third]
    taken = np.union1d(low, high)
    medium = by_center[~np.isin(by_center, taken)][:third]
    return np.concatenate([low, medium, high])


def forget_by_score(
    run_or_scores: Run | pd.DataFrame, score: str, level: str, size: int, seed: int = 0
) -> ForgetSet:
    """A forget set of ``size`` examples at difficulty ``level`` of score column ``score``.

    ``run_or_scores``: a run (its ``scores.parquet`` is read, and the set's ES is
    computed from its embeddings) or a scores table (index + score columns; ES
    is then not recorded). ``level``: low | medium | high | mix, in hardness
    (``high`` = hardest). ``medium`` is the set closest to the median, or to 0.5
    for ``memorization`` itself (RUM). Examples with a missing score are skipped.
    ``meta`` records kind (``memorization-<level>`` or ``score:<name>-<level>``),
    score, level, size, seed, the score's statistics on the set and the ES.
    """
    _check_level(level, SCORE_LEVELS)
    run = run_or_scores if isinstance(run_or_scores, Run) else None
    table = load_scores(run.path) if run is not None else run_or_scores
    if score not in table.columns or score in ("index", "label"):
        have = ", ".join(score_columns(table)) or "none"
        where = f"{run.path / SCORES_FILE}" if run is not None else "the scores table"
        if score in SCORES:
            raise UnlearnkitError(
                f"score '{score}' is not in {where} (it has: {have}); "
                f"compute it with `unlearnkit score --run {run.path if run is not None else 'RUN_DIR'} --scores {score}`"
            )
        raise UnlearnkitError(
            f"unknown score '{score}'; {where} has: {have}; registered scores (computed by "
            f"`unlearnkit score --run RUN_DIR --scores NAME`): {', '.join(SCORES.names())}"
        )
    values = table[score].to_numpy(dtype=np.float64)
    ok = np.isfinite(values)
    index, values = table["index"].to_numpy()[ok], values[ok]
    _check_size(size, len(values), f"the training set with a '{score}' score")
    center = 0.5 if score == "memorization" else float(np.median(values))
    higher = score_direction(score)
    rows = select_by_level(values, higher, level, size, center, seed)
    kind = f"memorization-{level}" if score == "memorization" else f"score:{score}-{level}"
    meta: dict[str, Any] = {
        "kind": kind, "score": score, "level": level, "size": size, "seed": seed,
        "higher_is_harder": higher, "center": center if level in ("medium", "mix") else None,
        "score_stats": _stats(values[rows]), "score_stats_all": _stats(values),
    }
    if run is not None:
        pos, emb = run_embeddings(run)
        meta["es"] = forget_entanglement(pos, emb, run.data.positions(index[rows]))
        meta["run"] = _run_info(run)
    return ForgetSet(index[rows], meta)


def entanglement_bin(level: str, bins: int) -> int:
    """The bin (0-based, ascending centroid distance) of ``level`` among ``bins``:
    3, 12, 14 for 15 bins (RUM), scaled proportionally otherwise."""
    _check_level(level, ENTANGLEMENT_LEVELS)
    if bins < 3:
        raise UnlearnkitError(f"--bins must be at least 3 to separate low/medium/high, got {bins}")
    return int(round(ENTANGLEMENT_BIN_FRACTION[level] * (bins - 1)))


def forget_by_entanglement(run: Run, bins: int = 15, level: str = "high", size: int = 100, seed: int = 0) -> ForgetSet:
    """A forget set of ``size`` examples drawn (with ``seed``) from one entanglement bin.

    The run's trained examples are ranked by the distance of their θ_o
    embedding to the training centroid (ascending) and cut into ``bins`` equal
    bins; ``level`` picks the bin (:func:`entanglement_bin`). Raises if the bin
    holds fewer than ``size`` examples. ``meta`` records kind
    (``entanglement-<level>``), bins, bin, distance statistics and the ES.
    """
    b = entanglement_bin(level, bins)
    pos, emb = run_embeddings(run)
    _check_size(size, len(pos), "the training set")
    if bins > len(pos):
        raise UnlearnkitError(f"--bins {bins} is more than the {len(pos)} training examples")
    dist = centroid_distance(emb)
    order = np.argsort(dist, kind="stable")
    members = np.array_split(order, bins)[b]
    if len(members) < size:
        raise UnlearnkitError(
            f"entanglement bin {b} of {bins} holds {len(members)} examples, fewer than --size {size}; "
            "use fewer bins or a smaller size"
        )
    rows = np.sort(np.random.default_rng(seed).choice(members, size=size, replace=False))
    meta: dict[str, Any] = {
        "kind": f"entanglement-{level}", "score": "centroid_distance", "level": level, "size": size,
        "seed": seed, "bins": bins, "bin": b, "bin_size": int(len(members)),
        "score_stats": _stats(dist[rows]), "score_stats_all": _stats(dist),
        "es": forget_entanglement(pos, emb, pos[rows]), "run": _run_info(run),
    }
    return ForgetSet(run.data.index_train[pos[rows]].numpy(), meta)
