"""The run directory: every model the toolkit produces is one.

A run directory holds ``model.safetensors`` (weights, never pickle),
``run.json`` (how to rebuild model and data, hyperparameters, excluded
indices, results, package versions, the weights' sha256), optionally
``dynamics.parquet`` (per-example training dynamics), ``data_state.json``
(what was fitted on the training split, e.g. a vocabulary) and whatever the
producing command adds (``unlearn.json``, ``scores.parquet``, ...).
Original models, retrained references, unlearned models, SISA ensembles and
RUM results are all runs, so ``evaluate`` takes any of them.
"""

from __future__ import annotations

import errno
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unlearnkit._version import __version__
from unlearnkit.data import DATASETS, DataBundle, load_dataset
from unlearnkit.data.base import check_bundle_matches
from unlearnkit.errors import DataError, RunError, UnlearnkitError, validation_message
from unlearnkit.io import (
    DirLock, atomic_dir, atomic_write, read_json, read_parquet, sha256_file, sha256_indices, write_json, write_parquet,
)
from unlearnkit.models import Classifier, build_model
from unlearnkit.training import TrainConfig, resolve_device, seed_everything, split_accuracies, train

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "run.json"


class _Record(BaseModel):
    # Strict: a string where a number belongs is an error, not a conversion; keys
    # added by other commands (``unlearn``, ``rum``, ``sisa``, ...) are kept.
    model_config = ConfigDict(strict=True, extra="allow")


class DatasetSpec(_Record):
    """How to load the run's data again (``load_dataset(name, data_root, val_fraction, split_seed, **options)``)."""

    name: str = Field(min_length=1)
    val_fraction: float = Field(ge=0, lt=1)
    split_seed: int
    options: dict[str, Any] = {}
    data_root: str | None = None


class ModelSpec(_Record):
    """The registered model and its keyword arguments."""

    name: str = Field(min_length=1)
    kwargs: dict[str, Any] = {}


class IndexSet(_Record):
    """A set of original training indices: ``count``, ``sha256`` of the sorted list, ``indices``."""

    count: int = Field(ge=0)
    sha256: str
    indices: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> "IndexSet":
        if len(self.indices) != self.count or any(i < 0 for i in self.indices):
            raise ValueError("count must equal the number of indices, all >= 0")
        if sha256_indices(self.indices) != self.sha256:
            raise ValueError("sha256 does not match the indices")
        return self


class RunMeta(_Record):
    """The typed contents of ``run.json`` (field names are the file's keys).

    Validated whenever a run is loaded (:func:`load_meta`), so a hand-edited or
    truncated file is a one-line :class:`unlearnkit.errors.RunError` naming the
    field, never a KeyError deep inside a command. ``train`` is the recipe
    (:class:`unlearnkit.training.TrainConfig`), ``excluded`` what the weights
    never trained on, ``forgotten`` the forget set of an unlearned run.
    """

    format_version: int
    created: str | None = None
    versions: dict[str, str] = {}
    kind: str
    model: ModelSpec
    train: TrainConfig | None = None
    excluded: IndexSet | None = None
    forgotten: IndexSet | None = None
    results: dict[str, float | None] = {}
    examples_processed: int = Field(0, ge=0)
    device: str | None = None
    dataset: DatasetSpec
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @classmethod
    def check(cls, meta: Any, where: str | Path) -> "RunMeta":
        """Validate a parsed run.json; any problem is a one-line RunError naming the first bad field."""
        if not isinstance(meta, dict):
            raise RunError(f"{where}: run.json must hold a JSON object, got a JSON {_json_kind(meta)}")
        try:
            return cls.model_validate(meta)
        except ValidationError as e:
            problem = validation_message(e, whole="run.json", first_only=True)
            raise RunError(f"{where}/{META}: {problem}; re-create the run") from None


def _json_kind(obj: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(obj), "null")


