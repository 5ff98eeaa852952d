"""Hyperparameter search for an unlearning method, selecting by Tug-of-War.

The search never touches the forget sets you evaluate on, nor the test split:

- a *validation forget set* S_v (:func:`validation_forget_set`) is drawn from the
  examples the original trained on, minus ``avoid``: at random, or, with
  ``like=FORGET``, matched to FORGET's difficulty profile (the same quantiles of
  the score FORGET was built by, the same class mix; a random FORGET gets a
  random set with its class counts, a whole-class FORGET another whole class);
- the reference is ``retrain`` on D minus S_v with the original recipe, trained
  once and cached (in memory, and in ``reference_dir`` when given);
- each grid point unlearns S_v and is scored by
  ``ToW = (1−Δacc(S_v))(1−Δacc(D_r))(1−Δacc(validation split))`` against the
  reference, with the validation split in place of the test split.

Grids: ``small`` is the method's own few points (``Method.tune_grid``); ``wide``
crosses a log-spaced learning rate (1e-4..1e-1), two batch sizes, epochs up to the original's and
the method's own parameters (:data:`METHOD_AXES`). Epochs are searched by
successive halving: every other combination runs at the fewest epochs, the best
third goes on to the next epoch count, and so on. ``max_cost`` caps the examples
processed as a fraction of retraining's (the unlearning challenge used 0.2).

The best eligible ToW wins, compared in steps of :data:`TOW_RESOLUTION` (0.01: below that, a
difference is one or two validation-split examples, noise at these sizes). Ties (common: on a
model that interpolates its training set, every
small step changes no prediction, so whole rungs tie at the original's ToW) are broken by the
*margin gap*, the distance between the unlearned and the reference model's mean logit margin
on S_v: a continuous signal that moves before any prediction on S_v flips, so successive
halving promotes the settings that move toward the reference instead of the cheapest ones
(damage to D_r or the validation split already shows in ToW, the first key; their margins
alone shrinking, as a weight penalty does, changes no prediction and is not penalised).
Remaining ties go to the cheaper point (fewer examples processed). When no setting
beats doing nothing (the original's ToW on S_v) by a step, the ties go instead to the setting
that moves the original least (the *margin shift*, |mean margin on S_v − the original's|):
ToW then sees nothing gained by moving the model, and gradient ascent has its risks.
With confirming originals (``tune(confirm=[...])``), the best :data:`CONFIRM_TOP` settings are
re-run on each and the choice goes by the mean over every original.
A chosen setting that changes no prediction of the original is flagged ``collapsed_to:
"original"`` (a no-op), one that behaves exactly like a simpler method (l1_sparse with a
vanishing penalty is finetune) ``collapsed_to: <that method>``.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from unlearnkit.data import ForgetSet
from unlearnkit.errors import ConfigError, UnlearnkitError
from unlearnkit.io import read_json, write_json
from unlearnkit.meta.reference import retrain_reference
from unlearnkit.methods.api import retain_positions, unlearn_from_run as run_unlearn
from unlearnkit.methods.base import METHODS
from unlearnkit.metrics import logit_confidence, tug_of_war
from unlearnkit.models import Classifier
from unlearnkit.runs import Run
from unlearnkit.training import accuracy, predict_logits

GRIDS = ("small", "wide")
LOG_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
EPOCH_STEPS = (1, 2, 5, 10, 20, 30, 50, 100, 200)
# Batch sizes of the wide grid. At a fixed cost (examples processed) a smaller batch takes more,
# noisier steps; on a model that fits its data that is what lets retain-only methods forget
# (digits mlp, memorization-high, 6 epochs at lr 0.1: finetune ToW 0.61 at batch 128, 0.88 at 16).
BATCH_SIZES = (16, 128)
TOW_RESOLUTION = 0.01  # ToW differences below this rank as ties (broken by the margin gap)
CONFIRM_TOP = 3  # settings re-run on a second original before the choice (tune(confirm=))
ETA = 3  # successive halving keeps the best 1/ETA of the combinations at each epoch count
# The wide grid's method-specific axes (beside lr and epochs).
METHOD_AXES: dict[str, dict[str, list[Any]]] = {
    "l1_sparse": {"alpha": [1e-4, 1e-3, 1e-2]},
    "neggrad_plus": {"alpha": [0.9, 0.97, 0.99]},
    "salun": {"mask_ratio": [0.1, 0.5, 0.9]},
    "scrub": {"msteps": [2, 5], "temperature": [2.0, 4.0]},  # max-step epochs: 5 moves hard sets, 1-2 barely
    "imu": {"alpha": [0.0, 1e-4, 1e-3]},
    "boundary_shrink": {"eps": [0.03, 0.1, 0.3]},
}
# A method that, at some setting, is another method: (simpler method, its parameters dropped).
COLLAPSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "l1_sparse": ("finetune", ("alpha",)),
    "neggrad_plus": ("finetune", ("alpha",)),
    "salun": ("random_label", ("mask_ratio",)),
    "imu": ("imu_uniform", ()),
}
MATCH_TOLERANCE = 0.2  # largest mean shift in score quantile between FORGET and its matched set


# --------------------------------------------------------------------------- validation forget sets


def _labels(run: Run, indices: np.ndarray) -> np.ndarray:
    data = run.data
    return data.y_train.numpy()[data.positions(indices, what="training indices")]


def _pool(run: Run, like: ForgetSet | None, avoid: np.ndarray | None) -> np.ndarray:
    """Training indices the run trained on, minus ``like`` and ``avoid``."""
    trained = np.setdiff1d(run.data.index_train.numpy(), run.excluded)
    pool = trained
    for drop in (like.indices if like is not None else None, avoid):
        if drop is not None:
            pool = np.setdiff1d(pool, np.asarray(drop, dtype=np.int64))
    if len(pool) < 2:  # one to forget and one to retain, at the least
        removed = "--avoid" + (" and --like" if like is not None else "")
        raise ConfigError(
            f"{removed} leave {len(pool)} of the {len(trained)} examples the run trained on; a validation "
            "forget set needs at least 2 left (one to forget, one to retain): avoid fewer indices"
        )
    return pool


def check_like(run: Run, like: ForgetSet) -> None:
    """Refuse a FORGET built on another run or dataset (its provenance says which)."""
    what = like.source or "the --like forget set"
    ds = like.meta.get("dataset")
    if ds is not None and ds != run.data.name:
        raise UnlearnkitError(f"{what} was built on dataset '{ds}', not on this run's '{run.data.name}'")
    built_on = (like.meta.get("run") or {}).get("weights_sha256")
    mine = run.meta.get("weights_sha256")
    if built_on and mine and built_on != mine:
        raise UnlearnkitError(
            f"{what} was built on another run (weights sha256 {built_on[:12]}…, this run {mine[:12]}…); "
            "build it on this run or tune on the run it came from"
        )
    like.check(run.data)


def _score_table(run: Run, by: str, scores: pd.DataFrame | None) -> pd.Series:
    """Score ``by`` per original training index (NaN rows dropped): from ``scores``, the run's
    ``scores.parquet``, or computed on the fly for ``centroid_distance``."""
    from unlearnkit.difficulty.geometry import centroid_distance, run_embeddings
    from unlearnkit.difficulty.scores import load_scores

    if scores is None or by not in scores.columns:
        on_disk = run.path is not None and (Path(run.path) / "scores.parquet").exists()
        table = load_scores(run.path) if on_disk else None
        if table is not None and by in table.columns:
            scores = table
        elif by == "centroid_distance":
            pos, emb = run_embeddings(run)
            scores = pd.DataFrame({"index": run.data.index_train.numpy()[pos], by: centroid_distance(emb)})
        else:
            raise UnlearnkitError(
                f"the run has no score '{by}' to match the forget set's difficulty; compute it with "
                f"`unlearnkit score --run RUN_DIR {'--memorization MEM_DIR' if by == 'memorization' else '--scores ' + by}`"
            )
    col = scores.set_index("index")[by].astype(np.float64)
    return col[np.isfinite(col.to_numpy())]


def _random_like(run: Run, like: ForgetSet, pool: np.ndarray, seed: int) -> np.ndarray:
    """A random set with ``like``'s class counts, from ``pool``."""
    y_like, y_pool = _labels(run, like.indices), _labels(run, pool)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y_like, return_counts=True)
    avail = np.array([(y_pool == c).sum() for c in classes])
    if (counts > avail).any():
        most = int(np.floor(np.min(avail / (counts / len(like)))))
        raise UnlearnkitError(
            f"--like {like.source or 'forget set'}: no disjoint random set with its class mix exists "
            f"(class {int(classes[np.argmax(counts - avail)])} needs {int(counts[np.argmax(counts - avail)])}, "
            f"{int(avail[np.argmax(counts - avail)])} left after it and --avoid); a random FORGET here can have "
            f"at most about {most} examples"
        )
    return np.concatenate([rng.choice(pool[y_pool == c], size=k, replace=False) for c, k in zip(classes, counts)])


