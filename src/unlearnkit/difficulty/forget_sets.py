"""Forget sets that isolate difficulty: by any score column, and by entanglement.

Levels always speak in hardness: ``high`` is the hardest end whatever the
score's sign (confidence-type scores are inverted through the registry's
``higher_is_harder``). ``mix`` is a third of each level; when the size is not
divisible by 3 the extra examples go to the low end (RUM's code: 100 -> 34 low,
33 medium, 33 high).

Entanglement sets come in two constructions. ``es-quantiles`` (the default)
builds each level to hit a target Entanglement Score, so that the measured ES
of low < medium < high (see :func:`forget_by_entanglement`). ``rum-bins`` is
RUM's construction (rank by distance to the training centroid, equal bins,
the first examples of bin 3 / 12 / 14 of 15), kept for comparison: its ES is
not ordered by level in general (on digits its "high" set measured a lower ES
than its "low" set).
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
ENTANGLEMENT_LEVELS = SCORE_LEVELS
CONSTRUCTIONS = ("es-quantiles", "rum-bins")
# RUM's bins for B = 15 (counting from 0): low = 3, medium = 12, high = 14; as fractions of B - 1.
ENTANGLEMENT_BIN_FRACTION = {"low": 3 / 14, "medium": 12 / 14, "high": 1.0}
# es-quantiles: where each level's target ES sits between the most compact set (0) and a
# uniformly random set (1) of the same size, on a log scale.
ENTANGLEMENT_TARGET = {"low": 0.1, "medium": 0.5, "high": 0.9}
# Blend sizes tried between the two extremes (ES is computed exactly for each).
ENTANGLEMENT_GRID = 48


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
    n_low, n_med, n_high = mix_sizes(size)
    low = by_hardness[:n_low]
    high = by_hardness[::-1][:n_high]
    taken = np.union1d(low, high)
    medium = by_center[~np.isin(by_center, taken)][:n_med]
    return np.concatenate([low, medium, high])


def mix_sizes(size: int) -> tuple[int, int, int]:
    """(low, medium, high) sizes of a ``mix`` set: thirds, the remainder to low (as RUM's code)."""
    if size < 3:
        raise UnlearnkitError(f"level 'mix' needs a size of at least 3, got {size}")
    third = size // 3
    return size - 2 * third, third, third


def forget_by_score(
    run_or_scores: Run | pd.DataFrame, score: str, level: str, size: int, seed: int = 0,
    exclude: np.ndarray | None = None,
) -> ForgetSet:
    """A forget set of ``size`` examples at difficulty ``level`` of score column ``score``.

    ``run_or_scores``: a run (its ``scores.parquet`` is read, and the set's ES is
    computed from its embeddings) or a scores table (index + score columns; ES
    is then not recorded). ``level``: low | medium | high | mix, in hardness
    (``high`` = hardest; ``mix``: thirds, the remainder to low). ``medium`` is the set closest to the median, or to 0.5
    for ``memorization`` itself (RUM). Examples with a missing score are skipped.
    ``meta`` records kind (``memorization-<level>`` or ``score:<name>-<level>``),
    score, level, size, seed, the score's statistics on the set and the ES. Training indices in
    ``exclude`` are never chosen (levels are then taken among the others: ``high`` is the
    hardest of what is left).
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
    if exclude is not None:
        ok &= ~np.isin(table["index"].to_numpy(), exclude)
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
    _check_level(level, ("low", "medium", "high"))
    if bins < 3:
        raise UnlearnkitError(f"--bins must be at least 3 to separate low/medium/high, got {bins}")
    return int(round(ENTANGLEMENT_BIN_FRACTION[level] * (bins - 1)))


class _ESOracle:
    """Exact ES of any forget set of rows of ``emb`` ``[N, d]`` against the other rows, in
    O(size x d) per set from the totals (the same value as :func:`entanglement_score`)."""

    def __init__(self, emb: np.ndarray) -> None:
        self.emb = np.asarray(emb, dtype=np.float64)
        self.n = len(self.emb)
        self.total = self.emb.sum(0)
        self.sq = (self.emb**2).sum(1)
        self.total_sq = self.sq.sum()

    def __call__(self, rows: np.ndarray) -> float:
        k = len(rows)
        s_f = self.emb[rows].sum(0)
        mu_f, mu_r = s_f / k, (self.total - s_f) / (self.n - k)
        q_f = self.sq[rows].sum()
        intra = (q_f / k - mu_f @ mu_f) + ((self.total_sq - q_f) / (self.n - k) - mu_r @ mu_r)
        inter = ((mu_r - mu_f) ** 2).sum() / 4
        return float(intra / inter) if inter > 0 else float("inf")


def _blend(nearest: np.ndarray, shuffled: np.ndarray, k: int, size: int) -> np.ndarray:
    """The ``k`` rows nearest the anchor plus the first ``size - k`` other rows in random order."""
    core = nearest[:k]
    rest = shuffled[~np.isin(shuffled, core)][: size - k]
    return np.concatenate([core, rest])


def es_quantile_rows(emb: np.ndarray, level: str, size: int, seed: int, exclude: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows of ``emb`` ``[N, d]`` for one entanglement level, and how they were chosen.

    The least entangled set of a size is compact and far from the rest: the
    ``size`` nearest neighbours (in θ_o's embedding space) of an anchor example
    drawn with ``seed``. The most entangled is spread like the rest: a uniformly
    random sample. Sets in between blend the two (the ``k`` nearest plus
    ``size - k`` random rows); ES is computed exactly for a grid of ``k`` and
    the level takes the ``k`` whose ES is closest, on a log scale, to
    ``ENTANGLEMENT_TARGET[level]`` of the way from the compact set's ES to the
    random set's. Rows in ``exclude`` are never chosen.
    """
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(len(emb)), exclude if exclude is not None else [])
    if size >= len(emb) - 1 or size > len(pool):
        raise UnlearnkitError(f"forget-set size {size} leaves too few training examples to measure entanglement")
    oracle = _ESOracle(emb)
    anchor = int(rng.choice(pool))
    dist = np.linalg.norm(oracle.emb[pool] - oracle.emb[anchor], axis=1)
    nearest = pool[np.argsort(dist, kind="stable")]
    shuffled = rng.permutation(pool)
    ks = np.unique(np.linspace(0, size, min(size + 1, ENTANGLEMENT_GRID)).round().astype(int))
    es = np.array([oracle(_blend(nearest, shuffled, k, size)) for k in ks])
    lo, hi = np.log(es[-1]), np.log(es[0])  # k = size: compact; k = 0: random
    target = float(np.exp(lo + ENTANGLEMENT_TARGET[level] * (hi - lo)))
    best = int(np.argmin(np.abs(np.log(es) - np.log(target))))
    info = {"anchor_row": anchor, "neighbours": int(ks[best]), "target_es": target,
            "es_compact": float(es[-1]), "es_random": float(es[0])}
    return _blend(nearest, shuffled, int(ks[best]), size), info


