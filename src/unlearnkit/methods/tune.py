"""Hyperparameter search for an unlearning method, selecting by Tug-of-War (SPEC §4, §8).

The search never touches the forget sets you evaluate on, nor the test split:

- a *validation forget set* S_v is drawn at random (its own seed, recorded)
  from the examples the original trained on, minus any ``avoid`` indices;
- the reference is ``retrain`` on D minus S_v with the original recipe, trained
  once and cached (in memory, and in ``reference_dir`` when given);
- each grid point unlearns S_v and is scored by
  ``ToW = (1−Δacc(S_v))(1−Δacc(D_r))(1−Δacc(validation split))`` against the
  reference, with the validation split in place of the test split.

The best ToW wins; ties go to the cheaper point (fewer examples processed).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from unlearnkit.data import ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import read_json, write_json
from unlearnkit.methods.api import retain_positions, unlearn, unlearn_run
from unlearnkit.methods.base import METHODS
from unlearnkit.metrics import tug_of_war
from unlearnkit.models import Classifier
from unlearnkit.runs import Run, load_run
from unlearnkit.training import accuracy

GRIDS = ("small",)


@dataclass
class TuneResult:
    """Outcome of :func:`tune`.

    ``chosen``: the selected grid values; ``table``: one row per grid point
    (its values, ``forget_acc``, ``retain_acc``, ``val_acc``, ``tow``,
    ``seconds``, ``examples_processed``, ``error``), best first;
    ``reference``: the retrained model's accuracies and cost on S_v.
    """

    method: str
    chosen: dict[str, Any]
    tow: float
    table: pd.DataFrame
    val_forget: ForgetSet
    reference: dict[str, float]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        table = self.table.astype(object).where(self.table.notna(), None)
        return {
            "method": self.method,
            "chosen": self.chosen,
            "tow": self.tow,
            "seed": self.seed,
            "selection": "max ToW on a validation forget set (validation split in place of test); ties: fewer examples",
            "validation_forget": {**self.val_forget.meta, "size": len(self.val_forget),
                                  "sha256": self.val_forget.sha256, "indices": self.val_forget.indices.tolist()},
            "reference": self.reference,
            "grid": table.to_dict(orient="records"),
        }


def validation_forget_set(run: Run, size: int | None = None, seed: int = 1000,
                          avoid: np.ndarray | None = None) -> ForgetSet:
    """A random forget set for tuning: ``size`` (default 10% of the training set) of the
    examples ``run`` trained on, excluding ``avoid`` (e.g. the forget sets you will evaluate)."""
    data = run.data
    pool = np.setdiff1d(data.index_train.numpy(), run.excluded)
    if avoid is not None:
        pool = np.setdiff1d(pool, np.asarray(avoid, dtype=np.int64))
    size = max(1, round(0.1 * data.n_train)) if size is None else int(size)
    if size <= 0 or size >= len(pool):
        raise UnlearnkitError(f"--val-size must be in 1..{len(pool) - 1} (examples available), got {size}")
    chosen = np.random.default_rng(seed).choice(pool, size=size, replace=False)
    return ForgetSet(chosen, {"kind": "validation", "seed": int(seed), "avoided": int(0 if avoid is None else len(avoid))})


def split_accuracies(model: Classifier, run: Run, forget: ForgetSet) -> dict[str, float]:
    """Accuracy on S (``forget``), D_r (``retain``) and the validation split (``val``)."""
    data = run.data
    fp = forget.check(data)
    rp = retain_positions(run, fp)
    return {
        "forget": accuracy(model, data.x_train[fp], data.y_train[fp]),
        "retain": accuracy(model, data.x_train[rp], data.y_train[rp]),
        "val": accuracy(model, data.x_val, data.y_val),
    }


_REFERENCES: dict[str, dict[str, float]] = {}


def reference_accuracies(run: Run, forget: ForgetSet, *, seed: int = 0, device: str = "auto",
                         quiet: bool = True, reference_dir: str | Path | None = None) -> dict[str, float]:
    """Accuracies (and wall time / examples processed) of ``retrain`` on D minus ``forget``.

    Cached in memory per (weights, forget set, seed); with ``reference_dir`` also on
    disk as a run directory named by that key, reused by later calls.
    """
    key = hashlib.sha256(f"{run.meta.get('weights_sha256')}|{forget.sha256}|{seed}".encode()).hexdigest()[:16]
    if key in _REFERENCES:
        return _REFERENCES[key]
    path = Path(reference_dir) / f"tune-reference-{key}" if reference_dir else None
    if path is not None and (path / "run.json").exists():
        ref = load_run(path, data=run.data)
        info = read_json(path / "unlearn.json")
        model, seconds, work = ref.model, info["seconds"], info["examples_processed"]
    elif path is not None:
        ref = unlearn_run(run, forget, "retrain", path, seed=seed, device=device, quiet=quiet)
        info = ref.extra["unlearn"]
        model, seconds, work = ref.model, info["seconds"], info["examples_processed"]
    else:
        out = unlearn(run, forget, "retrain", seed=seed, device=device, quiet=quiet)
        model, seconds, work = out.model, out.seconds, out.examples_processed
    accs = {**split_accuracies(model, run, forget), "seconds": float(seconds), "examples_processed": int(work)}
    _REFERENCES[key] = accs
    return accs


def default_grid(method: str) -> dict[str, list[Any]]:
    """The method's small grid (``Method.tune_grid``)."""
    grid = METHODS.get(method).tune_grid
    if not grid:
        raise UnlearnkitError(f"method '{method}' has no hyperparameters to tune")
    return {k: list(v) for k, v in grid.items()}