def _class_like(run: Run, like: ForgetSet, pool: np.ndarray, seed: int) -> np.ndarray:
    """Another whole class (the one closest in size to ``like``'s, ties at random), minus ``avoid``."""
    taken = np.unique(_labels(run, like.indices))
    y_pool = _labels(run, pool)
    others = [c for c in np.unique(y_pool) if c not in taken]
    if not others:
        raise UnlearnkitError(f"--like {like.source or 'forget set'}: no other class is left to tune on")
    rng = np.random.default_rng(seed)
    sizes = np.array([(y_pool == c).sum() for c in others])
    best = np.lexsort((rng.random(len(others)), np.abs(sizes - len(like))))[0]
    return pool[y_pool == others[best]]


def _score_like(run: Run, like: ForgetSet, pool: np.ndarray, by: str, scores: pd.DataFrame | None,
                seed: int, tolerance: float) -> tuple[np.ndarray, dict[str, float]]:
    """For each example of ``like``, the not-yet-taken pool example of the same label with the
    nearest score ``by`` (ties at random; when a class runs out, the nearest of any class).
    Returns the chosen indices and how close the match is (``class_mismatched``: how many came
    from another class):
    ``quantile_shift``, the mean shift of score quantile (rank among all scored trained examples,
    in [0, 1]) between the two sets, and both sets' mean score."""
    col = _score_table(run, by, scores)
    missing = np.setdiff1d(like.indices, col.index.to_numpy())
    if len(missing):
        raise UnlearnkitError(f"score '{by}' is missing for forget indices {missing[:5].tolist()}")
    pool = np.intersect1d(pool, col.index.to_numpy())  # e.g. memorization is NaN where no model held it out
    s_val, p_val = col.loc[like.indices].to_numpy(), col.loc[pool].to_numpy()
    y_like, y_pool = _labels(run, like.indices), _labels(run, pool)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    overflow: list[float] = []  # forget examples whose class has no candidate left: matched across classes
    for label in np.unique(y_like):
        rows = np.flatnonzero(y_pool == label)
        overflow += _nearest_untaken(np.sort(s_val[y_like == label]), pool[rows], p_val[rows], rng, chosen)
    if overflow:
        free = ~np.isin(pool, chosen)
        left = _nearest_untaken(np.array(overflow), pool[free], p_val[free], rng, chosen)
        if left:
            raise UnlearnkitError(
                f"--like {like.source or 'forget set'}: only {len(chosen)} scored training examples are left "
                f"besides it and --avoid, fewer than its {len(like)}"
            )
    chosen = np.array(chosen, np.int64)
    ranks = col.rank(method="average").sub(1).div(max(len(col) - 1, 1))
    shift = float(np.mean(np.abs(np.sort(ranks.loc[like.indices].to_numpy()) - np.sort(ranks.loc[chosen].to_numpy()))))
    if shift > tolerance:
        most = max(1, int(len(like) * tolerance / shift))
        raise UnlearnkitError(
            f"--like {like.source or 'forget set'}: no disjoint set of {len(like)} examples matches its '{by}' "
            f"profile: the closest shifts score quantiles by {shift:.2f} on average (at most {tolerance:.2f}); "
            f"a FORGET of this kind can have at most about {most} examples here"
        )
    return chosen, {"quantile_shift": round(shift, 4), "score_mean_like": float(np.mean(s_val)),
                    "score_mean": float(col.loc[chosen].mean()), "class_mismatched": len(overflow)}


