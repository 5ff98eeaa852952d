"""Evaluation over runs: accuracies, MIA, ToW against retrained references, and
per-example ε when there are several seeds of each.

:func:`evaluate_model` measures one model on one forget set;
:func:`evaluate_runs` measures several unlearned runs (seeds) against several
retrained references and aggregates (mean and 95% CI over seeds).
:func:`check_reference` refuses references that cannot serve as the gold standard.

The sets: forget S = the forget indices; retain D_r = training rows minus S
minus what the run never trained on (``Run.excluded``, other than S); test and
validation are the dataset's splits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from torch import nn

from unlearnkit.data import DataBundle, ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.accuracy import accuracy, per_example_outputs
from unlearnkit.metrics.epsilon import (
    BUCKET_WIDTH,
    DELTA,
    EPSILON_CAP,
    bucket_score,
    final_score,
    forget_quality,
    per_example_epsilon,
)
from unlearnkit.metrics.mia import AUC_FOLDS, DEFAULT_MAX_PER_SIDE, mia_auc, mia_efficacy
from unlearnkit.metrics.stats import mean_ci
from unlearnkit.metrics.tow import avg_gap, tow_inputs, tow_mia, tug_of_war
from unlearnkit.runs import Run, load_meta, load_run
from unlearnkit.progress import progress_bar
from unlearnkit.training import predict_logits

METRICS = ("forget_acc", "retain_acc", "test_acc", "val_acc", "mia_efficacy", "mia_auc")
COMPARISONS = ("tow", "tow_mia", "avg_gap")
COMPARISON_RULE = "each model against the mean of the references' accuracies and MIA-efficacy"


@dataclass
class EvalResult:
    """One model on one forget set.

    ``metrics``: the :data:`METRICS` (accuracies in [0, 1]; NaN for an empty set).
    ``per_example``: the forget set, one row per example: ``index`` (original
    training index), ``p_true``, ``loss`` (nats), ``correct``, ``logit_conf``.
    ``sizes``: number of forget / retain / test / validation examples.
    """

    metrics: dict[str, float]
    per_example: pd.DataFrame
    sizes: dict[str, int] = field(default_factory=dict)


def dataset_key(spec: dict[str, Any]) -> tuple:
    """What makes two datasets the same: name, validation fraction, split seed, options."""
    return (
        spec.get("name"),
        spec.get("val_fraction"),
        spec.get("split_seed"),
        json.dumps(spec.get("options", {}), sort_keys=True),
    )


def _describe(spec: dict[str, Any]) -> str:
    opts = f", options {spec['options']}" if spec.get("options") else ""
    return f"{spec.get('name')} (val_fraction {spec.get('val_fraction')}, split_seed {spec.get('split_seed')}{opts})"


def check_same_dataset(meta: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    """Refuse a run whose dataset spec differs from ``expected`` (a ``DataBundle.spec``)."""
    spec = meta.get("dataset", {})
    if dataset_key(spec) != dataset_key(expected):
        raise UnlearnkitError(
            f"{what} is trained on {_describe(spec)}, but the evaluated data is {_describe(expected)}; "
            "all runs must share the dataset and split"
        )


def check_reference(reference: Run, forget: ForgetSet, unlearned: Run | None = None) -> None:
    """Refuse a reference that is not a retrain on D minus ``forget``.

    Checks (from run.json): the same dataset and split as ``unlearned``; every
    forget index is in ``reference.excluded``; and, beyond the forget set, the
    reference excluded exactly what ``unlearned`` excluded (it trained on the
    same retain set).
    """
    name = f"reference {reference.path}"
    if unlearned is not None:
        check_same_dataset(reference.meta, unlearned.meta.get("dataset", {}), name)
    missing = np.setdiff1d(forget.indices, reference.excluded)
    if len(missing):
        raise UnlearnkitError(
            f"{name} trained on {len(missing)} of the {len(forget)} forget indices (e.g. "
            f"{missing[:5].tolist()}); a reference must exclude the forget set (train it with --exclude FORGET)"
        )
    if unlearned is not None:
        ref_extra = np.setdiff1d(reference.excluded, forget.indices)
        unl_extra = np.setdiff1d(unlearned.excluded, forget.indices)
        if not np.array_equal(ref_extra, unl_extra):
            raise UnlearnkitError(
                f"{name} excluded {len(ref_extra)} training indices besides the forget set, the model "
                f"{unlearned.path} {len(unl_extra)}; the reference must train on the model's retain set"
            )


def evaluate_model(
    run_or_model: Run | nn.Module,
    data: DataBundle | None,
    forget: ForgetSet,
    *,
    original_excluded: np.ndarray | None = None,
    mia_max_per_side: int = DEFAULT_MAX_PER_SIDE,
    seed: int = 0,
) -> EvalResult:
    """Accuracies on forget / retain / test / validation, MIA-efficacy and loss MIA AUC.

    ``run_or_model``: a :class:`Run` (``data`` may be None: the run's own; else
    it must be the run's dataset and split) or a bare model (``data`` required). The retain set is the training split minus
    ``forget`` minus ``original_excluded`` (default: the run's ``excluded``;
    none for a bare model). MIA-efficacy: RBF SVC on ``p_true``, retain vs test,
    at most ``mia_max_per_side`` per side drawn with ``seed``; MIA AUC:
    cross-validated logistic regression on the loss, forget vs test.
    """
    if isinstance(run_or_model, Run):
        if data is not None:
            check_same_dataset(run_or_model.meta, data.spec, f"run {run_or_model.path}")
        model, data = run_or_model.model, data if data is not None else run_or_model.data
        excluded = run_or_model.excluded if original_excluded is None else original_excluded
    else:
        if data is None:
            raise UnlearnkitError("evaluate_model: pass the data a bare model is evaluated on")
        model = run_or_model
        excluded = np.zeros(0, np.int64) if original_excluded is None else original_excluded
    forget_pos = forget.check(data)
    other = np.setdiff1d(np.asarray(excluded, dtype=np.int64), forget.indices)
    retain_pos = data.complement(np.concatenate([forget_pos, data.positions(other, what="excluded indices")]))

    train_out = per_example_outputs(predict_logits(model, data.x_train), data.y_train)
    test_out = per_example_outputs(predict_logits(model, data.x_test), data.y_test)
    val_out = per_example_outputs(predict_logits(model, data.x_val), data.y_val)
    f_out = train_out.iloc[forget_pos].reset_index(drop=True)
    r_out = train_out.iloc[retain_pos]
    metrics = {
        "forget_acc": accuracy(f_out["correct"]),
        "retain_acc": accuracy(r_out["correct"]),
        "test_acc": accuracy(test_out["correct"]),
        "val_acc": accuracy(val_out["correct"]),
        "mia_efficacy": mia_efficacy(
            r_out["p_true"], test_out["p_true"], f_out["p_true"], max_per_side=mia_max_per_side, seed=seed
        ),
        "mia_auc": mia_auc(f_out["loss"], test_out["loss"], seed=seed),
    }
    per_example = pd.concat(
        [pd.DataFrame({"index": data.index_train.numpy()[forget_pos]}), f_out], axis=1
    )
    sizes = {"forget": len(forget_pos), "retain": len(retain_pos), "test": len(test_out), "val": len(val_out)}
    return EvalResult(metrics=metrics, per_example=per_example, sizes=sizes)


def load_runs(
    paths: Sequence[str | Path],
    *,
    data: DataBundle | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    what: str = "model",
) -> list[Run]:
    """Load run directories that share one dataset, loading the data once.

    Each run.json is checked against ``data`` (or the first run's data) before
    its weights are loaded; a run on another dataset or split is refused.
    """
    runs = []
    for p in paths:
        meta = load_meta(p)
        if data is not None:
            check_same_dataset(meta, data.spec, f"{what} {p}")
        run = load_run(p, data_root=data_root, device=device, data=data)
        data = run.data
        runs.append(run)
    return runs


def _summary(values: Sequence[float]) -> float | dict[str, Any]:
    """One value as is; several as ``{"mean", "ci95": [lo, hi], "values"}``."""
    if len(values) == 1:
        return float(values[0])
    mean, lo, hi = mean_ci(values)
    return {"mean": mean, "ci95": [lo, hi], "values": [float(v) for v in values]}


def _mean(results: Sequence[EvalResult], key: str) -> float:
    return float(np.mean([r.metrics[key] for r in results]))


def _confidences(results: Sequence[EvalResult]) -> np.ndarray:
    """Forget-set logit-scaled confidences, ``[n_examples, n_runs]``."""
    return np.stack([r.per_example["logit_conf"].to_numpy() for r in results], axis=1)


def evaluate_runs(
    models: Sequence[Run],
    references: Sequence[Run],
    forget: ForgetSet,
    *,
    mia_max_per_side: int = DEFAULT_MAX_PER_SIDE,
    seed: int = 0,
    quiet: bool = True,
) -> dict[str, Any]:
    """Evaluate models (e.g. seeds of one unlearning method) against retrained references.

    Returns a JSON-ready dict (what ``unlearnkit evaluate`` writes) plus the key
    ``"per_example"``: a DataFrame with one row per (forget example, run):
    ``index, role, run, p_true, loss, correct, logit_conf`` and, when ε is
    computed, ``epsilon`` and ``score`` (per index). Each metric is a number for
    one run, or ``{"mean", "ci95", "values"}`` over several. With references:
    ``tow``, ``tow_mia``, ``avg_gap`` of each model against the mean of the
    references' accuracies (and MIA-efficacy), and ``reference`` (the
    references' own metrics). With >= 2 models and >= 2 references:
    ``epsilon`` (per-example ε summary, forget quality and final score).
    All runs are measured on the same retain set: training minus forget minus
    anything any run excluded besides the forget set.
    """
    if not models:
        raise UnlearnkitError("evaluate: give at least one model")
    data = models[0].data
    for run in models[1:]:
        check_same_dataset(run.meta, data.spec, f"model {run.path}")
    forget.check(data)
    for ref in references:
        for run in models:
            check_reference(ref, forget, run)
    all_runs = [("model", r) for r in models] + [("reference", r) for r in references]
    excluded = np.setdiff1d(
        np.unique(np.concatenate([r.excluded for _, r in all_runs])), forget.indices
    ).astype(np.int64)

    results: list[EvalResult] = []
    with progress_bar(quiet) as bar:
        task = bar.add_task("evaluate", total=len(all_runs), info="")
        for role, run in all_runs:
            bar.update(task, info=f"{role} {run.path.name}")
            results.append(
                evaluate_model(run, data, forget, original_excluded=excluded, mia_max_per_side=mia_max_per_side, seed=seed)
            )
            bar.advance(task)
    model_res, ref_res = results[: len(models)], results[len(models):]

    out: dict[str, Any] = {
        "dataset": {k: v for k, v in data.spec.items() if k != "data_root"},
        "forget": {"size": len(forget), "sha256": forget.sha256, "source": forget.source, "kind": forget.kind},
        "sizes": results[0].sizes,
        "mia": {
            "max_per_side": mia_max_per_side,
            "seed": seed,
            "efficacy": "RBF SVC (C=3, gamma=auto) on p_true, retain members vs test non-members, balanced, "
            f"at most {mia_max_per_side} per side; fraction of the forget set predicted non-member",
            "auc": f"logistic regression on the loss, forget vs test, {AUC_FOLDS}-fold stratified CV, mean AUC",
        },
        "models": [str(r.path) for r in models],
        "references": [str(r.path) for r in references],
    }
    for m in METRICS:
        out[m] = _summary([r.metrics[m] for r in model_res])
    per_run = [
        {"role": role, "path": str(run.path), **res.metrics} for (role, run), res in zip(all_runs, results)
    ]
    if references:
        ref_mean = tow_inputs({m: _mean(ref_res, m) for m in METRICS})
        fns = {"tow": tug_of_war, "tow_mia": tow_mia, "avg_gap": avg_gap}
        for name, fn in fns.items():
            vals = [fn(tow_inputs(r.metrics), ref_mean) for r in model_res]
            out[name] = _summary(vals)
            for row, v in zip(per_run, vals):
                row[name] = v
        out["comparison"] = COMPARISON_RULE
        out["reference"] = {m: _summary([r.metrics[m] for r in ref_res]) for m in METRICS}
    out["per_run"] = per_run

    per_example = pd.concat(
        [res.per_example.assign(role=role, run=str(run.path)) for (role, run), res in zip(all_runs, results)],
        ignore_index=True,
    )[["index", "role", "run", "p_true", "loss", "correct", "logit_conf"]]
    if len(model_res) >= 2 and len(ref_res) >= 2:
        eps = per_example_epsilon(_confidences(model_res), _confidences(ref_res))
        fq = forget_quality(eps)
        out["epsilon"] = {
            "n_models": len(model_res),
            "n_references": len(ref_res),
            "delta": DELTA,
            "cap": EPSILON_CAP,
            "bucket_width": BUCKET_WIDTH,
            "mean": float(eps.mean()),
            "median": float(np.median(eps)),
            "at_cap": float((eps >= EPSILON_CAP).mean()),
            "forget_quality": fq,
            "final_score": final_score(
                fq,
                _mean(model_res, "retain_acc"), _mean(ref_res, "retain_acc"),
                _mean(model_res, "test_acc"), _mean(ref_res, "test_acc"),
            ),
        }
        by_index = pd.DataFrame({"index": model_res[0].per_example["index"], "epsilon": eps, "score": bucket_score(eps)})
        per_example = per_example.merge(by_index, on="index", how="left")
    out["per_example"] = per_example
    return out


def to_jsonable(obj: Any) -> Any:
    """Replace NaN/inf floats with None (strict JSON has no NaN), recursively."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