def tune(
    run: Run,
    method: str,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    val_size: int | None = None,
    val_seed: int = 1000,
    avoid: np.ndarray | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
    reference_dir: str | Path | None = None,
) -> TuneResult:
    """Grid-search ``method``'s hyperparameters on ``run`` by ToW on a validation forget set.

    ``grid`` maps hyperparameter names to candidate values (default: the method's
    small grid, 6-12 points). A grid point whose unlearning fails (e.g. a NaN
    loss) is recorded with its error and ToW NaN.
    """
    grid = default_grid(method) if grid is None else {k: list(v) for k, v in grid.items()}
    cls = METHODS.get(method)
    keys = list(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    for point in points:  # refuse unknown keys / bad values before any training
        cls.resolve_params(run.data.spec.get("name"), point)
    forget = validation_forget_set(run, val_size, val_seed, avoid)
    ref = reference_accuracies(run, forget, seed=seed, device=device, quiet=quiet, reference_dir=reference_dir)
    ref_tow = {"forget": ref["forget"], "retain": ref["retain"], "test": ref["val"]}
    rows = []
    for point in points:
        row: dict[str, Any] = dict(point)
        try:
            out = unlearn(run, forget, method, point, seed=seed, device=device, quiet=quiet)
        except UnlearnkitError as e:
            rows.append({**row, "tow": float("nan"), "error": str(e)})
            continue
        acc = split_accuracies(out.model, run, forget)
        row.update({f"{k}_acc": v for k, v in acc.items()})
        row["tow"] = tug_of_war({"forget": acc["forget"], "retain": acc["retain"], "test": acc["val"]}, ref_tow)
        row.update(seconds=out.seconds, examples_processed=out.examples_processed,
                   work_vs_retrain=out.examples_processed / ref["examples_processed"], error=None)
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[table["tow"].notna()]
    if ok.empty:
        raise UnlearnkitError(f"tune {method}: every grid point failed; first error: {rows[0]['error']}")
    table = table.assign(_neg_tow=-table["tow"]).sort_values(
        ["_neg_tow", "examples_processed"], na_position="last", kind="stable"
    ).drop(columns="_neg_tow").reset_index(drop=True)
    best = table.iloc[0]
    chosen = {k: _plain(best[k]) for k in keys}
    return TuneResult(method, chosen, float(best["tow"]), table, forget, ref, seed)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON and pydantic)."""
    return v.item() if isinstance(v, np.generic) else v


def write_tune(path: str | Path, result: TuneResult) -> None:
    """Write :meth:`TuneResult.to_dict` as JSON (atomically)."""
    write_json(path, result.to_dict())


def update_preset(path: str | Path, result: TuneResult, *, dataset: str, model: str, command: str,
                  train: dict[str, Any] | None = None) -> None:
    """Merge ``result.chosen`` into the preset file ``path`` (``{method: {param: value}}``),
    recording provenance under ``_provenance[method]`` (command, date, model, its training
    recipe, validation ToW)."""
    path = Path(path)
    preset = read_json(path) if path.exists() else {}
    preset[result.method] = result.chosen
    prov = preset.setdefault("_provenance", {})
    prov[result.method] = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset": dataset,
        "model": model,
        "train": train or {},
        "val_tow": round(result.tow, 4),
        "val_forget_size": len(result.val_forget),
    }
    write_json(path, dict(sorted(preset.items())))
