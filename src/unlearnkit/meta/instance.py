"""Instance-level unlearning difficulty (the "seed 000" analysis): ``analyze-instances``.

It runs unlearning methods many times, so it sits above :mod:`unlearnkit.methods`, beside RUM.

For each forget example x with label y and each method m,
difficulty(x, m) = |mean_s p_y(θ_u^{m,s}) − mean_s p_y(θ_r^s)|, the distance of
the unlearned models to the retrained references on that example (probability
units, [0, 1]). References are ``retrain`` with seeds 0..S-1; every method runs
with seeds S..2S-1, so ``retrain`` as a method measures seed noise (the floor).
Then: (a) Spearman between methods, (b) Spearman of every score with
difficulty, (c) a cross-validated classifier predicting "hard" (top quartile of
the mean difficulty across methods) from the scores, (d) the fraction of hard
examples (difficulty above ``hard_threshold``).
"""

from __future__ import annotations

import itertools
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unlearnkit.data import ForgetSet
from unlearnkit.difficulty.scores import (
    CHEAP_SCORES, SCORES_FILE, available_scores, compute_scores, load_scores, score_columns, spearman,
)
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, write_json, write_parquet
from unlearnkit.runs import Run
from unlearnkit.progress import progress_bar
from unlearnkit.training import predict_logits

REFERENCE = "retrain"
HARD_QUANTILE = 0.75
CV_FOLDS = 5


@dataclass
class InstanceAnalysis:
    """What :func:`analyze_instances` found.

    ``instances``: one row per (forget example, method): index, label, method,
    difficulty, p_unlearned (mean over seeds), p_retrained (mean over
    reference seeds), p_original, difficulty_seed<s> (|p_y(θ_u^s) − mean p_y(θ_r)|).
    ``summary``: the JSON written to ``analysis.json`` (correlations, AUC, fractions).
    """

    instances: pd.DataFrame
    summary: dict[str, Any]
    out: Path | None = None
    plots: list[str] = field(default_factory=list)


def true_label_probability(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """p_y(x) under ``model`` for each row, ``[n]``."""
    return torch.softmax(predict_logits(model, x), 1).gather(1, y[:, None])[:, 0].double().numpy()


def hard_classifier_auc(features: pd.DataFrame, hard: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Cross-validated ROC AUC of a logistic regression predicting ``hard`` ``[n]`` (bool)
    from ``features`` (one column per score; columns with missing or constant values
    are dropped). Stratified k-fold with k = min(5, size of the smaller class)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    usable = [c for c in features.columns if features[c].notna().all() and features[c].nunique() > 1]
    folds = int(min(CV_FOLDS, hard.sum(), (~hard).sum()))
    result: dict[str, Any] = {"model": "logistic_regression (standardised scores)", "features": usable,
                              "folds": folds, "auc": None}
    if not usable or folds < 2:
        result["reason"] = "no usable score columns" if not usable else "too few hard or easy examples for 2 folds"
        return result
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, features[usable].to_numpy(), hard, cv=cv, method="predict_proba")[:, 1]
    result["auc"] = float(roc_auc_score(hard, proba))
    return result


def _scores_for(run: Run, index: np.ndarray, device: str) -> tuple[pd.DataFrame, str]:
    """Score columns for the forget ``index`` rows: from scores.parquet, else the cheap ones computed now."""
    if (run.path / SCORES_FILE).exists():
        table, source = load_scores(run.path), str(run.path / SCORES_FILE)
    else:
        table = compute_scores(run, available_scores(run, CHEAP_SCORES), device=device)
        source = "computed now: " + ", ".join(score_columns(table))
    table = table.set_index("index").reindex(index)
    return table[score_columns(table.reset_index())], source


def _resolve_methods(run: Run, methods: list[str]) -> tuple[list[str], dict[str, str]]:
    from unlearnkit.methods import METHODS

    wanted = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if not wanted:
        raise UnlearnkitError("no methods given; e.g. --methods retrain,finetune,neggrad_plus")
    skipped: dict[str, str] = {}
    sisa_run = False
    if "sisa" in METHODS:
        from unlearnkit.methods.sisa import is_sisa_run

        sisa_run = is_sisa_run(run)
        if sisa_run and "sisa" not in wanted:
            wanted.append("sisa")
    if "sisa" in wanted and not sisa_run:
        wanted.remove("sisa")
        skipped["sisa"] = ("not registered in this installation" if "sisa" not in METHODS
                           else "the run is not a SISA run (train one with SISA to include it)")
    for m in wanted:
        METHODS.get(m)  # unknown -> one-line error listing the registered methods
    if not wanted:
        raise UnlearnkitError("no method left to analyse: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return wanted, skipped


def _check_params(run: Run, params: dict[str, dict[str, Any]]) -> None:
    """Validate every override before the first (long) training; one-line error on a bad one."""
    from unlearnkit.methods import METHODS

    for method, overrides in params.items():
        METHODS.get(method).resolve_params(run.data.spec.get("name"), overrides)


def _plots(out: Path, instances: pd.DataFrame, methods: list[str], score_corr: dict[str, float | None]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    wide = instances.pivot(index="index", columns="method", values="difficulty")[methods]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.8), squeeze=False)
    for ax, m in zip(axes[0], methods):
        ax.hist(wide[m], bins=20, color="tab:blue")
        ax.set_title(m)
        ax.set_xlabel("difficulty |p_u − p_r|")
    axes[0][0].set_ylabel("forget examples")
    fig.tight_layout()
    fig.savefig(out / "difficulty_hist.png", dpi=100)
    files.append("difficulty_hist.png")
    pairs = list(itertools.combinations(methods, 2))
    if pairs:
        fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.0), squeeze=False)
        for ax, (a, b) in zip(axes[0], pairs):
            ax.scatter(wide[a], wide[b], s=8, alpha=0.6)
            ax.set_xlabel(a)
            ax.set_ylabel(b)
        fig.suptitle("per-example difficulty, method vs method")
        fig.tight_layout()
        fig.savefig(out / "method_scatter.png", dpi=100)
        files.append("method_scatter.png")
    named = {k: v for k, v in score_corr.items() if v is not None}
    if named:
        fig, ax = plt.subplots(figsize=(5, 0.35 * len(named) + 1.2))
        ax.barh(list(named), list(named.values()), color=["tab:red" if v < 0 else "tab:green" for v in named.values()])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_xlabel("Spearman with mean difficulty")
        fig.tight_layout()
        fig.savefig(out / "score_correlations.png", dpi=100)
        files.append("score_correlations.png")
    plt.close("all")
    return files


