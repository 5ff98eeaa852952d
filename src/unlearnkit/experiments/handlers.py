"""The bench pipeline's unit handlers: what each kind of :class:`~.units.WorkUnit` does.

Each handler is ``(inputs, deps, out, opts) -> summary``: ``inputs`` are the unit's hashed
inputs, ``deps`` maps a dependency's name to its finished directory, ``out`` is the (temporary)
directory to fill and ``opts`` the unhashed options (device, data root, executor, quiet).
A unit's model, if any, is a run directory at ``UNIT_DIR/run``; a forget set, ``UNIT_DIR/forget.json``.
Importing this module registers the handlers (:func:`unlearnkit.experiments.units.handler`);
the layers they call (training, difficulty, methods, meta, metrics) are imported inside each
handler, so that a worker pays only for the kinds it runs.
"""

from __future__ import annotations

import json
import shutil
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from unlearnkit.data import DataBundle, ForgetSet, load_dataset, load_forget, save_forget
from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments.config import ForgetSpec
from unlearnkit.experiments.units import DONE, handler
from unlearnkit.io import read_json, write_parquet
from unlearnkit.runs import Run, load_run
from unlearnkit.training import TrainConfig

RUN = "run"  # a unit's run directory lives at UNIT_DIR/run
FORGET = "forget.json"
MEM = "mem"
INSTANCES = "instances"
TUNE = "tune.json"  # a tune unit's result: the chosen values and the whole search table


@lru_cache(maxsize=4)
def _data(spec_json: str, data_root: str | None) -> DataBundle:
    spec = json.loads(spec_json)
    return load_dataset(
        spec["name"], data_root=data_root, val_fraction=spec["val_fraction"], split_seed=spec["split_seed"],
        **spec["options"],
    )


def data_for(inputs: Mapping[str, Any], opts: Mapping[str, Any]) -> DataBundle:
    """The dataset named by a unit's ``inputs["data"]`` (cached per process)."""
    return _data(json.dumps(inputs["data"], sort_keys=True), opts.get("data_root"))


def _run(unit_dir: Path, opts: Mapping[str, Any]) -> Run:
    meta = read_json(unit_dir / RUN / "run.json")
    spec = {k: meta["dataset"][k] for k in ("name", "val_fraction", "split_seed", "options")}
    return load_run(unit_dir / RUN, device=opts.get("device", "auto"), data=data_for({"data": spec}, opts))


def _forget(unit_dir: Path, data: DataBundle) -> ForgetSet:
    return load_forget(unit_dir / FORGET, data)


@handler("train")
def _do_train(inputs, deps, out, opts):
    from unlearnkit.runs import train_run

    run = train_run(
        data_for(inputs, opts), inputs["model"], TrainConfig(**inputs["training"]), out / RUN,
        model_kwargs=inputs["model_kwargs"], device=opts.get("device", "auto"),
    )
    return {**run.meta["results"], "examples_processed": run.meta["examples_processed"]}


@handler("sisa_train")
def _do_sisa_train(inputs, deps, out, opts):
    from unlearnkit.methods.sisa import train_sisa

    data = data_for(inputs, opts)
    # With a forget set: SISA's exact reference, the same ensemble trained without it.
    exclude = _forget(deps["forget"], data).indices if "forget" in deps else None
    run = train_sisa(
        data, inputs["model"], inputs["shards"], inputs["slices"],
        TrainConfig(**inputs["training"]), out / RUN, model_kwargs=inputs["model_kwargs"],
        aggregation=inputs["aggregate"], device=opts.get("device", "auto"), exclude=exclude,
    )
    return {**run.meta["results"], "examples_processed": run.meta["examples_processed"]}


@handler("memorization")
def _do_memorization(inputs, deps, out, opts):
    from unlearnkit.difficulty.memorization import LOW_RELIABILITY, estimate_memorization

    with warnings.catch_warnings():  # its warnings are kept in the summary and shown by the runner
        warnings.simplefilter("ignore")
        recipe = inputs["training"]
        res = estimate_memorization(
            data_for(inputs, opts), inputs["model"], k=inputs["k"], fraction=inputs["fraction"],
            epochs=inputs["epochs"], seed=inputs["seed"], out=out / MEM,
            cfg=TrainConfig(**recipe) if recipe is not None else None, until_fit=inputs["until_fit"],
            fit_threshold=inputs["fit_threshold"], model_kwargs=inputs["model_kwargs"],
            executor=opts.get("executor", "local"), address=opts.get("address"),
            threads=opts.get("threads", 1), device=opts.get("device", "auto"), quiet=opts.get("quiet", True),
        )
    fit = res.meta["fit"]
    # The threshold travels with the number, so the report can judge it without importing memorization.
    return {"split_half": res.reliability.get("split_half_spearman"), "k": inputs["k"], "warnings": res.warnings,
            "reliability_threshold": LOW_RELIABILITY,
            "fit": {"in_subset_accuracy_min": fit["in_subset_accuracy"]["min"],
                    "in_subset_accuracy_median": fit["in_subset_accuracy"]["median"],
                    "threshold": fit["threshold"], "epochs_run_median": fit["epochs_run"]["median"]}}