def _nearest_untaken(want: np.ndarray, cand: np.ndarray, values: np.ndarray, rng: np.random.Generator,
                     chosen: list[int]) -> list[float]:
    """For each value of ``want`` (sorted), append to ``chosen`` the candidate index (``cand``,
    scores ``values``) with the nearest score not yet taken, ties at random; returns the values
    left unmatched once the candidates run out."""
    order = np.lexsort((rng.random(len(cand)), values))
    cand, values = cand[order], values[order]
    taken = np.zeros(len(cand), bool)
    for k, v in enumerate(want):
        if taken.all():
            return [float(x) for x in want[k:]]
        j = int(np.searchsorted(values, v))
        lo, hi = j - 1, j  # nearest untaken on each side
        while lo >= 0 and taken[lo]:
            lo -= 1
        while hi < len(cand) and taken[hi]:
            hi += 1
        if hi >= len(cand) or (lo >= 0 and v - values[lo] <= values[hi] - v):
            hi = lo
        taken[hi] = True
        chosen.append(int(cand[hi]))
    return []


def validation_forget_set(
    run: Run,
    size: int | None = None,
    seed: int = 1000,
    avoid: np.ndarray | None = None,
    *,
    like: ForgetSet | None = None,
    by: str | None = None,
    scores: pd.DataFrame | None = None,
    tolerance: float = MATCH_TOLERANCE,
) -> ForgetSet:
    """The one builder of validation forget sets (``tune`` and RUM's per-group search).

    Without ``like``: ``size`` (default 10% of the training set) random examples that
    ``run`` trained on, excluding ``avoid`` (e.g. the forget sets you will evaluate).
    With ``like``: a set disjoint from ``like`` and ``avoid`` with ``like``'s profile:
    matched on the score ``by`` (default the score ``like`` was built by, read from its
    provenance; scores from ``scores``, else the run's ``scores.parquet``) and class
    when it has one; ``like``'s class counts at random for a random ``like``; another
    whole class for a class ``like``. ``size`` does not apply with ``like``. A score
    match whose mean quantile shift exceeds ``tolerance`` is refused (the message says
    how large such a ``like`` can be).
    """
    avoided = int(0 if avoid is None else len(np.asarray(avoid)))
    if like is None:
        pool = _pool(run, None, avoid)
        size = max(1, round(0.1 * run.data.n_train)) if size is None else int(size)
        if size <= 0 or size >= len(pool):
            raise UnlearnkitError(f"--val-size must be in 1..{len(pool) - 1} (examples available), got {size}")
        chosen = np.random.default_rng(seed).choice(pool, size=size, replace=False)
        return ForgetSet(chosen, {"kind": "validation", "seed": int(seed), "avoided": avoided})
    if size is not None:
        raise UnlearnkitError("--val-size does not apply with --like (the matched set has the forget set's size)")
    check_like(run, like)
    pool = _pool(run, like, avoid)
    by = by or like.meta.get("score")
    meta: dict[str, Any] = {"kind": "validation", "like": like.meta.get("label") or like.kind, "like_kind": like.kind,
                            "like_sha256": like.sha256,
                            "seed": int(seed), "avoided": avoided}
    if like.kind == "class":
        chosen = _class_like(run, like, pool, seed)
        meta.update(match="another class", **{"class": int(_labels(run, chosen[:1])[0])})
    elif by:
        chosen, closeness = _score_like(run, like, pool, by, scores, seed, tolerance)
        meta.update(match="score and class", score=by, **closeness)
    else:
        chosen = _random_like(run, like, pool, seed)
        meta.update(match="class counts, at random")
    return ForgetSet(chosen, meta)


