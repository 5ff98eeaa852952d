"""The results table: ``DIR/results.parquet``, one row per (forget set, method, variant, seed).

Columns (accuracies and MIA-efficacy in [0, 1], times in seconds):

- set-up: dataset, model, forget_kind, forget_size, es, method, variant, seed
- the unlearned model: forget_acc, retain_acc, test_acc, mia_efficacy (mean over
  subsample seeds), mia_efficacy_sd (their standard deviation), mia_auc (loss
  attack AUC, forget vs test), seconds, examples_processed
- against the reference: tow, tow_mia, cost_ratio (seconds / ref_seconds); the
  reference is the single-model retrain of the same seed, or for SISA the SISA
  ensemble trained without the forget set (exact: ToW 1 by construction)
- the reference itself: ref_forget_acc, ref_retain_acc, ref_test_acc, ref_mia_efficacy,
  ref_mia_auc, ref_seconds
- the single-model retrain: retrain_test_acc, retrain_seconds (equal to ref_test_acc
  and ref_seconds except on SISA rows: SISA's accuracy loss and cost against it)
- params: the hyperparameters the row's method ran with (JSON; per group for RUM variants,
  after tuning when the config has a ``tuning:`` block; ``{}`` for the original)

The file is written atomically (temporary file, then rename), so a full disk
or a kill never leaves a corrupted table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import write_parquet
from unlearnkit.metrics.tow import tow_inputs, tow_mia, tug_of_war

RESULTS = "results.parquet"
KEY_COLUMNS = ["dataset", "model", "forget_kind", "forget_size", "es", "method", "variant", "seed"]
METRIC_COLUMNS = ["forget_acc", "retain_acc", "test_acc", "mia_efficacy", "mia_efficacy_sd", "mia_auc", "tow", "tow_mia",
                  "seconds", "examples_processed", "cost_ratio"]
REF_COLUMNS = ["ref_forget_acc", "ref_retain_acc", "ref_test_acc", "ref_mia_efficacy", "ref_mia_auc", "ref_seconds",
               "retrain_test_acc", "retrain_seconds"]
COLUMNS = KEY_COLUMNS + METRIC_COLUMNS + REF_COLUMNS + ["params"]
# Wall-time columns differ between two runs of the same benchmark; everything else is reproducible.
TIME_COLUMNS = ["seconds", "cost_ratio", "ref_seconds", "retrain_seconds"]
_MODEL_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")


def result_row(
    setup: Mapping[str, Any],
    metrics: Mapping[str, Any],
    reference: Mapping[str, Any],
    seconds: float,
    ref_seconds: float,
    examples_processed: int | None = None,
    retrain: Mapping[str, Any] | None = None,
    retrain_seconds: float | None = None,
) -> dict[str, Any]:
    """One row: ``setup`` holds the key columns, ``metrics``/``reference`` the
    two models' forget_acc, retain_acc, test_acc, mia_efficacy (and, when
    measured, mia_efficacy_sd, mia_auc); ``retrain``/``retrain_seconds`` the
    single-model retrain when ``reference`` is another model (default: it is)."""
    retrain = reference if retrain is None else retrain
    nan = float("nan")
    return {
        **{k: setup[k] for k in KEY_COLUMNS},
        **{k: float(metrics[k]) for k in _MODEL_KEYS},
        "mia_efficacy_sd": float(metrics.get("mia_efficacy_sd", nan)),
        "mia_auc": float(metrics.get("mia_auc", nan)),
        "tow": tug_of_war(tow_inputs(metrics), tow_inputs(reference)),
        "tow_mia": tow_mia(tow_inputs(metrics), tow_inputs(reference)),
        "seconds": float(seconds),
        "examples_processed": None if examples_processed is None else int(examples_processed),
        "cost_ratio": float(seconds) / float(ref_seconds) if ref_seconds else float("nan"),
        **{f"ref_{k}": float(reference[k]) for k in _MODEL_KEYS},
        "ref_mia_auc": float(reference.get("mia_auc", nan)),
        "ref_seconds": float(ref_seconds),
        "retrain_test_acc": float(retrain["test_acc"]),
        "retrain_seconds": float(ref_seconds if retrain_seconds is None else retrain_seconds),
    }


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with :data:`COLUMNS` in order, sorted by the key columns."""
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    df["examples_processed"] = df["examples_processed"].astype("Int64")
    df["seed"] = df["seed"].astype("int64")
    df["forget_size"] = df["forget_size"].astype("int64")
    return df.sort_values(["forget_kind", "method", "variant", "seed"], kind="stable").reset_index(drop=True)


def write_results(directory: str | Path, df: pd.DataFrame) -> Path:
    path = Path(directory) / RESULTS
    write_parquet(path, df)
    return path


def read_results(directory: str | Path) -> pd.DataFrame:
    """Read ``DIR/results.parquet`` (``DIR`` may also be the file itself)."""
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS
    if not path.exists():
        raise UnlearnkitError(f"{path}: no results; run `unlearnkit bench CONFIG --out DIR` first")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise UnlearnkitError(f"{path}: cannot read the results table ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UnlearnkitError(f"{path}: not a bench results table (missing columns {missing})")
    return df