def versions() -> dict[str, str]:
    return {
        "unlearnkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def model_kwargs_for(data: DataBundle, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Model arguments that depend on the data (the text model's vocabulary size)."""
    out = {k: v for k, v in kwargs.items() if v is not None}
    if data.is_text:
        have = len(data.state["vocab"]) + 2
        if int(out.setdefault("vocab_size", have)) != have:
            raise UnlearnkitError(
                f"vocabulary mismatch between run and data: the model has {out['vocab_size']} token ids, "
                f"the data '{data.name}' has {have}; load the data the run was trained on"
            )
    return out


def new_model(model_name: str, data: DataBundle, kwargs: dict[str, Any] | None = None) -> Classifier:
    """Build a fresh model for ``data`` (call :func:`seed_everything` first for reproducibility)."""
    return build_model(model_name, data.input_shape, data.num_classes, **model_kwargs_for(data, kwargs or {}))


@dataclass
class Run:
    """A loaded run directory: its metadata, model and (optionally) data."""

    path: Path
    meta: dict[str, Any]
    model: Classifier
    data: DataBundle | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def excluded(self) -> np.ndarray:
        """Original training indices the model never trained on (sorted)."""
        return np.asarray(self.meta.get("excluded", {}).get("indices", []), dtype=np.int64)

    @property
    def dynamics_path(self) -> Path:
        return self.path / "dynamics.parquet"

    def dynamics(self) -> pd.DataFrame:
        if not self.dynamics_path.exists():
            raise RunError(
                f"{self.path}: no dynamics.parquet; it is recorded by `unlearnkit train`"
            )
        return read_parquet(self.dynamics_path)


RUN_LOCK = "run.lock"
RUN_LOCK_WAIT = 120.0  # seconds: holders only merge files, so a longer wait means a stuck process


def run_lock(path: str | Path, wait: float = RUN_LOCK_WAIT) -> DirLock:
    """The lock of a run directory, held by commands that add to an existing run (``score``
    merges its columns into ``scores.parquet``) for their read-modify-write; a second
    command waits up to ``wait`` seconds (saying so on stderr), then gets a one-line
    :class:`BusyError`."""
    return DirLock(path, RUN_LOCK, what="command", wait=wait, notify=lambda msg: print(msg, file=sys.stderr))


def write_run(
    out: Path,
    model: nn.Module,
    meta: dict[str, Any],
    data: DataBundle,
    dynamics: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Write weights, run.json (and dynamics, data state) into the directory ``out``.

    ``out`` is normally the temporary directory of :func:`unlearnkit.io.atomic_dir`.
    Fills in format version, versions, dataset spec and the weights' sha256.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_weights(out / WEIGHTS, state)
    meta = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        **meta,
        "dataset": data.spec,
        "weights_sha256": sha256_file(out / WEIGHTS),
    }
    if data.state:
        write_json(out / "data_state.json", data.state)
    if dynamics is not None:
        write_parquet(out / "dynamics.parquet", dynamics)
    write_json(out / META, meta)
    return meta


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write a state dict as safetensors, atomically (a full disk is a one-line OutputError)."""

    def write(tmp: str) -> None:
        try:
            save_file(state, tmp)
        except SafetensorError as e:  # safetensors reports I/O failures (disk full) as its own type
            code = re.search(r"os error (\d+)", str(e))
            raise OSError(int(code[1]) if code else errno.EIO, str(e).splitlines()[0]) from None

    atomic_write(path, write)


def excluded_meta(indices: np.ndarray) -> dict[str, Any]:
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    return {"count": int(len(idx)), "sha256": sha256_indices(idx), "indices": idx.tolist()}


def _read_checked(path: Path) -> tuple[dict[str, Any], RunMeta]:
    """(run.json as written, its validated RunMeta): existence, format version, every field's type."""
    path = Path(path)
    if not (path / META).is_file():
        raise RunError(f"{path}: not a run directory (no {META})")
    try:
        meta = read_json(path / META)
    except UnlearnkitError as e:
        raise RunError(str(e)) from None
    fv = meta.get("format_version") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and fv != FORMAT_VERSION:
        raise RunError(
            f"{path}: run format version {fv} is incompatible with this unlearnkit "
            f"({__version__}, format {FORMAT_VERSION}); re-create the run"
        )
    return meta, RunMeta.check(meta, path)


def read_run_meta(path: str | Path) -> RunMeta:
    """A run directory's validated run.json; any problem is a one-line :class:`RunError`."""
    return _read_checked(Path(path))[1]


def load_meta(path: str | Path) -> dict[str, Any]:
    """A run directory's run.json as written (a dict), after validating it as a :class:`RunMeta`."""
    return _read_checked(Path(path))[0]


def load_data_for(meta: dict[str, Any], path: Path, data_root: str | None = None) -> DataBundle:
    spec = meta["dataset"]
    state = None
    if (path / "data_state.json").exists():
        state = read_json(path / "data_state.json")
        if not isinstance(state, dict):
            raise RunError(f"{path / 'data_state.json'}: must hold a JSON object")
    return load_dataset(
        spec["name"],
        data_root=data_root or spec.get("data_root"),
        val_fraction=spec["val_fraction"],
        split_seed=spec["split_seed"],
        state=state,
        **spec.get("options", {}),
    )


def load_weights(path: Path, meta: dict[str, Any], model: nn.Module) -> None:
    """Load ``model.safetensors`` into ``model`` after checking its sha256."""
    wpath = path / WEIGHTS
    if not wpath.exists():
        raise RunError(f"{path}: missing {WEIGHTS}")
    if sha256_file(wpath) != meta.get("weights_sha256"):
        raise RunError(f"{wpath}: sha256 mismatch; the checkpoint is corrupted or truncated")
    try:
        state = load_file(str(wpath))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError) as e:
        raise RunError(f"{wpath}: cannot load weights ({str(e).splitlines()[0]})") from None


