"""The score registry and the per-example score table ``RUN_DIR/scores.parquet``.

A score is a function of a :class:`ScoreContext` (the run, its training
examples and cached predictions) returning one value per training example the
run trained on, or several named columns (memorization adds ``_se`` and
``_n_out``). Each is registered once with its direction::

    @register_score("margin", higher_is_harder=False, needs=("model",), cost="one forward pass")
    def _margin(ctx): ...

so forget-set builders and RUM can turn any score into a hardness ("higher
is harder") by flipping the sign of confidence-type scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import read_json, read_parquet, write_json, write_parquet
from unlearnkit.models.base import require_classifier
from unlearnkit.registry import Registry
from unlearnkit.runs import Run, run_lock
from unlearnkit.progress import progress_bar
from unlearnkit.task import Task
from unlearnkit.training import predict_embeddings, predict_logits, resolve_device

SCORES_FILE = "scores.parquet"
SCORES_META = "scores.json"

ScoreValue = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score: ``fn(ctx) -> [n]`` array (or named columns), its direction,
    what it needs (``model``, ``dynamics``, ``validation``, ``float_inputs``,
    ``memorization``), its cost in words and its one-line description."""

    name: str
    fn: Callable[["ScoreContext"], ScoreValue]
    higher_is_harder: bool
    needs: tuple[str, ...]
    cost: str
    description: str


SCORES: Registry[ScoreSpec] = Registry("score")

# Cheap enough to compute on the fly when an analysis needs scores the run lacks.
CHEAP_SCORES = ("confidence", "binary_accuracy", "max_confidence", "entropy", "margin", "loss",
                "grad_norm", "centroid_distance")