@handler("scores")
def _do_scores(inputs, deps, out, opts):
    from unlearnkit.difficulty.scores import score_run

    # A copy of the original run with scores.parquet beside it, so that the
    # finished training unit is never modified.
    shutil.copytree(deps["run"] / RUN, out / RUN)
    run = _run(out, opts)
    mem = deps["memorization"] / MEM if "memorization" in deps else None
    score_run(run, list(inputs["names"]), memorization_dir=mem, device=opts.get("device", "auto"), seed=inputs["seed"])
    return read_json(out / RUN / "scores.json").get("scores", {})


def build_forget(run: Run, spec: Mapping[str, Any], seed: int, exclude: Any = None) -> ForgetSet:
    """The forget set of one (level-expanded) :class:`ForgetSpec` on ``run``'s data, ES included;
    never one of the training indices in ``exclude`` (a whole-class set ignores it)."""
    from unlearnkit.data.forget import class_forget_set, random_forget_set
    from unlearnkit.difficulty.forget_sets import forget_by_entanglement, forget_by_score
    from unlearnkit.difficulty.geometry import run_entanglement

    fs_spec = ForgetSpec.model_validate(spec)
    data = run.data
    size = None
    if fs_spec.size is not None:
        size = int(round(fs_spec.size * data.n_train)) if fs_spec.size < 1 else int(fs_spec.size)
    kind, level = fs_spec.kind, fs_spec.one_level
    if kind == "random":
        fs = random_forget_set(data, size, seed, class_balanced=fs_spec.class_balanced, exclude=exclude)
    elif kind == "class":
        fs = class_forget_set(data, fs_spec.class_)
    elif kind == "entanglement":
        fs = forget_by_entanglement(run, fs_spec.bins, level, size, seed, construction=fs_spec.construction,
                                    exclude=exclude)
    else:
        fs = forget_by_score(run, fs_spec.score or "memorization", level, size, seed, exclude=exclude)
    if fs.meta.get("es") is None:
        fs.meta["es"] = run_entanglement(run, fs)
    fs.meta["label"] = fs_spec.label
    return fs


def _reserve(data: DataBundle, inputs: Mapping[str, Any]) -> Any:
    """The tuning reserve named by ``inputs["reserve"]`` ({fraction, seed}), or None."""
    from unlearnkit.data.forget import tuning_reserve

    r = inputs.get("reserve")
    return None if r is None else tuning_reserve(data, r["fraction"], r["seed"])


@handler("forget")
def _do_forget(inputs, deps, out, opts):
    run = _run(deps["run"], opts)
    # with a tuning reserve, evaluated sets are drawn from the examples outside it
    fs = build_forget(run, inputs["spec"], inputs["seed"], exclude=_reserve(run.data, inputs))
    save_forget(out / FORGET, fs)
    return {"size": len(fs), "es": float(fs.meta["es"]), "label": fs.meta["label"]}


def tuned_params(params: Mapping[str, Any], deps: Mapping[str, Path]) -> dict[str, Any]:
    """``params`` with the searched keys replaced by the values the ``tuning`` dependency chose."""
    if "tuning" not in deps:
        return dict(params)
    return {**params, **read_json(deps["tuning"] / DONE)["summary"]["chosen"]}