def _probabilities(
    run: Run, forget: ForgetSet, methods: list[str], seeds: int, params: dict[str, dict[str, Any]],
    device: str, quiet: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """p_y on the forget examples: references ``[seeds, n]`` (retrain, seeds 0..S-1) and
    ``{method: [seeds, n]}`` (seeds S..2S-1)."""
    from unlearnkit.methods import unlearn_from_run

    pos = forget.positions(run.data)
    x, y = run.data.x_train[pos], run.data.y_train[pos]
    # Overridden retrain parameters go through the method; otherwise all references train at once.
    ensembled = None if params.get(REFERENCE) else _ensemble_references(run, pos, seeds, device, x, y)
    p_ref = ensembled if ensembled is not None else np.zeros((seeds, len(pos)))
    p_unl = {m: np.zeros((seeds, len(pos))) for m in methods}
    with progress_bar(quiet) as bar:
        task = bar.add_task("analyze-instances", total=seeds * (len(methods) + (ensembled is None)), info="")
        for s in range(seeds):
            jobs = [] if ensembled is not None else [(REFERENCE, s, p_ref)]
            jobs += [(m, seeds + s, p_unl[m]) for m in methods]
            for method, seed, into in jobs:
                bar.update(task, info=f"{method}, seed {seed}")
                res = unlearn_from_run(run, forget, method, params.get(method), seed=seed, device=device)
                into[s] = true_label_probability(res.model, x, y)
                bar.update(task, advance=1)
    return p_ref, p_unl


def _ensemble_references(run: Run, forget_pos: np.ndarray, seeds: int, device: str, x: torch.Tensor,
                         y: torch.Tensor) -> np.ndarray | None:
    """The references' p_y on ``x`` ``[seeds, n]``: the ``retrain`` method's models of seeds
    0..S-1 (same initialisation, recipe and rows), trained together by the ensemble engine;
    None when the run's task cannot rebuild its model or is not a classifier (then the method runs)."""
    from unlearnkit.ensembles import train_ensemble
    from unlearnkit.methods.api import retain_positions
    from unlearnkit.task import Task
    from unlearnkit.training import resolve_device

    task = Task.from_run(run)
    if task.build_model is None or task.recipe is None or getattr(run.model, "objective", "classify") != "classify":
        return None
    retain = retain_positions(run, forget_pos)
    ens = train_ensemble(task.build_model, run.data.x_train, run.data.y_train, [retain] * seeds, task.recipe,
                         list(range(seeds)), device=resolve_device(device), measure_fit=False, desc="references")
    probs = torch.softmax(ens.logits(x), 2)  # [S, n, C]
    return probs.gather(2, y.view(1, -1, 1).expand(seeds, -1, 1))[..., 0].double().numpy()


def _instances_table(run: Run, forget: ForgetSet, p_ref: np.ndarray, p_unl: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (forget example, method); see :class:`InstanceAnalysis`."""
    pos = forget.positions(run.data)
    y = run.data.y_train[pos]
    ref_mean = p_ref.mean(0)
    p_orig = true_label_probability(run.model, run.data.x_train[pos], y)
    frames = []
    for m, p in p_unl.items():
        frame = pd.DataFrame({
            "index": run.data.index_train[pos].numpy(), "label": y.numpy(), "method": m,
            "difficulty": np.abs(p.mean(0) - ref_mean),
            "p_unlearned": p.mean(0), "p_retrained": ref_mean, "p_original": p_orig,
        })
        for s in range(len(p)):
            frame[f"difficulty_seed{s}"] = np.abs(p[s] - ref_mean)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def analyze_instances(
    run: Run,
    forget: ForgetSet,
    methods: list[str],
    seeds: int = 5,
    out: str | Path | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    quiet: bool = True,
    *,
    device: str = "auto",
    hard_threshold: float = 0.1,
    overwrite: bool = False,
) -> InstanceAnalysis:
    """Per-example unlearning difficulty of ``forget`` for each of ``methods`` (module docstring).

    ``params`` maps a method name to its hyperparameter overrides. With ``out``,
    writes ``instances.parquet``, ``analysis.json`` and PNG plots into that
    directory (atomically). ``sisa`` joins the methods when it is registered and
    ``run`` is a SISA run, and is skipped (recorded in ``skipped``) otherwise.
    """
    if seeds < 1:
        raise UnlearnkitError(f"--seeds must be >= 1, got {seeds}")
    if not 0 <= hard_threshold <= 1:
        raise UnlearnkitError(f"hard threshold must be in [0, 1], got {hard_threshold}")
    methods, skipped = _resolve_methods(run, methods)
    params = {m: p for m, p in (params or {}).items() if m not in skipped}
    unknown = sorted(set(params) - set(methods) - {REFERENCE})
    if unknown:
        raise UnlearnkitError(f"hyperparameters given for methods not analysed: {', '.join(unknown)}")
    _check_params(run, params)
    index = run.data.index_train[forget.check(run.data)].numpy()
    # Entered first, so an existing output is refused before any training; Ctrl-C leaves nothing.
    target = atomic_dir(out, overwrite=overwrite, marker="analysis.json") if out is not None else nullcontext()
    with target as tmp:
        start = time.perf_counter()
        p_ref, p_unl = _probabilities(run, forget, methods, seeds, params, device, quiet)
        instances = _instances_table(run, forget, p_ref, p_unl)
        wide = instances.pivot(index="index", columns="method", values="difficulty").reindex(index)[methods]
        mean_difficulty = wide.mean(axis=1).to_numpy()
        scores, score_source = _scores_for(run, index, device)
        score_corr = {c: spearman(scores[c].to_numpy(), mean_difficulty) for c in scores.columns}
        cut = float(np.quantile(mean_difficulty, HARD_QUANTILE))
        hard = mean_difficulty >= cut if cut > 0 else mean_difficulty > cut
        summary: dict[str, Any] = {
            "run": {"path": str(run.path), "weights_sha256": run.meta.get("weights_sha256")},
            "forget": {"source": forget.source, "size": len(forget), "sha256": forget.sha256, "kind": forget.kind},
            "methods": methods,
            "skipped": skipped,
            "seeds": seeds,
            "reference": {"method": REFERENCE, "seeds": list(range(seeds))},
            "method_seeds": list(range(seeds, 2 * seeds)),
            "params": params,
            "difficulty": "|mean_s p_y(unlearned) - mean_s p_y(retrained)|, probability units",
            "mean_difficulty": {m: float(wide[m].mean()) for m in methods},
            "method_correlations": {f"{a}~{b}": spearman(wide[a].to_numpy(), wide[b].to_numpy())
                                    for a, b in itertools.combinations(methods, 2)},
            "score_source": score_source,
            "score_correlations": score_corr,
            "score_correlations_by_method": {
                m: {c: spearman(scores[c].to_numpy(), wide[m].to_numpy()) for c in scores.columns} for m in methods
            },
            "hard": {"definition": f"mean difficulty across methods >= its {HARD_QUANTILE:.0%} quantile",
                     "cutoff": cut, "count": int(hard.sum())},
            "classifier": hard_classifier_auc(scores, hard),
            "hard_threshold": hard_threshold,
            "hard_fraction": {m: float((wide[m] > hard_threshold).mean()) for m in methods},
            "hard_fraction_mean": float((mean_difficulty > hard_threshold).mean()),
            "seconds": time.perf_counter() - start,
        }
        result = InstanceAnalysis(instances, summary, out=Path(out) if out is not None else None)
        if tmp is not None:
            write_parquet(tmp / "instances.parquet", instances)
            result.plots = _plots(tmp, instances, methods, score_corr)
            write_json(tmp / "analysis.json", {**summary, "plots": result.plots})
    return result