def register_score(
    name: str, *, higher_is_harder: bool, needs: tuple[str, ...] = ("model",), cost: str = ""
) -> Callable[[Callable[["ScoreContext"], ScoreValue]], Callable[["ScoreContext"], ScoreValue]]:
    """Decorator registering ``fn(ctx)`` as score ``name`` (its docstring's first line describes it)."""

    def decorator(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        SCORES.register(name)(ScoreSpec(name, fn, higher_is_harder, tuple(needs), cost, doc[0] if doc else ""))
        return fn

    return decorator


def trained_positions(run: Run) -> np.ndarray:
    """Row positions in ``run.data.x_train`` of the examples the run's weights trained on."""
    data = run.data
    if len(run.excluded) == 0:
        return np.arange(data.n_train)
    return data.complement(data.positions(run.excluded, what="excluded indices"))


@dataclass
class ScoreContext:
    """What score functions read: the run, its trained examples (``positions``,
    ``index``, ``x``, ``y``), the device, and predictions cached across scores."""

    run: Run
    device: torch.device
    memorization_dir: Path | None = None
    seed: int = 0
    quiet: bool = True
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = trained_positions(self.run)
        data = self.run.data
        self.x = data.x_train[self.positions]
        self.y = data.y_train[self.positions]
        self.index = data.index_train[self.positions].numpy()
        self.model = self.run.model.to(self.device).eval()

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    def logits(self) -> torch.Tensor:
        """Final-model logits ``[n, C]`` (float32, CPU)."""
        return self.cached("logits", lambda: predict_logits(self.model, self.x, device=self.device))

    def embeddings(self) -> torch.Tensor:
        """Final-model penultimate embeddings ``[n, d]`` (float32, CPU)."""
        features = Task.from_run(self.run).features  # the model's own, or a user Task's (model-first calls)
        return self.cached("embeddings", lambda: predict_embeddings(self.model, self.x, device=self.device, features=features))

    def dynamics_means(self) -> pd.DataFrame:
        """Per-example means over epochs of the training dynamics, aligned with ``index``."""

        def load() -> pd.DataFrame:
            dyn = self.run.dynamics()
            means = dyn.groupby("index")[["p_true", "correct"]].mean()
            means = means.reindex(self.index)
            if means.isna().any().any():
                raise UnlearnkitError(
                    f"{self.run.path}: dynamics.parquet does not cover every trained example; re-run `unlearnkit train`"
                )
            return means

        return self.cached("dynamics", load)


def unmet_need(spec: ScoreSpec, ctx: ScoreContext) -> str | None:
    """Why ``spec`` cannot be computed for this run (one line), or None."""
    run = ctx.run
    for need in spec.needs:
        if need == "dynamics" and not run.dynamics_path.exists():
            return f"{run.path} has no dynamics.parquet (recorded by `unlearnkit train`)"
        if need == "memorization" and ctx.memorization_dir is None:
            return "no memorization directory given; run `unlearnkit memorization` and pass --memorization MEM_DIR"
        if need == "validation" and len(run.data.y_val) == 0:
            return "the run's dataset has no validation split (train with --val-fraction > 0)"
        if need == "float_inputs" and run.data.is_text:
            return "not applicable to text models (inputs are token ids, not a continuous input space)"
    return None


def resolve_names(names: str | list[str] | tuple[str, ...]) -> list[str] | None:
    """``"all"`` -> None; ``"a,b"`` or a list -> validated names (unknown ones listed)."""
    if isinstance(names, str):
        if names.strip() == "all":
            return None
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = list(dict.fromkeys(names))
    if not out:
        raise UnlearnkitError("no score names given; use 'all' or a comma-separated list")
    for n in out:
        SCORES.get(n)  # raises, listing the available scores
    return out


def available_scores(run: Run, names: list[str] | tuple[str, ...], memorization_dir: str | Path | None = None) -> list[str]:
    """The subset of ``names`` whose needs ``run`` meets."""
    # On the model's own device: only the needs are checked, and the run's model must not move.
    device = next(run.model.parameters()).device
    ctx = ScoreContext(run, device, Path(memorization_dir) if memorization_dir else None)
    return [n for n in names if unmet_need(SCORES.get(n), ctx) is None]


def compute_scores(
    run: Run,
    names: str | list[str] = "all",
    memorization_dir: str | Path | None = None,
    quiet: bool = True,
    *,
    device: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """Per-example scores of ``run``'s training examples.

    Returns a DataFrame with ``index`` (original training index), ``label`` and
    one column per score (memorization adds ``memorization_se`` and
    ``memorization_n_out``). ``names="all"`` computes every score the run can
    support and records the others with their reason in ``df.attrs["skipped"]``;
    a score named explicitly that cannot be computed raises a one-line error
    saying which command records what it needs. ``df.attrs["seconds"]`` holds
    each score's wall time in seconds.
    """
    require_classifier(run.model, "difficulty scores")
    wanted = resolve_names(names)
    ctx = ScoreContext(
        run, resolve_device(device), Path(memorization_dir) if memorization_dir else None, seed, quiet
    )
    every = wanted is None
    if every:
        wanted = [n for n in SCORES.names() if n != "memorization" or memorization_dir is not None]
    skipped: dict[str, str] = {}
    todo: list[ScoreSpec] = []
    for name in wanted:
        spec = SCORES.get(name)
        reason = unmet_need(spec, ctx)
        if reason is None:
            todo.append(spec)
        elif every:
            skipped[name] = reason
        else:
            raise UnlearnkitError(f"score '{name}': {reason}")
    df = pd.DataFrame({"index": ctx.index, "label": ctx.y.numpy()})
    seconds: dict[str, float] = {}
    with progress_bar(quiet) as bar:
        task = bar.add_task("scores", total=len(todo), info="")
        for spec in todo:
            bar.update(task, info=spec.name)
            start = time.perf_counter()
            value = spec.fn(ctx)
            seconds[spec.name] = time.perf_counter() - start
            cols = value if isinstance(value, dict) else {spec.name: value}
            for col, arr in cols.items():
                df[col] = np.asarray(arr, dtype=np.float64)
            bar.update(task, advance=1)
    df.attrs["seconds"] = seconds
    df.attrs["skipped"] = skipped
    return df


def score_direction(column: str) -> bool:
    """``higher_is_harder`` of a score column; columns that are not registered scores
    (e.g. ``memorization_se``) count as higher-is-harder."""
    return SCORES.get(column).higher_is_harder if column in SCORES else True


def score_columns(df: pd.DataFrame) -> list[str]:
    """The score columns of a scores table (everything but ``index`` and ``label``)."""
    return [c for c in df.columns if c not in ("index", "label")]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation over pairs where both are finite; None if undefined."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(spearmanr(a[ok], b[ok]).statistic)


def load_scores(run_dir: str | Path) -> pd.DataFrame:
    """Read ``RUN_DIR/scores.parquet`` (written by ``unlearnkit score``)."""
    path = Path(run_dir) / SCORES_FILE
    if not path.exists():
        raise UnlearnkitError(f"{run_dir}: no {SCORES_FILE}; compute it with `unlearnkit score --run {run_dir}`")
    return read_parquet(path)


def score_run(
    run: Run,
    names: str | list[str] = "all",
    memorization_dir: str | Path | None = None,
    quiet: bool = True,
    *,
    device: str = "auto",
    seed: int = 0,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """:func:`compute_scores`, merged into ``RUN_DIR/scores.parquet`` (or ``out``) atomically.

    Columns computed now replace same-named ones; others already in the file
    are kept. ``scores.json`` beside it records each score's direction, cost,
    seconds, what was skipped and why, and each score's Spearman correlation
    with memorization when the table has a memorization column.
    Returns the merged table.
    """
    new = compute_scores(run, names, memorization_dir, quiet, device=device, seed=seed)
    path = Path(out) if out is not None else run.path / SCORES_FILE
    # The run directory's lock makes the read-merge-write one step: two `score` commands on
    # one run both compute, then merge in turn, and neither's columns are lost.
    with run_lock(path.parent):
        meta_path = path.with_name(SCORES_META)
        merged = new
        info: dict[str, Any] = {"scores": {}}
        if path.exists():
            old = read_parquet(path)
            keep = [c for c in score_columns(old) if c not in new.columns]
            if keep and set(old["index"]) == set(new["index"]):
                merged = new.merge(old[["index", *keep]], on="index", how="left")
            if meta_path.exists():
                info = read_json(meta_path)
                if not isinstance(info, dict) or not isinstance(info.get("scores"), dict):
                    info = {"scores": {}}  # not a file we wrote: rebuilt from the table
        merged = merged[["index", "label", *sorted(score_columns(merged))]]
        entries = info.setdefault("scores", {})
        for name, secs in new.attrs["seconds"].items():
            spec = SCORES.get(name)
            entries[name] = {"higher_is_harder": spec.higher_is_harder, "cost": spec.cost,
                             "description": spec.description, "seconds": secs}
        for name in list(entries):
            if name not in merged.columns:
                del entries[name]
        if "memorization" in merged.columns:
            for name in entries:
                if name != "memorization":
                    entries[name]["spearman_memorization"] = spearman(merged[name], merged["memorization"])
        info.update(
            run={"path": str(run.path), "weights_sha256": run.meta.get("weights_sha256")},
            n_examples=len(merged),
            skipped=new.attrs["skipped"],
            memorization_dir=str(memorization_dir) if memorization_dir else info.get("memorization_dir"),
        )
        write_parquet(path, merged)
        write_json(meta_path, info)
    merged.attrs.update(new.attrs)
    return merged
