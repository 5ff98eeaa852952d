"""Evaluation over runs: accuracies, MIA, ToW against retrained references,
per-example ε and KLoM when there are several seeds of each.

:func:`evaluate_model` measures one model on one forget set;
:func:`evaluate_runs` measures several unlearned runs (seeds of one method)
against several retrained references and returns an :class:`EvalReport`
(mean and 95% CI over seeds). :func:`check_reference` refuses references that
cannot serve as the gold standard.

Pairing (how a model is compared with the references):

- ``"seed"`` (default, the RUM protocol): the model of seed s is compared with
  the reference of seed s (the seed of the original training run each derives
  from); ToW etc. are computed per pair, then averaged with a 95% CI over the
  pairs. A seed without its counterpart is an error naming it.
- ``"mean"``: every model against the mean of all references' accuracies and
  MIA-efficacy (the challenge's style, where references are a population).

Per-example ε and KLoM always compare the whole population of models with the
whole population of references.

The sets: forget S = the forget indices; retain D_r = training rows minus S
minus what the run never trained on (``Run.excluded``, other than S); test and
validation are the dataset's splits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

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
    Grid,
    bucket_score,
    challenge_max_epsilon,
    final_score,
    forget_quality,
    per_example_epsilon,
)
from unlearnkit.metrics.klom import BINS, PERCENTILE, klom, klom_percentile
from unlearnkit.metrics.mia import (
    AUC_FOLDS,
    DEFAULT_MAX_PER_SIDE,
    MIA_REPEATS,
    mia_auc,
    mia_efficacy_repeats,
    mia_spread_warning,
)
from unlearnkit.metrics.stats import mean_ci
from unlearnkit.metrics.tow import avg_gap, tow_inputs, tow_mia, tug_of_war
from unlearnkit.progress import progress_bar
from unlearnkit.runs import Run, load_meta, load_run
from unlearnkit.training import predict_logits

Pairing = Literal["seed", "mean"]
PAIRINGS: tuple[str, ...] = ("seed", "mean")
METRICS = ("forget_acc", "retain_acc", "test_acc", "val_acc", "mia_efficacy", "mia_auc")
COMPARISONS = ("tow", "tow_mia", "avg_gap")
COMPARISON_RULES = {
    "seed": "each model against the reference of its seed (the seed of the original run it derives from)",
    "mean": "each model against the mean of the references' accuracies and MIA-efficacy",
}
# Accuracies, MIA and ToW live in [0, 1]: their CIs are clipped to it.
UNIT = (0.0, 1.0)
KLOM_SPLITS = ("forget", "retain", "val")


@dataclass
class EvalResult:
    """One model on one forget set.

    ``metrics``: the :data:`METRICS` (accuracies in [0, 1]; NaN for an empty
    set; ``mia_efficacy`` the mean over ``mia_values``), plus
    ``mia_efficacy_sd`` (standard deviation over the subsample seeds).
    ``mia_values``: MIA-efficacy for each subsample seed.
    ``per_example``: the forget set, one row per example: ``index`` (original
    training index), ``p_true``, ``loss`` (nats), ``correct``, ``logit_conf``.
    ``margins``: logit-scaled confidence (= KLoM's margin) on each split,
    ``{"forget", "retain", "val"}`` → ``[n]`` float64, in each split's order.
    ``sizes``: number of forget / retain / test / validation examples.
    """

    metrics: dict[str, float]
    per_example: pd.DataFrame
    sizes: dict[str, int] = field(default_factory=dict)
    mia_values: list[float] = field(default_factory=list)
    margins: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Summary:
    """One metric over runs (or pairs): mean, 95% Student-t CI (NaN for n = 1) and the values."""

    mean: float
    lo: float
    hi: float
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @classmethod
    def of(cls, values: Sequence[float], bounds: tuple[float, float] | None = UNIT) -> "Summary":
        vals = [float(v) for v in values]
        mean, lo, hi = mean_ci(vals, bounds=bounds)
        return cls(mean, lo, hi, vals)

    def to_json(self) -> float | dict[str, Any]:
        """One value as a plain number; several as ``{"mean", "ci95": [lo, hi], "values", "n"}``."""
        if self.n == 1:
            return self.values[0]
        return {"mean": self.mean, "ci95": [self.lo, self.hi], "values": self.values, "n": self.n}


@dataclass
class EpsilonReport:
    """Per-example ε over the forget set (N_u models vs N_r references) and the challenge score."""

    n_models: int
    n_references: int
    grid: str
    max_epsilon: float
    mean: float
    median: float
    at_cap: float
    forget_quality: float
    final_score: float
    delta: float = DELTA
    cap: float = EPSILON_CAP
    bucket_width: float = BUCKET_WIDTH


@dataclass
class KlomReport:
    """KLoM (nats) per split: the 95th percentile over the split's examples, and the median."""

    n_models: int
    n_references: int
    p95: dict[str, float]
    median: dict[str, float]
    bins: int = BINS
    percentile: float = PERCENTILE


@dataclass
class EvalReport:
    """What :func:`evaluate_runs` measured (``to_dict`` is what ``unlearnkit evaluate`` writes).

    ``metrics`` / ``reference``: each of :data:`METRICS` over the models / the
    references; ``comparisons``: ToW, ToW-MIA and the mean gap over the pairs
    of ``pairing`` (``pairs``: (model path, reference path or "mean"));
    ``epsilon`` and ``klom`` when both sides have >= 2 runs; ``warnings``: one
    line each (e.g. MIA noise); ``per_example``: one row per (forget example,
    run): ``index, role, run, p_true, loss, correct, logit_conf`` and, with ε,
    ``epsilon``, ``score``.
    """

    dataset: dict[str, Any]
    forget: dict[str, Any]
    sizes: dict[str, int]
    mia: dict[str, Any]
    method: str
    models: list[str]
    references: list[str]
    pairing: str
    pairs: list[tuple[str, str]]
    metrics: dict[str, Summary]
    reference: dict[str, Summary]
    comparisons: dict[str, Summary]
    per_run: list[dict[str, Any]]
    per_example: pd.DataFrame
    epsilon: EpsilonReport | None = None
    klom: KlomReport | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_references(self) -> int:
        return len(self.references)

    def to_dict(self, per_example: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN left as is: pass it through :func:`to_jsonable` before writing).

        Each metric is a number for one run, ``{"mean", "ci95", "values", "n"}``
        for several. ``per_example=True`` adds the DataFrame under ``"per_example"``.
        """
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "forget": self.forget,
            "sizes": self.sizes,
            "mia": self.mia,
            "method": self.method,
            "models": self.models,
            "references": self.references,
            "n_models": self.n_models,
            "n_references": self.n_references,
            **{m: s.to_json() for m, s in self.metrics.items()},
        }
        if self.references:
            out.update({c: s.to_json() for c, s in self.comparisons.items()})
            out["pairing"] = self.pairing
            out["comparison"] = COMPARISON_RULES[self.pairing]
            out["pairs"] = [list(p) for p in self.pairs]
            out["reference"] = {m: s.to_json() for m, s in self.reference.items()}
        out["per_run"] = self.per_run
        if self.epsilon is not None:
            out["epsilon"] = dict(vars(self.epsilon))
        if self.klom is not None:
            out["klom"] = dict(vars(self.klom))
        out["warnings"] = list(self.warnings)
        if per_example:
            out["per_example"] = self.per_example
        return out


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
    mia_repeats: int = MIA_REPEATS,
    seed: int = 0,
) -> EvalResult:
    """Accuracies on forget / retain / test / validation, MIA-efficacy and loss MIA AUC.

    ``run_or_model``: a :class:`Run` (``data`` may be None: the run's own; else
    it must be the run's dataset and split) or a bare model (``data`` required).
    The retain set is the training split minus ``forget`` minus
    ``original_excluded`` (default: the run's ``excluded``; none for a bare
    model). MIA-efficacy: RBF SVC on ``p_true``, retain vs test, at most
    ``mia_max_per_side`` per side, fitted ``mia_repeats`` times on subsamples
    drawn with seeds ``seed, seed + 1, ...``; the mean is reported and the
    standard deviation beside it. MIA AUC: cross-validated logistic
    regression on the loss, forget vs test.
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
    if getattr(model, "objective", "classify") == "next_token":
        raise UnlearnkitError(
            "evaluate: this is a sequence model (next-token objective); score it with "
            "unlearnkit.metrics.sequence.evaluate_sequence_model (see docs/language.md)"
        )
    forget_pos = forget.check(data)
    other = np.setdiff1d(np.asarray(excluded, dtype=np.int64), forget.indices)
    retain_pos = data.complement(np.concatenate([forget_pos, data.positions(other, what="excluded indices")]))

    train_out = per_example_outputs(predict_logits(model, data.x_train), data.y_train)
    test_out = per_example_outputs(predict_logits(model, data.x_test), data.y_test)
    val_out = per_example_outputs(predict_logits(model, data.x_val), data.y_val)
    f_out = train_out.iloc[forget_pos].reset_index(drop=True)
    r_out = train_out.iloc[retain_pos]
    mia = mia_efficacy_repeats(
        r_out["p_true"], test_out["p_true"], f_out["p_true"],
        max_per_side=mia_max_per_side, seed=seed, repeats=mia_repeats,
    )
    metrics = {
        "forget_acc": accuracy(f_out["correct"]),
        "retain_acc": accuracy(r_out["correct"]),
        "test_acc": accuracy(test_out["correct"]),
        "val_acc": accuracy(val_out["correct"]),
        "mia_efficacy": float(np.mean(mia)),
        "mia_efficacy_sd": float(np.std(mia, ddof=1)) if len(mia) > 1 else math.nan,
        "mia_auc": mia_auc(f_out["loss"], test_out["loss"], seed=seed),
    }
    per_example = pd.concat(
        [pd.DataFrame({"index": data.index_train.numpy()[forget_pos]}), f_out], axis=1
    )
    sizes = {"forget": len(forget_pos), "retain": len(retain_pos), "test": len(test_out), "val": len(val_out)}
    margins = {
        "forget": f_out["logit_conf"].to_numpy(),
        "retain": r_out["logit_conf"].to_numpy(),
        "val": val_out["logit_conf"].to_numpy(),
    }
    return EvalResult(metrics=metrics, per_example=per_example, sizes=sizes,
                      mia_values=[float(v) for v in mia], margins=margins)


def load_runs(
    paths: Sequence[str | Path],
    *,
    data: DataBundle | None = None,
    data_root: str | None = None,
    device: str = "auto",
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


def run_seed(run: Run) -> int | None:
    """The seed of the original training run ``run`` derives from (None when not recorded).

    An unlearned or RUM run keeps its parent's training recipe, so its seed is
    the original's; a reference trained with ``--exclude`` or by the
    ``retrain`` method from original s records seed s as well. In-memory runs
    carry no seed.
    """
    if run.meta.get("kind") == "memory":
        return None
    seed = run.meta.get("train", {}).get("seed")
    return None if seed is None else int(seed)


def run_method(run: Run) -> str:
    """What produced ``run``: ``"retrain"``, ``"finetune {params}"``, ``"rum/rum_f finetune"``, ``"train"``..."""
    meta = run.meta
    kind = meta.get("kind", "train")
    if kind == "unlearn":
        u = meta.get("unlearn", {})
        params = json.dumps(u.get("params") or {}, sort_keys=True)
        return f"{u.get('method')}" + ("" if params == "{}" else f" {params}")
    if kind == "rum":
        r = meta.get("rum", {})
        methods = r.get("methods")
        shown = ",".join(methods.values()) if isinstance(methods, dict) else str(methods)
        return f"rum/{r.get('variant')} {shown}"
    return kind


def run_forget_sha(run: Run) -> str | None:
    """sha256 of the forget set ``run`` was unlearned on (None for a trained model)."""
    for key in ("unlearn", "rum"):
        if key in run.meta:
            return run.meta[key].get("forget_sha256")
    return None


def check_poolable(models: Sequence[Run], forget: ForgetSet) -> str:
    """Refuse to pool models of different methods or forget sets as if they were seeds.

    Returns the models' common method (see :func:`run_method`).
    """
    methods = {}
    for run in models:
        methods.setdefault(run_method(run), run.path)
    if len(methods) > 1:
        (a, pa), (b, pb) = list(methods.items())[:2]
        raise UnlearnkitError(
            f"evaluate: the models are of different methods ({pa}: {a}; {pb}: {b}); "
            "pool only seeds of one method, and evaluate each method separately"
        )
    for run in models:
        sha = run_forget_sha(run)
        if sha is not None and sha != forget.sha256:
            raise UnlearnkitError(
                f"evaluate: model {run.path} was unlearned on another forget set "
                f"(sha256 {sha[:12]}...) than the one given ({forget.sha256[:12]}...)"
            )
    return next(iter(methods))


def pair_by_seed(models: Sequence[Run], references: Sequence[Run]) -> list[tuple[int, int]]:
    """Index pairs (model i, reference j) with equal :func:`run_seed`.

    One model and one reference without recorded seeds form the one pair.
    A seed missing on one side, a run without a seed among several, or two runs
    of one side with the same seed is an :class:`UnlearnkitError` naming it.
    """
    if len(models) == 1 and len(references) == 1 and run_seed(models[0]) is None and run_seed(references[0]) is None:
        return [(0, 0)]
    seeds: dict[str, dict[int, int]] = {"model": {}, "reference": {}}
    for role, runs in (("model", models), ("reference", references)):
        for i, run in enumerate(runs):
            s = run_seed(run)
            if s is None:
                raise UnlearnkitError(
                    f"pairing 'seed': {role} {run.path} records no seed; pass pairing 'mean' to compare "
                    "every model with the mean of the references"
                )
            if s in seeds[role]:
                raise UnlearnkitError(
                    f"pairing 'seed': two {role}s have seed {s} ({runs[seeds[role][s]].path}, {run.path}); "
                    "pass one run per seed, or pairing 'mean'"
                )
            seeds[role][s] = i
    missing = [s for s in seeds["model"] if s not in seeds["reference"]]
    if missing:
        have = sorted(seeds["reference"])
        raise UnlearnkitError(
            f"pairing 'seed': no reference for seed {missing[0]} (model {models[seeds['model'][missing[0]]].path}); "
            f"the references have seeds {have}; add one, or pass pairing 'mean'"
        )
    return [(i, seeds["reference"][s]) for s, i in sorted(seeds["model"].items())]


def _mean(results: Sequence[EvalResult], key: str) -> float:
    return float(np.mean([r.metrics[key] for r in results]))


def _stack(results: Sequence[EvalResult], split: str) -> np.ndarray:
    """One split's margins, ``[n_examples, n_runs]``."""
    return np.stack([r.margins[split] for r in results], axis=1)


def evaluate_runs(
    models: Sequence[Run],
    references: Sequence[Run],
    forget: ForgetSet,
    *,
    pairing: Pairing = "seed",
    epsilon_grid: Grid = "exact",
    mia_max_per_side: int = DEFAULT_MAX_PER_SIDE,
    mia_repeats: int = MIA_REPEATS,
    seed: int = 0,
    quiet: bool = True,
) -> EvalReport:
    """Evaluate models (seeds of one unlearning method) against retrained references.

    Models of different methods or forget sets are refused (they are not
    seeds of one thing). With references: ToW, ToW-MIA and the mean accuracy
    gap per ``pairing`` (see the module docstring), and the references' own
    metrics. With >= 2 models and >= 2 references: per-example ε (``epsilon_grid``:
    ``"exact"`` or the challenge scorer's ``"scorer"`` grid; bucket points
    truncated at ceil(log(N_u − 1))), the challenge's final score, and KLoM on
    forget, retain and validation. All runs are measured on the same retain
    set: training minus forget minus anything any run excluded besides the
    forget set.
    """
    if not models:
        raise UnlearnkitError("evaluate: give at least one model")
    if pairing not in PAIRINGS:
        raise UnlearnkitError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if epsilon_grid not in ("exact", "scorer"):
        raise UnlearnkitError(f"epsilon grid must be 'exact' or 'scorer', got {epsilon_grid!r}")
    data = models[0].data
    for run in models[1:]:
        check_same_dataset(run.meta, data.spec, f"model {run.path}")
    forget.check(data)
    method = check_poolable(models, forget)
    for ref in references:
        for run in models:
            check_reference(ref, forget, run)
    pairs = pair_by_seed(models, references) if references and pairing == "seed" else []
    all_runs = [("model", r) for r in models] + [("reference", r) for r in references]
    excluded = np.setdiff1d(
        np.unique(np.concatenate([r.excluded for _, r in all_runs])), forget.indices
    ).astype(np.int64)

    results: list[EvalResult] = []
    with progress_bar(quiet) as bar:
        task = bar.add_task("evaluate", total=len(all_runs), info="")
        for role, run in all_runs:
            bar.update(task, info=f"{role} {run.path.name}")
            results.append(evaluate_model(run, data, forget, original_excluded=excluded,
                                          mia_max_per_side=mia_max_per_side, mia_repeats=mia_repeats, seed=seed))
            bar.advance(task)
    model_res, ref_res = results[: len(models)], results[len(models):]

    per_run = [
        {"role": role, "path": str(run.path), "seed": run_seed(run), **res.metrics, "mia_values": res.mia_values}
        for (role, run), res in zip(all_runs, results)
    ]
    comparisons: dict[str, Summary] = {}
    shown_pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    if references:
        fns = {"tow": tug_of_war, "tow_mia": tow_mia, "avg_gap": avg_gap}
        if pairing == "seed":
            targets = [(i, tow_inputs(ref_res[j].metrics)) for i, j in pairs]
            shown_pairs = [(str(models[i].path), str(references[j].path)) for i, j in pairs]
        else:
            ref_mean = tow_inputs({m: _mean(ref_res, m) for m in METRICS})
            targets = [(i, ref_mean) for i in range(len(models))]
            shown_pairs = [(str(m.path), "mean") for m in models]
        for name, fn in fns.items():
            vals = [fn(tow_inputs(model_res[i].metrics), target) for i, target in targets]
            comparisons[name] = Summary.of(vals)
            for (i, _), v in zip(targets, vals):
                per_run[i][name] = v
        spread = mia_spread_warning([r.metrics["mia_efficacy"] for r in ref_res])
        if spread:
            warnings.append(spread)

    per_example = pd.concat(
        [res.per_example.assign(role=role, run=str(run.path)) for (role, run), res in zip(all_runs, results)],
        ignore_index=True,
    )[["index", "role", "run", "p_true", "loss", "correct", "logit_conf"]]
    eps_report = klom_report = None
    if len(model_res) >= 2 and len(ref_res) >= 2:
        eps = per_example_epsilon(_stack(model_res, "forget"), _stack(ref_res, "forget"), grid=epsilon_grid)
        top = challenge_max_epsilon(len(model_res))
        fq = forget_quality(eps, max_epsilon=top)
        eps_report = EpsilonReport(
            n_models=len(model_res), n_references=len(ref_res), grid=epsilon_grid, max_epsilon=top,
            mean=float(eps.mean()), median=float(np.median(eps)), at_cap=float((eps >= EPSILON_CAP).mean()),
            forget_quality=fq,
            final_score=final_score(fq, _mean(model_res, "retain_acc"), _mean(ref_res, "retain_acc"),
                                    _mean(model_res, "test_acc"), _mean(ref_res, "test_acc")),
        )
        if top == 0:
            warnings.append("with 2 models the challenge's score counts ε only below ceil(log(N - 1)) = 0: "
                            "every example scores 0; use more models per side")
        by_index = pd.DataFrame({"index": model_res[0].per_example["index"], "epsilon": eps,
                                 "score": bucket_score(eps, max_epsilon=top)})
        per_example = per_example.merge(by_index, on="index", how="left")
        per_split = {s: klom(_stack(model_res, s), _stack(ref_res, s)) for s in KLOM_SPLITS}
        klom_report = KlomReport(
            n_models=len(model_res), n_references=len(ref_res),
            p95={s: klom_percentile(v) for s, v in per_split.items()},
            median={s: klom_percentile(v, 50.0) for s, v in per_split.items()},
        )
    return EvalReport(
        dataset={k: v for k, v in data.spec.items() if k != "data_root"},
        forget={"size": len(forget), "sha256": forget.sha256, "source": forget.source, "kind": forget.kind},
        sizes=results[0].sizes,
        mia={
            "max_per_side": mia_max_per_side,
            "seed": seed,
            "repeats": mia_repeats,
            "efficacy": "RBF SVC (C=3, gamma=auto) on p_true, retain members vs test non-members, balanced, "
            f"at most {mia_max_per_side} per side; fraction of the forget set predicted non-member; mean over "
            f"{mia_repeats} subsample seeds (mia_efficacy_sd: their standard deviation)",
            "auc": f"logistic regression on the loss, forget vs test, {AUC_FOLDS}-fold stratified CV, mean AUC",
        },
        method=method,
        models=[str(r.path) for r in models],
        references=[str(r.path) for r in references],
        pairing=pairing,
        pairs=shown_pairs,
        metrics={m: Summary.of([r.metrics[m] for r in model_res]) for m in METRICS},
        reference={m: Summary.of([r.metrics[m] for r in ref_res]) for m in METRICS} if references else {},
        comparisons=comparisons,
        per_run=per_run,
        per_example=per_example,
        epsilon=eps_report,
        klom=klom_report,
        warnings=warnings,
    )


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
