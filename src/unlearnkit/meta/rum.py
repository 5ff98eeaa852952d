"""RUM: refine the forget set by difficulty, then unlearn the groups in sequence (docs/rum.md).

1. :func:`refine` splits the forget set S into K equal-size groups by a per-example
   score (memorization or any proxy column of ``scores.parquet``; ``centroid_distance``
   of the penultimate embedding as the ES-based option).
2. :func:`rum` unlearns the groups one after another with any registered method(s),
   each step starting from the previous step's model.

Variants (``variant=``): ``vanilla`` (one method on all of S in one step), ``shuffle``
(K random groups in sequence), ``rum_f`` (the refined groups, the given method(s)) and
``rum`` (the method per group chosen by a search on a validation forget set, selecting
by Tug-of-War against a model retrained without that validation set).

Retain policy (``retain=``) at each step: ``strict`` (default) keeps all of S out of the
retain data; ``rum`` (as RUM's public code) keeps the not-yet-processed groups in it.
The policy is applied by giving :func:`unlearnkit.methods.unlearn` a view of the run whose
``excluded`` indices also hold the groups that must not count as retain.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from unlearnkit.data import ForgetSet
from unlearnkit.data.forget import check_trained_on
from unlearnkit.difficulty.scores import score_direction
from unlearnkit.difficulty.geometry import centroid_distance, run_embeddings
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, write_json
from unlearnkit.meta.reference import retrain_reference
from unlearnkit.meta.tune import best_row, grid_for, search, validation_forget_set
from unlearnkit.methods import METHODS, retain_positions, unlearn_from_run
from unlearnkit.metrics import tug_of_war
from unlearnkit.models import Classifier
from unlearnkit.runs import Run, evaluate_splits, excluded_meta, write_run
from unlearnkit.training import split_accuracies

VARIANTS = ("vanilla", "shuffle", "rum_f", "rum")
RETAIN_POLICIES = ("strict", "rum")
SKIP = ("none", "noop")
CENTROID = "centroid_distance"
DEFAULT_CANDIDATES = ("none", "finetune", "neggrad_plus", "salun", "l1_sparse")


# ---------------------------------------------------------------------------------------
# Refinement
# ---------------------------------------------------------------------------------------


def group_names(k: int) -> list[str]:
    """``low, medium, high`` for K=3, else ``g0 .. g{K-1}`` (g0 = least hard)."""
    return ["low", "medium", "high"] if k == 3 else [f"g{i}" for i in range(k)]


def _score_values(scores: pd.DataFrame, by: str, indices: np.ndarray, source: str = "the run") -> np.ndarray:
    """Score ``by`` of each original training index in ``indices`` ``[n]`` (float64)."""
    if by not in scores.columns:
        have = ", ".join(c for c in scores.columns if c not in ("index", "label")) or "none"
        how = "--memorization MEM_DIR" if by == "memorization" else f"--scores {by}"
        raise UnlearnkitError(
            f"{source} has no score '{by}' (has: {have}); compute it with "
            f"`unlearnkit score --run RUN_DIR {how}`"
        )
    if "index" not in scores.columns:
        raise UnlearnkitError(f"the scores of {source} have no 'index' column")
    col = scores.set_index("index")[by]
    missing = np.setdiff1d(indices, col.index.to_numpy())
    if len(missing):
        raise UnlearnkitError(f"score '{by}' of {source} lacks training indices {missing[:5].tolist()}")
    values = col.loc[indices].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise UnlearnkitError(f"score '{by}' is NaN for indices {indices[np.isnan(values)][:5].tolist()}")
    return values


def _hardness(values: np.ndarray, higher_is_harder: bool) -> np.ndarray:
    return values if higher_is_harder else -values


def refine(
    forget: ForgetSet,
    scores: pd.DataFrame,
    by: str,
    groups: int = 3,
    higher_is_harder: bool | None = None,
) -> dict[str, np.ndarray]:
    """Split S into ``groups`` equal-size groups by rank of the score ``by``.

    ``scores``: DataFrame with an ``index`` column (original training indices) and a
    column ``by``. ``higher_is_harder=None`` takes the score's declared direction
    (confidence-type scores are inverted: high confidence = low memorization).
    Ties are broken by index, so the split is deterministic.
    Returns ``{name: sorted int64 indices}`` from least to most hard
    (``low``/``medium``/``high`` for K=3; sizes differ by at most one).
    """
    if groups < 1:
        raise UnlearnkitError(f"groups must be >= 1, got {groups}")
    if len(forget) < groups:
        raise UnlearnkitError(
            f"cannot split a forget set of {len(forget)} examples into {groups} groups: a group would be empty"
        )
    hih = score_direction(by) if higher_is_harder is None else higher_is_harder
    idx = forget.indices
    rank = np.lexsort((idx, _hardness(_score_values(scores, by, idx), hih)))
    return {name: np.sort(idx[part]) for name, part in zip(group_names(groups), np.array_split(rank, groups))}


def centroid_scores(run: Run) -> pd.DataFrame:
    """ES-based refinement score, computed on the fly: distance of each trained example's
    penultimate embedding g(x) under the run's model to their exact centroid.

    Returns a DataFrame with columns ``index`` and ``centroid_distance`` (Euclidean, in
    embedding units; larger = more atypical, i.e. harder), one row per trained example.
    """
    pos, emb = run_embeddings(run)
    return pd.DataFrame({"index": run.data.index_train.numpy()[pos], CENTROID: centroid_distance(emb)})


def load_scores(run: Run) -> pd.DataFrame:
    """The run's ``scores.parquet`` (one row per training example)."""
    path = Path(run.path) / "scores.parquet"
    if not path.exists():
        raise UnlearnkitError(
            f"{run.path} has no scores.parquet; compute scores with `unlearnkit score --run RUN_DIR "
            f"--scores NAME` (or `--memorization MEM_DIR`), or refine by '{CENTROID}'"
        )
    return pd.read_parquet(path)