def rum_bin_rows(dist: np.ndarray, level: str, size: int, bins: int, exclude: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """RUM's construction: rows ranked by ascending ``dist`` (stable), cut into ``bins`` bins of
    ``N // bins`` rows; the first ``size`` rows of the level's bin (:func:`entanglement_bin`),
    skipping rows in ``exclude``."""
    b = entanglement_bin(level, bins)
    if bins > len(dist):
        raise UnlearnkitError(f"--bins {bins} is more than the {len(dist)} training examples")
    width = len(dist) // bins
    members = np.argsort(dist, kind="stable")[b * width:(b + 1) * width]
    if exclude is not None:
        members = members[~np.isin(members, exclude)]
    if len(members) < size:
        raise UnlearnkitError(
            f"entanglement bin {b} of {bins} holds {len(members)} examples, fewer than --size {size}; "
            "use fewer bins or a smaller size"
        )
    return members[:size], {"bins": bins, "bin": b, "bin_size": int(len(members))}


def forget_by_entanglement(run: Run, bins: int = 15, level: str = "high", size: int = 100, seed: int = 0,
                           construction: str = "es-quantiles", exclude: np.ndarray | None = None) -> ForgetSet:
    """A forget set of ``size`` training examples at entanglement ``level`` (low | medium | high | mix).

    ``construction``: ``es-quantiles`` (:func:`es_quantile_rows`; ordered by
    measured ES by construction; ``bins`` unused) or ``rum-bins``
    (:func:`rum_bin_rows`; ``seed`` unused). ``mix``: the three levels built
    one after another without overlap, sizes :func:`mix_sizes`. ``meta``
    records kind (``entanglement-<level>``), construction, the ES, the
    centroid-distance statistics and the construction's choices. Training indices in
    ``exclude`` are never chosen (ES is still measured against every other training example).
    """
    _check_level(level, ENTANGLEMENT_LEVELS)
    if construction not in CONSTRUCTIONS:
        raise UnlearnkitError(f"unknown construction '{construction}'; choose from: {', '.join(CONSTRUCTIONS)}")
    if construction == "rum-bins":
        entanglement_bin("low", bins)  # validates bins
    pos, emb = run_embeddings(run)
    _check_size(size, len(pos), "the training set")
    dist = centroid_distance(emb)
    barred = np.flatnonzero(np.isin(run.data.index_train[pos].numpy(), exclude)) if exclude is not None \
        else np.zeros(0, dtype=np.int64)
    parts = zip(("low", "medium", "high"), mix_sizes(size)) if level == "mix" else [(level, size)]
    rows_of: list[np.ndarray] = []
    details: dict[str, Any] = {}
    for lv, n in parts:
        taken = np.concatenate([barred, *rows_of])
        if construction == "rum-bins":  # the bins are disjoint, so a mix needs no exclusion
            rows, info = rum_bin_rows(dist, lv, n, bins, exclude=barred)
        else:
            rows, info = es_quantile_rows(emb, lv, n, seed, exclude=taken)
            info["anchor_index"] = int(run.data.index_train[pos[info.pop("anchor_row")]])
        rows_of.append(rows)
        details[lv] = info
    rows = np.sort(np.concatenate(rows_of))
    meta: dict[str, Any] = {
        "kind": f"entanglement-{level}", "score": "centroid_distance", "level": level, "size": size,
        "seed": seed, "construction": construction,
        **(details[level] if level != "mix" else {"parts": details}),
        "score_stats": _stats(dist[rows]), "score_stats_all": _stats(dist),
        "es": forget_entanglement(pos, emb, pos[rows]), "run": _run_info(run),
    }
    return ForgetSet(run.data.index_train[pos[rows]].numpy(), meta)