# --------------------------------------------------------------------------- reference and accuracies


def tune_accuracies(model: Classifier, run: Run, forget: ForgetSet) -> dict[str, float]:
    """What tuning scores: accuracy on S (``forget``), D_r (``retain``) and the validation split (``val``),
    and the mean logit margin (:func:`~unlearnkit.metrics.logit_confidence`, nats) on each as
    ``margin_forget``, ``margin_retain``, ``margin_val`` (the search's tie-breaker; NaN for a
    sequence model, whose logits are per token). One forward pass per split gives both."""
    fp = forget.check(run.data)
    d = run.data
    rp = retain_positions(run, fp)
    parts = {"forget": (d.x_train[fp], d.y_train[fp]), "retain": (d.x_train[rp], d.y_train[rp]), "val": (d.x_val, d.y_val)}
    acc, margins = {}, {}
    for name, (x, y) in parts.items():
        logits = predict_logits(model, x) if len(y) else None
        acc[name] = accuracy(model, x, y, logits=logits)
        margins[f"margin_{name}"] = (float(np.mean(logit_confidence(logits, y.numpy())))
                                     if logits is not None and logits.dim() == 2 else float("nan"))
    return {**acc, **margins}


def _accuracy_columns(acc: Mapping[str, float]) -> dict[str, float]:
    """A grid row's columns of :func:`tune_accuracies`: ``forget_acc``, ..., and the margins as they are."""
    return {(k if k.startswith("margin_") else f"{k}_acc"): v for k, v in acc.items()}