def _scores_for(run: Run, by: str, scores: pd.DataFrame | None) -> pd.DataFrame:
    if scores is not None and by in scores.columns:
        return scores
    if by == CENTROID:
        return centroid_scores(run)
    return load_scores(run) if scores is None else scores


# ---------------------------------------------------------------------------------------
# Plans: which groups, in which order, with which method and hyperparameters
# ---------------------------------------------------------------------------------------


def _method_per_group(methods: str | Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """One method for all groups, or one per group (in ``names`` order); "noop" -> "none"."""
    listed = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    if len(listed) == 1:
        listed = listed * len(names)
    if len(listed) != len(names):
        raise UnlearnkitError(
            f"got {len(listed)} methods for {len(names)} groups ({', '.join(names)}); give one or one per group"
        )
    out = {}
    for name, m in zip(names, listed):
        m = "none" if m in SKIP else m
        if m != "none":
            METHODS.get(m)  # one-line error listing the registered methods
        out[name] = m
    return out


def _params_per_group(params: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{key: value}`` applies to every group, ``{group: {key: value}}`` to one (wins)."""
    shared = {k: v for k, v in (params or {}).items() if not isinstance(v, Mapping)}
    out = {name: dict(shared) for name in names}
    for k, v in (params or {}).items():
        if isinstance(v, Mapping):
            if k not in out:
                raise UnlearnkitError(f"hyperparameters name unknown group '{k}' (groups: {', '.join(names)})")
            out[k].update(v)
    return out


def _check_order(order: Sequence[str] | None, names: Sequence[str]) -> list[str]:
    if order is None:
        return list(names)
    order = [str(o).strip() for o in order]
    unknown = [o for o in order if o not in names]
    if unknown:
        raise UnlearnkitError(f"order names unknown group(s) {', '.join(unknown)} (groups: {', '.join(names)})")
    if sorted(order) != sorted(names):
        raise UnlearnkitError(f"order must name each group exactly once: {', '.join(names)}")
    return order


def _shuffled_groups(forget: ForgetSet, k: int, seed: int) -> dict[str, np.ndarray]:
    if len(forget) < k:
        raise UnlearnkitError(
            f"cannot split a forget set of {len(forget)} examples into {k} groups: a group would be empty"
        )
    perm = np.random.default_rng(seed).permutation(forget.indices)
    return {f"r{i}": np.sort(part) for i, part in enumerate(np.array_split(perm, k))}


# ---------------------------------------------------------------------------------------
# Sequential unlearning
# ---------------------------------------------------------------------------------------


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash of a model's parameters and buffers (identifies each step's input/output)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _view(run: Run, model: Classifier, excluded: np.ndarray) -> Run:
    """``run`` with another model and ``excluded`` (the step's retain policy)."""
    meta = {**run.meta, "excluded": excluded_meta(excluded)}
    return Run(path=run.path, meta=meta, model=model, data=run.data, extra=run.extra)


def _step_excluded(run: Run, groups: Mapping[str, np.ndarray], order: Sequence[str], step: int, retain: str) -> np.ndarray:
    """Indices a step must treat as not-retain besides its own group: ``strict`` = all
    other groups; ``rum`` = only the groups already processed."""
    others = [groups[g] for g in (order[:step] if retain == "rum" else [g for g in order if g != order[step]])]
    return np.union1d(run.excluded, np.concatenate([np.zeros(0, np.int64), *others]))


def _one_step(
    run: Run,
    model: Classifier,
    groups: Mapping[str, np.ndarray],
    order: Sequence[str],
    i: int,
    method: str,
    params: Mapping[str, Any],
    *,
    retain: str,
    seed: int,
    device: str,
    quiet: bool,
) -> tuple[Classifier, dict[str, Any]]:
    """Unlearn group ``order[i]`` from ``model`` (``"none"`` keeps it) under the retain policy.

    Returns the new model and the step's record (method, params, sizes, seconds,
    examples processed, sha256 of the weights going in and coming out).
    """
    name = order[i]
    group = ForgetSet(groups[name], {"kind": "rum_group", "group": name})
    view = _view(run, model, _step_excluded(run, groups, order, i, retain))
    retain_size = len(retain_positions(view, group.positions(run.data)))
    w_in = weights_sha256(model)
    if method == "none":
        seconds, n_ex, used = 0.0, 0, {}
    else:
        res = unlearn_from_run(view, group, method, dict(params), seed=seed + i, device=device, quiet=quiet)
        model, seconds, n_ex, used = res.model, res.seconds, res.examples_processed, res.params
    return model, {
        "step": i, "group": name, "method": method, "params": used, "size": len(group),
        "retain_size": retain_size, "seconds": seconds, "examples_processed": n_ex,
        "weights_in": w_in, "weights_out": weights_sha256(model),
    }


def _sequence(
    run: Run,
    groups: Mapping[str, np.ndarray],
    order: Sequence[str],
    methods: Mapping[str, str],
    params: Mapping[str, dict[str, Any]],
    *,
    retain: str,
    seed: int,
    device: str,
    quiet: bool,
) -> tuple[Classifier, list[dict[str, Any]]]:
    """Unlearn ``groups`` in ``order``, each step from the previous step's model.

    Returns the final model and one record per step (:func:`_one_step`'s, plus the
    accuracies after the step on the group, on all of S, on D \\ S and on the test split).
    """
    data = run.data
    s_pos = data.positions(np.concatenate(list(groups.values())), what="forget indices")
    eval_parts = {"forget": s_pos, "retain": retain_positions(run, s_pos)}
    model = copy.deepcopy(run.model).eval()
    steps = []
    for i, name in enumerate(order):
        model, rec = _one_step(run, model, groups, order, i, methods[name], params[name],
                               retain=retain, seed=seed, device=device, quiet=quiet)
        accs = split_accuracies(model, run.data, {**eval_parts, "group": data.positions(groups[name])}, ("test",))
        steps.append({**rec, **{f"{k}_acc": v for k, v in accs.items()}})
    return model, steps


def default_candidates() -> list[str]:
    """The methods of :data:`DEFAULT_CANDIDATES` that are registered ("none" always is)."""
    return [c for c in DEFAULT_CANDIDATES if c in SKIP or c in METHODS]


def search_methods(
    run: Run,
    forget: ForgetSet,
    scores: pd.DataFrame,
    by: str,
    *,
    groups: int = 3,
    order: Sequence[str] | None = None,
    candidates: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    higher_is_harder: bool | None = None,
    retain: str = "strict",
    grid: str | Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    max_cost: float | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> tuple[dict[str, str], dict[str, dict[str, Any]], pd.DataFrame, ForgetSet]:
    """Choose a method per group (RUM's variant ``rum``) on a validation forget set V.

    V = :func:`unlearnkit.meta.tune.validation_forget_set` (like S, disjoint from it), refined into the same
    groups. Greedily, in ``order``: try every candidate on V's group from the model
    chosen so far, score ToW against a model retrained on D \\ V (forget = V's groups
    processed so far, retain = D \\ V, test), keep the best (ties: first candidate).
    ``candidates``: method names (each with its preset defaults) or ``{method: params}``;
    default those of :data:`DEFAULT_CANDIDATES` that are registered. ``grid``: also search
    each candidate's hyperparameters per group with the tuner (:func:`unlearnkit.meta.tune.search`:
    ``"small"``, ``"wide"`` or ``{method: {param: [values]}}``), each point at most
    ``max_cost`` of retraining's examples; None tries each candidate once.
    Returns (method per group, params per group, the search table, V).
    """
    if candidates is None:
        candidates = default_candidates()
    cand = {("none" if c in SKIP else c): dict(p) for c, p in (
        candidates.items() if isinstance(candidates, Mapping) else ((c, {}) for c in candidates))}
    if not cand:
        raise UnlearnkitError("variant 'rum' needs at least one candidate method")
    for c in cand:
        if c != "none":
            METHODS.get(c)
    # tolerance 1: RUM searches on the closest matched set whatever its quantile shift (recorded in V.meta)
    val = validation_forget_set(run, seed=seed, like=forget, by=by, scores=scores, tolerance=1.0)
    vgroups = refine(val, scores, by, groups, higher_is_harder)
    order = _check_order(order, list(vgroups))
    data = run.data
    v_pos = data.positions(val.indices)
    ref = retrain_reference(run, val, seed=seed, device=device, quiet=quiet).model
    retain_pos = retain_positions(run, v_pos)
    epochs = int((run.meta.get("train") or {}).get("epochs", 10))
    budget = None if max_cost is None else max_cost * epochs * len(retain_pos)  # retraining's examples
    chosen: dict[str, str] = {}
    chosen_params: dict[str, dict[str, Any]] = {}
    rows = []
    current = copy.deepcopy(run.model).eval()
    for i, name in enumerate(order):
        done = data.positions(np.concatenate([vgroups[g] for g in order[: i + 1]]))
        parts = {"forget": done, "retain": retain_pos}
        target = split_accuracies(ref, run.data, parts, ("test",))
        best: tuple[float, str, dict[str, Any]] | None = None
        for c, p in cand.items():

            def evaluate(point: dict[str, Any], c: str = c, p: dict[str, Any] = p) -> dict[str, Any]:
                model, rec = _one_step(run, current, vgroups, order, i, c, {**p, **point},
                                       retain=retain, seed=seed, device=device, quiet=quiet)
                accs = split_accuracies(model, run.data, parts, ("test",))
                return {"tow": tug_of_war(accs, target), "seconds": rec["seconds"],
                        "examples_processed": rec["examples_processed"], **{f"{k}_acc": v for k, v in accs.items()}}

            searched = c != "none" and grid is not None
            g = grid_for(c, grid.get(c, "small") if isinstance(grid, Mapping) else grid, epochs) if searched else {}
            found = search(g, evaluate, budget=budget) if searched else pd.DataFrame([{**evaluate({}), "eligible": True}])
            top = best_row(found)
            for r in found.to_dict(orient="records"):
                point = {k: r[k] for k in g}
                rows.append({"group": name, "method": c, "params": {**p, **point}, **{k: v for k, v in r.items() if k not in g},
                             **{f"ref_{k}_acc": v for k, v in target.items()}})
            if top is not None and (best is None or top["tow"] > best[0]):
                best = (float(top["tow"]), c, {**p, **{k: top[k].item() if hasattr(top[k], "item") else top[k] for k in g}})
        if best is None:
            raise UnlearnkitError(f"variant 'rum': no candidate setting qualified for group '{name}'")
        chosen[name], chosen_params[name] = best[1], best[2]
        current = _one_step(run, current, vgroups, order, i, best[1], best[2],
                            retain=retain, seed=seed, device=device, quiet=quiet)[0]
    table = pd.DataFrame(rows)
    table["chosen"] = [chosen[g] == m and q == chosen_params[g] for g, m, q in zip(table["group"], table["method"], table["params"])]
    return chosen, chosen_params, table, val


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


@dataclass
class RumOutcome:
    """Result of :func:`rum`.

    ``groups``: name -> sorted original training indices; ``order``: processing order;
    ``methods``/``params``: per group; ``steps``: one record per step (group, method,
    params, size, retain_size, seconds, examples_processed, weights_in/out sha256, and
    accuracies in [0, 1] after the step: group_acc, forget_acc on all of S, retain_acc on
    D \\ S, test_acc); ``seconds``: wall time of all steps (the search excluded, it is
    in ``search_seconds``); ``search``: the validation search table (variant ``rum``).
    """

    model: Classifier
    groups: dict[str, np.ndarray]
    order: list[str]
    methods: dict[str, str]
    params: dict[str, dict[str, Any]]
    steps: list[dict[str, Any]]
    seconds: float
    examples_processed: int
    variant: str
    retain: str
    refine_by: str | None = None
    higher_is_harder: bool | None = None
    search: pd.DataFrame | None = None
    search_seconds: float = 0.0
    validation: ForgetSet | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def rum(
    run: Run,
    forget: ForgetSet,
    *,
    refine_by: str = "memorization",
    groups: int = 3,
    order: Sequence[str] | None = None,
    methods: str | Sequence[str] = "finetune",
    params: Mapping[str, Any] | None = None,
    retain: str = "strict",
    variant: str = "rum_f",
    candidates: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    grid: str | Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    max_cost: float | None = None,
    higher_is_harder: bool | None = None,
    scores: pd.DataFrame | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> RumOutcome:
    """Refine ``forget`` into ``groups`` by ``refine_by`` and unlearn them in sequence.

    ``run``: the original (its model is never modified). ``refine_by``: a column of
    ``scores`` (default the run's ``scores.parquet``) or ``"centroid_distance"``.
    ``order``: processing order of the group names (default least to most hard).
    ``methods``: one registered method for all groups or one per group (in group-name
    order, e.g. low, medium, high); ``"none"``/``"noop"`` skips a group.
    ``params``: ``{key: value}`` for every group and/or ``{group: {key: value}}``.
    ``retain``: ``"strict"`` (D \\ S at every step) or ``"rum"`` (not-yet-processed
    groups count as retain). ``variant``: ``"vanilla"`` (one step, all of S; group
    ``all``), ``"shuffle"`` (K seeded random groups ``r0..``), ``"rum_f"`` (refined
    groups, the given methods) or ``"rum"`` (methods chosen per group by
    :func:`search_methods` among ``candidates``, their hyperparameters too when ``grid`` is
    given, each setting at most ``max_cost`` of retraining's examples; ``methods``/``params``
    are not used).
    """
    if variant not in VARIANTS:
        raise UnlearnkitError(f"unknown variant '{variant}'; choose from: {', '.join(VARIANTS)}")
    if retain not in RETAIN_POLICIES:
        raise UnlearnkitError(f"unknown retain policy '{retain}'; choose from: {', '.join(RETAIN_POLICIES)}")
    forget.check(run.data)
    check_trained_on(forget, run.excluded, f"run {run.path}")
    refined = variant in ("rum_f", "rum")
    if refined:
        table = _scores_for(run, refine_by, scores)
        hih = score_direction(refine_by) if higher_is_harder is None else higher_is_harder
        parts = refine(forget, table, refine_by, groups, hih)
    else:
        hih = None
        parts = {"all": forget.indices} if variant == "vanilla" else _shuffled_groups(forget, groups, seed)
    names = list(parts)
    if order is not None and not refined:
        raise UnlearnkitError(f"an order applies to the refined variants (rum_f, rum), not to '{variant}'")
    order = _check_order(order, names)
    search, search_seconds, validation = None, 0.0, None
    if variant == "rum":
        if params:
            raise UnlearnkitError("variant 'rum' chooses methods itself; give hyperparameters per candidate instead")
        start = time.perf_counter()
        per_method, per_params, search, validation = search_methods(
            run, forget, table, refine_by, groups=groups, order=order, candidates=candidates,
            higher_is_harder=hih, retain=retain, grid=grid, max_cost=max_cost, seed=seed, device=device, quiet=quiet,
        )
        search_seconds = time.perf_counter() - start
    else:
        per_method = _method_per_group(methods, names)
        if not refined and len(set(per_method.values())) > 1:
            raise UnlearnkitError(f"variant '{variant}' uses one method for all of S; got {', '.join(per_method.values())}")
        per_params = _params_per_group(params, names)
        for g, m in per_method.items():  # validate every step's hyperparameters before running any
            if m != "none":
                METHODS.get(m).resolve_params(run.data.spec.get("name"), per_params[g])
    model, steps = _sequence(run, parts, order, per_method, per_params, retain=retain, seed=seed,
                             device=device, quiet=quiet)
    return RumOutcome(
        model=model, groups=parts, order=order, methods=per_method,
        params={s["group"]: s["params"] for s in steps}, steps=steps,
        seconds=float(sum(s["seconds"] for s in steps)),
        examples_processed=int(sum(s["examples_processed"] for s in steps)),
        variant=variant, retain=retain, refine_by=refine_by if refined else None, higher_is_harder=hih,
        search=search, search_seconds=search_seconds, validation=validation,
    )


def rum_run(run: Run, forget: ForgetSet, out: str | Path, *, overwrite: bool = False, **kwargs: Any) -> Run:
    """:func:`rum` (``kwargs`` as there), then write ``out`` as a run directory (kind
    ``rum``; ``excluded`` = the original's, ``forgotten`` = S) plus ``out/rum.json``:
    groups, order, method and params per group, retain policy, variant, per-step
    metrics and, for variant ``rum``, the validation search table."""
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = rum(run, forget, **kwargs)
        results = evaluate_splits(res.model, run.data)
        results["seconds"] = res.seconds
        info = {
            "variant": res.variant,
            "retain": res.retain,
            "refine_by": res.refine_by,
            "higher_is_harder": res.higher_is_harder,
            "seed": kwargs.get("seed", 0),
            "groups": {g: idx.tolist() for g, idx in res.groups.items()},
            "order": res.order,
            "methods": res.methods,
            "params": res.params,
            "steps": res.steps,
            "seconds": res.seconds,
            "examples_processed": res.examples_processed,
            "forget_sha256": forget.sha256,
            "forget_size": len(forget),
            "forget_source": forget.source,
            "forget_meta": forget.meta,
            "parent": {"path": str(run.path), "weights_sha256": run.meta.get("weights_sha256")},
        }
        if res.search is not None:
            info["search"] = {
                "seconds": res.search_seconds,
                "validation": res.validation.indices.tolist(),
                "table": res.search.to_dict(orient="records"),
            }
        meta = {
            "kind": "rum",
            "model": run.meta["model"],
            "train": run.meta.get("train", {}),
            "excluded": excluded_meta(run.excluded),
            "forgotten": excluded_meta(forget.indices),
            "results": results,
            "examples_processed": res.examples_processed,
            "rum": {k: info[k] for k in ("variant", "retain", "refine_by", "order", "methods", "seed", "forget_sha256")},
        }
        meta = write_run(tmp, res.model, meta, run.data)
        write_json(tmp / "rum.json", info)
    return Run(path=out, meta=meta, model=res.model, data=run.data, extra={"rum": info})