def load_run(
    path: str | Path,
    data_root: str | None = None,
    device: str = "auto",
    data: DataBundle | None = None,
) -> Run:
    """Load a run directory: model (weights checked by sha256) and its data.

    Pass ``data`` to reuse an already loaded bundle (it must be the run's dataset).
    """
    path = Path(path)
    meta = load_meta(path)
    spec = meta.get("dataset") or {}
    if data is None:
        if spec.get("in_memory") and spec.get("name") not in DATASETS:
            raise RunError(
                f"{path}: trained on in-memory data '{spec.get('name')}' (not a registered dataset); "
                "pass the same bundle: load_run(path, data=bundle)"
            )
        data = load_data_for(meta, path, data_root)
    check_bundle_matches(spec, data, str(path))
    model = new_model(meta["model"]["name"], data, meta["model"].get("kwargs", {}))
    load_weights(path, meta, model)
    model.to(resolve_device(device)).eval()
    return Run(path=path, meta=meta, model=model, data=data)


def evaluate_splits(model: nn.Module, data: DataBundle, train_positions: np.ndarray | None = None,
                    train_accuracy: float | None = None) -> dict[str, float]:
    """train/val/test accuracy in [0, 1] (train over ``train_positions`` if given), keyed as
    run.json's ``results`` records them (``train_acc``, ``val_acc``, ``test_acc``).
    ``train_accuracy``: the train accuracy when it is measured already (by :func:`train`),
    which saves a forward pass over the training set."""
    if train_accuracy is None:
        pos = np.arange(data.n_train) if train_positions is None else train_positions
        acc = split_accuracies(model, data, {"train": pos})
    else:
        acc = {"train": train_accuracy, **split_accuracies(model, data)}
    return {f"{k}_acc": v for k, v in acc.items()}


def train_run(
    data: DataBundle,
    model_name: str,
    cfg: TrainConfig,
    out: str | Path,
    *,
    model_kwargs: dict[str, Any] | None = None,
    exclude: np.ndarray | None = None,
    device: str = "auto",
    quiet: bool = True,
    overwrite: bool = False,
    kind: str = "train",
    extra_meta: dict[str, Any] | None = None,
) -> Run:
    """Train a model on the training split minus ``exclude`` and write it as a run.

    ``exclude`` holds original training indices (validated against the split).
    The directory appears only when everything is written (Ctrl-C leaves none).
    """
    exclude = np.zeros(0, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    excl_pos = data.positions(exclude, what="excluded indices")
    keep = data.complement(excl_pos)
    if len(keep) == 0:
        raise DataError("nothing left to train on: every training example is excluded")
    dev = resolve_device(device)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        seed_everything(cfg.seed)
        model = new_model(model_name, data, model_kwargs)
        classes = np.unique(data.y_train[keep].numpy())
        if len(classes) < 2 and getattr(model, "objective", "classify") == "classify":
            # One class trains "perfectly" and leaves nothing to unlearn (random_label, salun need 2+).
            raise DataError(
                f"{data.name}: the examples to train on all have class {int(classes[0])}; "
                "a classifier needs at least 2 classes"
            )
        result = train(
            model, data.x_train[keep], data.y_train[keep], cfg,
            index=data.index_train[keep].numpy(), device=dev, quiet=quiet, desc=f"train {model_name}",
        )
        model.cpu()
        results = evaluate_splits(model, data, keep, train_accuracy=result.train_accuracy)
        results["seconds"] = result.seconds
        meta = {
            "kind": kind,
            "model": {"name": model_name, "kwargs": model_kwargs_for(data, model_kwargs or {})},
            "train": cfg.model_dump(),
            "excluded": excluded_meta(exclude),
            "results": results,
            "examples_processed": result.examples_processed,
            "device": str(dev),
            **(extra_meta or {}),
        }
        meta = write_run(tmp, model, meta, data, result.dynamics)
    return Run(path=out, meta=meta, model=model, data=data)