def _tow(acc: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """ToW of accuracies ``acc`` (:func:`tune_accuracies`) against the reference's, the validation split as test."""
    return tug_of_war({"forget": acc["forget"], "retain": acc["retain"], "test": acc["val"]},
                      {"forget": reference["forget"], "retain": reference["retain"], "test": reference["val"]})


def margin_gap(unlearned: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """|mean margin on S (unlearned) − mean margin on S (reference)| in nats (0 = the reference's);
    against the original's accuracies, the margin shift (how far the setting moved the model)."""
    return float(abs(unlearned["margin_forget"] - reference["margin_forget"]))


_REFERENCES: dict[str, dict[str, float]] = {}


def reference_accuracies(run: Run, forget: ForgetSet, *, seed: int = 0, device: str = "auto",
                         quiet: bool = True, reference_dir: str | Path | None = None) -> dict[str, float]:
    """Accuracies (and wall time / examples processed) of ``retrain`` on D minus ``forget``.

    Cached per (weights, forget set, seed): with ``reference_dir`` on disk as a run
    directory named by that key, else in memory; reused by later calls.
    """
    key = hashlib.sha256(f"{run.meta.get('weights_sha256')}|{forget.sha256}|{seed}".encode()).hexdigest()[:16]
    path = Path(reference_dir) / f"tune-reference-{key}" if reference_dir else None
    if path is None and key in _REFERENCES:
        return _REFERENCES[key]
    ref = retrain_reference(run, forget, seed=seed, device=device, quiet=quiet, out=path)
    accs = {**tune_accuracies(ref.model, run, forget), "seconds": ref.seconds, "examples_processed": ref.examples_processed}
    if path is None:
        _REFERENCES[key] = accs
    return accs


# --------------------------------------------------------------------------- grids and the search


def default_grid(method: str) -> dict[str, list[Any]]:
    """The method's small grid (``Method.tune_grid``)."""
    grid = METHODS.get(method).tune_grid
    if not grid:
        raise UnlearnkitError(f"method '{method}' has no hyperparameters to tune")
    return {k: list(v) for k, v in grid.items()}


def wide_grid(method: str, max_epochs: int) -> dict[str, list[Any]]:
    """lr log-spaced over 1e-4..1e-1 (for methods with an ``lr``), batch sizes
    :data:`BATCH_SIZES`, epochs from 1 up to ``max_epochs`` (the original's), and the
    method's own axes (:data:`METHOD_AXES`);
    methods without an lr (influence) keep their small grid."""
    fields = METHODS.get(method).Params.model_fields
    if "lr" not in fields:
        return default_grid(method)
    epochs = sorted({e for e in EPOCH_STEPS if e <= max_epochs} | {max(1, int(max_epochs))})
    grid: dict[str, list[Any]] = {"lr": list(LOG_LRS)}
    if "batch_size" in fields:
        grid["batch_size"] = list(BATCH_SIZES)
    if "epochs" in fields:
        grid["epochs"] = epochs
    grid.update({k: list(v) for k, v in METHOD_AXES.get(method, {}).items() if k in fields})
    return grid


def grid_for(method: str, grid: str | Mapping[str, Sequence[Any]] | None, max_epochs: int) -> dict[str, list[Any]]:
    """``grid``: ``"small"``, ``"wide"``, or ``{param: [values]}`` (None = small)."""
    if grid is None or grid == "small":
        return default_grid(method)
    if grid == "wide":
        return wide_grid(method, max_epochs)
    if isinstance(grid, str):
        raise UnlearnkitError(f"unknown grid '{grid}'; choose from: {', '.join(GRIDS)}, or give {{param: [values]}}")
    return {k: list(v) for k, v in grid.items()}


# evaluate(point) -> {"tow": float, "examples_processed": int, ...accuracies...}; raises UnlearnkitError on failure.
Evaluate = Callable[[dict[str, Any]], dict[str, Any]]


def search(grid: Mapping[str, Sequence[Any]], evaluate: Evaluate, *, budget: float | None = None,
           eta: int = ETA) -> pd.DataFrame:
    """Search ``grid`` with successive halving over its ``epochs`` axis (a plain grid without one).

    Every combination of the other axes runs at the fewest epochs; the best ``1/eta`` of them
    (by ToW, ties by ``margin_gap`` when ``evaluate`` returns it, then by examples processed)
    run at the next epoch count, and so on. ``budget``: the most examples a point
    may process; a point predicted (from its run at fewer epochs, linearly) to exceed it is
    not run, one that did exceed it is recorded but not eligible. Returns one row per point
    run: its values, ``rung``, what ``evaluate`` returned, ``eligible``, ``error``.
    """
    keys = [k for k in grid if k != "epochs"]
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]
    rungs = sorted(grid["epochs"]) if "epochs" in grid else [None]
    rows: list[dict[str, Any]] = []
    alive = list(range(len(combos)))
    last_cost: dict[int, tuple[int, int]] = {}  # combo -> (epochs, examples processed) of its last run
    for r, epochs in enumerate(rungs):
        scored = []
        for c in alive:
            point = {**combos[c], **({} if epochs is None else {"epochs": epochs})}
            if budget is not None and c in last_cost and epochs is not None:
                e0, w0 = last_cost[c]
                if w0 * epochs / e0 > budget:
                    continue  # predicted over the cost cap: not run
            row: dict[str, Any] = {**point, "rung": r}
            try:
                res = evaluate(dict(point))
            except UnlearnkitError as e:
                rows.append({**row, "tow": float("nan"), "eligible": False, "error": str(e)})
                continue
            work = int(res["examples_processed"])
            ok = budget is None or work <= budget
            rows.append({**row, **res, "eligible": ok, "error": None})
            if epochs is not None:
                last_cost[c] = (epochs, work)
            scored.append((*_rank_key(res["tow"], res.get("margin_gap"), work), c))
        scored.sort()
        alive = [key[-1] for key in scored[: max(1, math.ceil(len(scored) / eta))]]
        if not alive:
            break
    return pd.DataFrame(rows)


def _step(tow: float) -> int:
    """ToW in :data:`TOW_RESOLUTION` steps (what the ranking compares)."""
    return math.floor(tow / TOW_RESOLUTION + 1e-9)


def _finite(v: float | None) -> float:
    return v if v is not None and math.isfinite(v) else math.inf


def _rank_key(tow: float, gap: float | None, work: int, shift: float | None = None,
              least_change: bool = False) -> tuple:
    """Sort key of a grid point, best first: largest ToW (in :data:`TOW_RESOLUTION` steps), then
    smallest margin gap, then least work, then the exact ToW; with ``least_change``, the smallest
    margin shift from the original first after ToW."""
    gap, shift = _finite(gap), _finite(shift)
    if not math.isfinite(tow):
        return (math.inf, shift, gap, work, math.inf)
    return (-_step(tow), shift if least_change else 0.0, gap, work, -tow)


def _ranked(table: pd.DataFrame, baseline: float | None = None) -> pd.DataFrame:
    """``table``'s rows best first (:func:`_rank_key`; margin gap and shift where recorded). With
    ``baseline`` (doing nothing's ToW) and no row a step above it, the ties go to the setting that
    changes the original least (smallest ``margin_shift``: |mean margin on S_v − the original's|):
    when ToW sees no setting get closer to the reference than doing nothing, moving the model
    is not justified (measured: by the margin gap, neggrad_plus picked gradient ascent at lr 0.1
    on Fashion-MNIST's random sets, tied with doing nothing on S_v, and it cost 0.02-0.18 ToW on
    the evaluated ones; on the demo's entanglement-low sets, 30 epochs of ascent that diverged on
    one evaluated seed in 5)."""
    none = pd.Series([None] * len(table), index=table.index, dtype=object)
    tows = [float(t) for t in table["tow"]]
    finite = [t for t in tows if math.isfinite(t)]
    least_change = baseline is not None and bool(finite) and _step(max(finite)) <= _step(baseline)
    keys = [_rank_key(t, g, int(np.nan_to_num(w)), sh, least_change) for t, g, w, sh in
            zip(tows, table.get("margin_gap", none), table.get("examples_processed", none.fillna(0)),
                table.get("margin_shift", none))]
    return table.iloc[sorted(range(len(table)), key=lambda i: keys[i])]


def _eligible(table: pd.DataFrame, baseline: float | None = None) -> pd.DataFrame:
    """The rows that may be chosen (eligible, with a ToW), best first (``baseline``: see :func:`_ranked`)."""
    return _ranked(table[table["eligible"].astype(bool) & table["tow"].notna()] if len(table) else table, baseline)


CONFIRMED = ("tow", "margin_gap", "margin_shift")  # what the confirming originals measure again


def best_row(table: pd.DataFrame, baseline: float | None = None) -> pd.Series | None:
    """The eligible row of largest ToW (ties: smallest ``margin_gap`` if recorded, then fewest
    examples processed; the smallest ``margin_shift`` first when none beats ``baseline``, doing
    nothing's ToW); with a ``tow_confirm`` column, among the confirmed rows only, by the mean over
    every original (``tow`` on the first, ``tow_confirm`` the mean over the ``confirm_n``
    confirming ones; margin gaps and shifts likewise; ``baseline`` then the original's mean).
    None when no row qualifies."""
    ok = _eligible(table, baseline)
    if "tow_confirm" in ok:
        ok = ok[ok["tow_confirm"].notna()]
        n = ok["confirm_n"]
        ok = table.loc[_ranked(ok.assign(**{c: (ok[c] + n * ok[f"{c}_confirm"]) / (1 + n)
                                            for c in CONFIRMED if c in ok}), baseline).index]
    return None if ok.empty else ok.iloc[0]


def _confirm(table: pd.DataFrame, keys: list[str], evaluates: Sequence[Evaluate], top: int,
             baseline: float | None = None) -> pd.DataFrame:
    """``table`` with ``tow_confirm``, ``margin_gap_confirm``, ``margin_shift_confirm`` (means over
    the confirming originals) and ``confirm_n`` (how many): the ``top`` best eligible settings
    (whole points, epochs included; ``baseline`` as in :func:`_ranked`) run by each of
    ``evaluates``, one per confirming original."""
    table = table.assign(**{f"{c}_confirm": np.nan for c in CONFIRMED}, confirm_n=np.nan)
    for i in _eligible(table, baseline).index[:top]:
        point = {k: _plain(table.at[i, k]) for k in keys}
        runs = []
        for evaluate in evaluates:
            try:
                runs.append(evaluate(point))
            except UnlearnkitError:  # diverges on another original: never chosen over one that runs
                runs.append({"tow": 0.0, "margin_gap": math.inf, "margin_shift": math.inf})
        for c in CONFIRMED:
            table.loc[i, f"{c}_confirm"] = float(np.mean([r.get(c, math.nan) for r in runs]))
        table.loc[i, "confirm_n"] = len(evaluates)
    return table


@dataclass
class TuneResult:
    """Outcome of :func:`tune`.

    ``chosen``: the selected grid values; ``table``: one row per grid point run (its values,
    ``rung``, ``forget_acc``, ``retain_acc``, ``val_acc``, ``tow``, ``seconds``,
    ``examples_processed``, ``cost`` = examples / retraining's, ``eligible``, ``error``),
    best first; ``reference``: the retrained model's accuracies and cost on S_v;
    ``cost``: the chosen point's ``cost``; ``collapsed_to``: the simpler method the chosen
    setting reproduces exactly, or None.
    """

    method: str
    chosen: dict[str, Any]
    tow: float
    table: pd.DataFrame
    val_forget: ForgetSet
    reference: dict[str, float]
    seed: int
    grid: dict[str, list[Any]] = field(default_factory=dict)
    max_cost: float | None = None
    cost: float = float("nan")
    collapsed_to: str | None = None
    tow_confirm: float | None = None  # the chosen setting's mean ToW on the confirming originals
    tow_original: float | None = None  # doing nothing's ToW on S_v, mean over the originals

    def to_dict(self) -> dict[str, Any]:
        table = self.table.astype(object).where(self.table.notna(), None)
        return {
            "method": self.method,
            "chosen": self.chosen,
            "tow": self.tow,
            "tow_confirm": self.tow_confirm,
            "tow_original": self.tow_original,
            "cost": self.cost,
            "max_cost": self.max_cost,
            "collapsed_to": self.collapsed_to,
            "seed": self.seed,
            "selection": "max ToW on a validation forget set (validation split in place of test); "
                         "ToW in 0.01 steps; ties: smaller margin gap on S_v, then fewer examples; "
                         "epochs by successive halving; with confirming originals, the best "
                         f"{CONFIRM_TOP} re-run on each and chosen by the mean ToW over all originals; "
                         "when no setting beats doing nothing by a step, the one moving the original's "
                         "margin on S_v least",
            "search_grid": self.grid,
            "validation_forget": {**self.val_forget.meta, "size": len(self.val_forget),
                                  "sha256": self.val_forget.sha256, "indices": self.val_forget.indices.tolist()},
            "reference": self.reference,
            "grid": table.to_dict(orient="records"),
        }


def _full_params(method: str, point: Mapping[str, Any]) -> dict[str, Any]:
    """The class defaults with ``point`` on top, so that presets never leak into a search."""
    cls = METHODS.get(method)
    return {**cls.Params().model_dump(), **point}


def collapse_check(run: Run, forget: ForgetSet, method: str, chosen: Mapping[str, Any], *, seed: int = 0,
                   device: str = "auto", quiet: bool = True) -> str | None:
    """What ``method`` at ``chosen`` reduces to, or None: ``"original"`` when it changes no
    prediction of the original on the training set (S included) or the validation split (a
    no-op), else the simpler method of :data:`COLLAPSES` when both, run on ``forget`` with the
    shared values, give validation-split logits that agree to 1e-4 and the same predictions."""
    mine = run_unlearn(run, forget, method, _full_params(method, chosen), seed=seed, device=device, quiet=quiet).model
    x = torch.cat([run.data.x_train, run.data.x_val])
    if bool((predict_logits(mine, x).argmax(1) == predict_logits(run.model, x).argmax(1)).all()):
        return "original"
    if method not in COLLAPSES or COLLAPSES[method][0] not in METHODS:
        return None
    simpler, dropped = COLLAPSES[method]
    fields = METHODS.get(simpler).Params.model_fields
    shared = {k: v for k, v in _full_params(method, chosen).items() if k in fields and k not in dropped}
    other = run_unlearn(run, forget, simpler, _full_params(simpler, shared), seed=seed, device=device, quiet=quiet).model
    a, b = predict_logits(mine, run.data.x_val), predict_logits(other, run.data.x_val)
    same = bool((a.argmax(1) == b.argmax(1)).all()) and float((a - b).abs().max()) <= 1e-4 * max(1.0, float(a.abs().max()))
    return simpler if same else None


def tune(
    run: Run,
    method: str,
    *,
    grid: str | Mapping[str, Sequence[Any]] | None = None,
    like: ForgetSet | None = None,
    validation: ForgetSet | None = None,
    max_cost: float | None = None,
    val_size: int | None = None,
    val_seed: int = 1000,
    avoid: np.ndarray | None = None,
    scores: pd.DataFrame | None = None,
    tolerance: float = MATCH_TOLERANCE,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
    reference_dir: str | Path | None = None,
    confirm: Run | Sequence[Run] | None = None,
    confirm_top: int = CONFIRM_TOP,
) -> TuneResult:
    """Search ``method``'s hyperparameters on ``run`` by ToW on a validation forget set.

    ``grid``: ``"small"`` (default, the method's 6-12 points), ``"wide"`` (see module
    docstring) or ``{param: [values]}``. ``like``: tune on a set matched to this forget
    set's difficulty (:func:`validation_forget_set`, refusing a match whose quantiles shift by more
    than ``tolerance``); ``validation``: tune on this set instead (built beforehand, e.g. shared
    by several methods). ``max_cost``: the most examples
    a point may process, as a fraction of retraining's (> 0). A point whose unlearning
    fails (e.g. a NaN loss) is recorded with its error and ToW NaN. ``confirm``: other
    originals of the same recipe (other seeds; they must have trained on the validation set):
    the ``confirm_top`` best eligible settings are run on each too, against its own reference,
    and the choice goes by the mean ToW over all the originals (``tow_confirm`` in the table:
    the mean over the confirming ones), so that a setting that only works on some originals
    (gradient ascent at the edge of divergence) is not chosen.
    """
    cls = METHODS.get(method)
    if max_cost is not None and not max_cost > 0:
        raise UnlearnkitError(f"--max-cost must be > 0 (a fraction of retraining's examples), got {max_cost}")
    max_epochs = int((run.meta.get("train") or {}).get("epochs", 10))
    g = grid_for(method, grid, max_epochs)
    for vals in itertools.product(*g.values()):  # refuse unknown keys / bad values before any training
        cls.resolve_params(None, _full_params(method, dict(zip(g, vals))))
    forget = validation if validation is not None else validation_forget_set(
        run, val_size, val_seed, avoid, like=like, scores=scores, tolerance=tolerance)
    ref = reference_accuracies(run, forget, seed=seed, device=device, quiet=quiet, reference_dir=reference_dir)
    retrain_work = max(1, int(ref["examples_processed"]))

    def scorer(on: Run, reference: Mapping[str, float], original: Mapping[str, float]) -> Evaluate:
        def evaluate(point: dict[str, Any]) -> dict[str, Any]:
            out = run_unlearn(on, forget, method, _full_params(method, point), seed=seed, device=device, quiet=quiet)
            acc = tune_accuracies(out.model, on, forget)
            return {**_accuracy_columns(acc), "tow": _tow(acc, reference),
                    "margin_gap": margin_gap(acc, reference) if "margin_forget" in reference else float("nan"),
                    "margin_shift": margin_gap(acc, original),
                    "seconds": out.seconds, "examples_processed": out.examples_processed,
                    "cost": out.examples_processed / retrain_work}
        return evaluate

    # Doing nothing on each original: when no setting's ToW beats it, the one changing the original least wins.
    originals = [tune_accuracies(run.model, run, forget)]
    table = search(g, scorer(run, ref, originals[0]), budget=None if max_cost is None else max_cost * retrain_work)
    confirming = [confirm] if isinstance(confirm, Run) else list(confirm or [])
    refs = [reference_accuracies(c, forget, seed=seed, device=device, quiet=quiet, reference_dir=reference_dir)
            for c in confirming]
    originals += [tune_accuracies(c.model, c, forget) for c in confirming]
    nothing = [_tow(o, r) for o, r in zip(originals, [ref, *refs])]
    if confirming:
        table = _confirm(table, list(g), [scorer(c, r, o) for c, r, o in zip(confirming, refs, originals[1:])],
                         confirm_top, nothing[0])
    best = best_row(table, float(np.mean(nothing)))
    if best is None:
        first = next((e for e in table.get("error", pd.Series(dtype=object)) if e), None) if len(table) else None
        why = f"first error: {first}" if first else f"no point within --max-cost {max_cost}"
        raise UnlearnkitError(f"tune {method}: no grid point qualified; {why}")
    keys = list(g)
    chosen = {k: _plain(best[k]) for k in keys}
    table = _ranked(table, nothing[0]).reset_index(drop=True)
    collapsed = collapse_check(run, forget, method, chosen, seed=seed, device=device, quiet=quiet)
    return TuneResult(method, chosen, float(best["tow"]), table, forget, ref, seed, g, max_cost,
                      float(best["cost"]), collapsed, float(best["tow_confirm"]) if "tow_confirm" in best else None,
                      float(np.mean(nothing)))


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON and pydantic)."""
    return v.item() if isinstance(v, np.generic) else v


def write_tune(path: str | Path, result: TuneResult) -> None:
    """Write :meth:`TuneResult.to_dict` as JSON (atomically)."""
    write_json(path, result.to_dict())


def update_preset(path: str | Path, result: TuneResult, *, dataset: str, model: str, kind: str, command: str,
                  train: dict[str, Any] | None = None) -> None:
    """Merge ``result.chosen`` into the preset file ``path`` under ``model`` / ``kind`` / method
    (see :mod:`unlearnkit.methods.presets`), recording provenance under
    ``_provenance["model/kind/method"]``: command, date, the original's recipe, validation ToW
    and cost, and ``collapsed_to`` when the setting is another method's. A no-op setting
    (``collapsed_to`` original) is not shipped: only its provenance is recorded, with
    ``shipped: false``, so the fallback chain still applies."""
    from unlearnkit.methods.presets import merge_preset

    noop = result.collapsed_to == "original"
    merge_preset(path, model, kind, result.method, None if noop else result.chosen, methods=METHODS, provenance={
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": dataset,
        "train": train or {},
        "val_tow": round(result.tow, 4),
        **({"val_tow_confirm": round(result.tow_confirm, 4)} if result.tow_confirm is not None else {}),
        **({"val_tow_original": round(result.tow_original, 4)} if result.tow_original is not None else {}),
        "val_forget_size": len(result.val_forget),
        "val_forget_match": result.val_forget.meta.get("match", "random"),
        "cost": round(result.cost, 4),
        "max_cost": result.max_cost,
        "collapsed_to": result.collapsed_to,
        **({"shipped": False, "chosen": result.chosen} if noop else {}),
    })


def presets_from_bench(bench_dir: str | Path, path: str | Path, *, command: str) -> list[tuple[str, str, str]]:
    """Merge every finished ``tune`` unit of the bench in ``bench_dir`` into the preset file
    ``path`` (under the bench's model family and each unit's forget kind), with provenance
    naming ``command``; returns the (model, kind, method) entries written."""
    from unlearnkit.data import ForgetSet
    from unlearnkit.methods.presets import ANY, preset_kind

    bench_dir = Path(bench_dir)
    cfg = read_json(bench_dir / "config.json")
    model = cfg["model"]["name"]
    written = []
    for unit in sorted((bench_dir / "units" / "tune").glob("*/unit.json")):
        if not (unit.parent / "tune.json").exists():  # skipped: no matched validation set
            continue
        res = read_json(unit.parent / "tune.json")
        if METHODS.get(res["method"]).presets_of:  # an ablation (tuned by an older version) reads its method's
            continue
        v = res["validation_forget"]
        kind = preset_kind(v.get("like_kind")) if "like" in v else ANY
        result = TuneResult(res["method"], res["chosen"], res["tow"], pd.DataFrame(res["grid"]),
                            ForgetSet(np.asarray(v["indices"]), {k: x for k, x in v.items() if k != "indices"}),
                            res["reference"], res["seed"], res["search_grid"], res["max_cost"], res["cost"],
                            res["collapsed_to"], res.get("tow_confirm"), res.get("tow_original"))
        update_preset(path, result, dataset=cfg["dataset"]["name"], model=model, kind=kind,
                      command=f"{command} (tune unit '{read_json(unit)['label']}')", train=cfg["training"])
        written.append((model, kind, res["method"]))
    if not written:
        raise UnlearnkitError(f"{bench_dir}: no finished tune units (does its config have a tuning: block?)")
    return written