@handler("tune_validation")
def _do_tune_validation(inputs, deps, out, opts):
    import numpy as np

    from unlearnkit.meta.tune import reference_accuracies, validation_forget_set

    run = _run(deps["run"], opts)
    like = _forget(deps["like"], run.data) if "like" in deps else None
    avoid = np.unique(np.concatenate([_forget(d, run.data).indices for k, d in deps.items() if k.startswith("avoid")]))
    reserve = _reserve(run.data, inputs)
    outside = None if reserve is None else np.setdiff1d(run.data.index_train.numpy(), reserve)
    try:
        if outside is not None and "spec" in inputs:
            # the kind's own construction on the reserve: as hard as the evaluated sets, disjoint by design
            val = build_forget(run, inputs["spec"], inputs["seed"], exclude=outside)
            if np.isin(val.indices, avoid).any():
                raise RuntimeError("the tuning reserve overlaps an evaluated forget set")  # a planning bug
            val.meta.update(like=inputs["spec_label"], like_kind=val.meta.get("kind"), kind="validation",
                            match="same construction, tuning reserve")
            if like is not None and "score_stats" in like.meta and "score_stats" in val.meta:
                val.meta.update(score_mean_like=like.meta["score_stats"]["mean"],
                                score_mean_val=val.meta["score_stats"]["mean"])
        else:
            # per: none draws at random from the reserve; a whole-class set is matched by another class
            if outside is not None and (like is None or like.kind != "class"):
                avoid = np.union1d(avoid, outside)
            val = validation_forget_set(run, None, inputs["val_seed"], avoid, like=like)
    except UnlearnkitError as e:
        # No disjoint set matches this kind (its hard examples are all in evaluated sets): tuning on a
        # much easier set would pick near no-ops, so the kind's methods keep their presets instead.
        why = str(e).split(": ", 1)[-1]
        return {"unmatched": why, "warnings": [f"not tuned, presets kept: {why}"]}
    save_forget(out / FORGET, val)
    ref = reference_accuracies(run, val, seed=inputs["seed"], device=opts.get("device", "auto"), reference_dir=out)
    for c in _confirming(deps, opts):  # the confirming originals' references, retrained once here for every method
        reference_accuracies(c, val, seed=inputs["seed"], device=opts.get("device", "auto"), reference_dir=out)
    return {"size": len(val), "match": val.meta.get("match", "random"),
            "quantile_shift": val.meta.get("quantile_shift"), "score_mean_like": val.meta.get("score_mean_like"),
            "score_mean_val": val.meta.get("score_mean_val"), "reference": ref}


def _confirming(deps, opts) -> list:
    """The confirming originals of a tuning unit (deps ``confirm``, ``confirm2``, ... in seed order)."""
    names = sorted((k for k in deps if k.startswith("confirm")), key=lambda k: int(k[7:] or 1))
    return [_run(deps[k], opts) for k in names]


@handler("tune")
def _do_tune(inputs, deps, out, opts):
    from unlearnkit.meta.tune import tune, write_tune

    unmatched = read_json(deps["validation"] / DONE)["summary"].get("unmatched")
    if unmatched:
        return {"chosen": {}, "skipped": unmatched}
    run = _run(deps["run"], opts)
    val = _forget(deps["validation"], run.data)
    # the validation unit holds the reference, retrained once for every method of its kind
    confirm = _confirming(deps, opts)
    res = tune(run, inputs["method"], grid=inputs["grid"], validation=val, max_cost=inputs["max_cost"],
               seed=inputs["seed"], device=opts.get("device", "auto"), reference_dir=deps["validation"], confirm=confirm)
    write_tune(out / TUNE, res)
    return {"chosen": res.chosen, "tow": res.tow, "tow_confirm": res.tow_confirm, "cost": res.cost,
            "collapsed_to": res.collapsed_to, "points": len(res.table)}


@handler("unlearn")
def _do_unlearn(inputs, deps, out, opts):
    from unlearnkit.methods import unlearn_run

    run = _run(deps["run"], opts)
    res = unlearn_run(
        run, _forget(deps["forget"], run.data), inputs["method"], out / RUN, tuned_params(inputs["params"], deps),
        seed=inputs["seed"], device=opts.get("device", "auto"),
    )
    info = res.extra["unlearn"]
    return {"seconds": info["seconds"], "examples_processed": info["examples_processed"], "params": info["params"]}


@handler("rum")
def _do_rum(inputs, deps, out, opts):
    from unlearnkit.meta.rum import rum_run

    run = _run(deps["run"], opts)
    kw = dict(inputs["rum"])
    if "tuning" in deps:
        kw["params"] = tuned_params(kw.get("params") or {}, deps)
    res = rum_run(run, _forget(deps["forget"], run.data), out / RUN, seed=inputs["seed"],
                  device=opts.get("device", "auto"), **kw)
    info = res.extra["rum"]
    search = info.get("search", {}).get("seconds", 0.0)
    # The cost of the 'rum' variant includes its per-group method search.
    return {"seconds": info["seconds"] + search, "examples_processed": info["examples_processed"],
            "methods": info["methods"], "params": info["params"]}


@handler("evaluate")
def _do_evaluate(inputs, deps, out, opts):
    from unlearnkit.metrics.evaluate import evaluate_model

    run = _run(deps["model"], opts)
    res = evaluate_model(run, None, _forget(deps["forget"], run.data), mia_max_per_side=inputs["mia_max_per_side"],
                         mia_repeats=inputs["mia_repeats"], seed=inputs["seed"])
    write_parquet(out / "per_example.parquet", res.per_example)
    return {**{k: float(v) for k, v in res.metrics.items()}, "sizes": res.sizes}


@handler("instances")
def _do_instances(inputs, deps, out, opts):
    from unlearnkit.meta.instance import analyze_instances

    run = _run(deps["run"], opts)
    analyze_instances(run, _forget(deps["forget"], run.data), list(inputs["methods"]), inputs["seeds"],
                      out=out / INSTANCES, params=inputs["params"], device=opts.get("device", "auto"))
    return {"methods": inputs["methods"]}
