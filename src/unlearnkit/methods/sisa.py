"""SISA: exact unlearning by design (docs/imu_sisa.md).

:func:`train_sisa` splits the training rows into S disjoint shards and each
shard into R slices, trains one model per shard on the cumulative slices
1..r with a checkpoint after every slice, and writes the ensemble as a run
(``kind: "sisa"``, model ``sisa_ensemble``). The ``sisa`` method forgets by
retraining only the affected shards, each from the checkpoint taken before
the earliest slice holding a forgotten index.

Run directory layout (on top of ``model.safetensors`` + ``run.json``)::

    shards.json                          per shard: the ordered indices of each slice,
                                         ``seen`` (every index the current weights saw),
                                         the sha256 of every checkpoint; recipe + seed
    shards/shard_XX/slice_YY.safetensors the shard's weights after slice YY

Exactness: the assignment is a seeded permutation of *all* training rows cut
into shards and slices, and excluded/forgotten indices are then dropped, so
removing indices never moves the others. Every slice stage is trained with
a seed derived from (seed, shard, slice), and every stage restarts the
optimiser and schedule, so retraining a shard from a checkpoint gives
bit-for-bit the weights that a fresh ``train_sisa`` without those indices
gives (same device and torch build). The ``sisa`` method therefore ignores
the unlearning seed.

Epochs: each slice stage runs ``ceil(2 E / (R + 1))`` epochs over the
cumulative data (E = ``cfg.epochs``), as in the SISA paper, so that a shard
costs about E passes over its data in total.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from unlearnkit.data import DataBundle
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, read_json, sha256_file, write_json
from unlearnkit.methods.base import METHODS, Method, MethodContext, MethodOutput, Params
from unlearnkit.models import MODELS, Classifier
from unlearnkit.models.ensemble import AGGREGATIONS, SisaEnsemble
from unlearnkit.runs import Run, evaluate_splits, excluded_meta, model_kwargs_for, new_model, write_run
from unlearnkit.progress import progress_bar
from unlearnkit.training import TrainConfig, resolve_device, seed_everything, train

SHARDS_JSON = "shards.json"
SHARDS_DIR = "shards"
STATE_FORMAT = 1
ENSEMBLE = "sisa_ensemble"


def slice_epochs(epochs: int, slices: int) -> int:
    """Epochs per slice stage, ``ceil(2 E / (R + 1))``: the R cumulative stages then
    cost about ``E`` passes over the shard, as in the SISA paper."""
    return max(1, math.ceil(2 * epochs / (slices + 1)))


def stage_seed(seed: int, shard: int, stage: int) -> int:
    """Seed of one slice stage (``stage = -1``: the shard model's initialisation)."""
    return int(np.random.SeedSequence([seed, shard, stage + 1]).generate_state(1)[0])


def assign_slices(index_train: np.ndarray, shards: int, slices: int, seed: int) -> list[list[np.ndarray]]:
    """Cut a seeded permutation of all training indices into ``shards`` x ``slices``.

    Returns ``[shard][slice] -> int64 array`` of original indices, in training
    order. Dropping indices afterwards never moves the others.
    """
    n = len(index_train)
    if shards < 1 or slices < 1:
        raise UnlearnkitError(f"SISA needs at least 1 shard and 1 slice, got {shards} shards and {slices} slices")
    if shards * slices > n:
        raise UnlearnkitError(f"{shards} shards x {slices} slices is more than the {n} training examples")
    perm = np.asarray(index_train, dtype=np.int64)[np.random.default_rng(seed).permutation(n)]
    return [list(np.array_split(part, slices)) for part in np.array_split(perm, shards)]


@dataclass
class SisaState:
    """The contents of ``shards.json``: recipe, slice assignment and checkpoint hashes."""

    base: str
    base_kwargs: dict[str, Any]
    aggregation: str
    seed: int
    train: dict[str, Any]
    slices_per_shard: int
    epochs_per_slice: int
    slice_indices: list[list[np.ndarray]]  # [shard][slice] ordered original indices
    checkpoints: list[list[str]]  # [shard][slice] sha256 of slice_YY.safetensors

    @property
    def num_shards(self) -> int:
        return len(self.slice_indices)

    def seen(self, shard: int) -> np.ndarray:
        """Sorted original indices the shard's current weights have trained on."""
        parts = self.slice_indices[shard]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "base": self.base,
            "base_kwargs": self.base_kwargs,
            "aggregation": self.aggregation,
            "seed": self.seed,
            "train": self.train,
            "num_shards": self.num_shards,
            "slices_per_shard": self.slices_per_shard,
            "epochs_per_slice": self.epochs_per_slice,
            "shards": [
                {
                    "shard": k,
                    "slices": [s.tolist() for s in self.slice_indices[k]],
                    "seen": self.seen(k).tolist(),
                    "checkpoints": self.checkpoints[k],
                }
                for k in range(self.num_shards)
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> "SisaState":
        if obj.get("format") != STATE_FORMAT:
            raise UnlearnkitError(f"{where}: unsupported shards.json format {obj.get('format')}")
        try:
            return cls(
                base=obj["base"],
                base_kwargs=dict(obj["base_kwargs"]),
                aggregation=obj["aggregation"],
                seed=int(obj["seed"]),
                train=dict(obj["train"]),
                slices_per_shard=int(obj["slices_per_shard"]),
                epochs_per_slice=int(obj["epochs_per_slice"]),
                slice_indices=[[np.asarray(s, dtype=np.int64) for s in sh["slices"]] for sh in obj["shards"]],
                checkpoints=[list(sh["checkpoints"]) for sh in obj["shards"]],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UnlearnkitError(f"{where}: malformed shards.json ({e!r})") from None

    def without(self, indices: np.ndarray) -> "SisaState":
        """A copy with ``indices`` dropped from every slice (the order of the rest kept)."""
        drop = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            slice_indices=[[s[~np.isin(s, drop)] for s in sh] for sh in self.slice_indices],
            checkpoints=[list(c) for c in self.checkpoints],
        )


def checkpoint_path(root: Path, shard: int, slice_: int) -> Path:
    return Path(root) / SHARDS_DIR / f"shard_{shard:02d}" / f"slice_{slice_:02d}.safetensors"


def _initial_model(data: DataBundle, state: SisaState, shard: int, start: int, root: Path | None) -> Classifier:
    """Shard model before stage ``start``: seeded fresh init, or the checkpoint after ``start - 1``."""
    seed_everything(stage_seed(state.seed, shard, -1))
    model = new_model(state.base, data, state.base_kwargs)
    if start > 0:
        path = checkpoint_path(root, shard, start - 1)
        if not path.exists():
            raise UnlearnkitError(f"{path}: SISA checkpoint missing")
        if sha256_file(path) != state.checkpoints[shard][start - 1]:
            raise UnlearnkitError(f"{path}: sha256 mismatch; the SISA checkpoint is corrupted")
        try:
            model.load_state_dict(load_file(str(path)))
        except (SafetensorError, RuntimeError) as e:
            raise UnlearnkitError(f"{path}: cannot load weights ({str(e).splitlines()[0]})") from None
    return model


def _train_stages(
    data: DataBundle, state: SisaState, shard: int, start: int, model: Classifier, device
) -> tuple[list[dict], int]:
    """Train ``model`` on cumulative slices ``start..R-1`` of ``shard``.

    Returns the weights after each stage (CPU tensors) and examples processed.
    A stage whose cumulative data is empty keeps the previous weights.
    """
    cfg = TrainConfig(**state.train)
    states, processed = [], 0
    for r in range(start, state.slices_per_shard):
        idx = np.concatenate(state.slice_indices[shard][: r + 1])
        if len(idx):
            s = stage_seed(state.seed, shard, r)
            seed_everything(s)  # for models with dropout; batches use cfg.seed
            pos = data.positions(idx, what=f"SISA shard {shard} indices")
            res = train(
                model, data.x_train[pos], data.y_train[pos],
                cfg.model_copy(update={"epochs": state.epochs_per_slice, "seed": s}),
                index=idx, device=device, record_dynamics=False, quiet=True, measure_fit=False,
            )
            processed += res.examples_processed
        states.append({k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()})
    return states, processed


def _save_checkpoints(root: Path, shard: int, start: int, states: list[dict]) -> list[str]:
    """Write ``slice_{start + i}`` checkpoints; returns their sha256."""
    hashes = []
    for i, st in enumerate(states):
        path = checkpoint_path(root, shard, start + i)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(st, str(path))
        hashes.append(sha256_file(path))
    return hashes


def train_sisa(
    data: DataBundle,
    model_name: str,
    shards: int,
    slices: int,
    cfg: TrainConfig,
    out: str | Path,
    *,
    model_kwargs: dict[str, Any] | None = None,
    aggregation: str = "vote",
    exclude: np.ndarray | None = None,
    device: str = "auto",
    quiet: bool = True,
    overwrite: bool = False,
) -> Run:
    """Train a SISA ensemble of ``shards`` ``model_name`` models and write it as a run.

    ``exclude``: original training indices left out (they are in no shard).
    ``cfg.epochs`` is the per-shard budget E (see :func:`slice_epochs`);
    ``cfg.seed`` seeds the assignment and every stage. Writes ``out`` atomically.
    """
    MODELS.get(model_name)
    if model_name == ENSEMBLE:
        raise UnlearnkitError("train-sisa: the base model cannot itself be a SISA ensemble")
    if aggregation not in AGGREGATIONS:
        raise UnlearnkitError(f"unknown SISA aggregation '{aggregation}'; choose vote or mean")
    base_kwargs = model_kwargs_for(data, model_kwargs or {})
    clash = {"base", "shards", "aggregation"} & set(base_kwargs)
    if clash:
        raise UnlearnkitError(f"train-sisa: model arguments {sorted(clash)} are reserved by the ensemble")
    exclude = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    keep = data.complement(data.positions(exclude, what="excluded indices"))
    state = SisaState(
        base=model_name, base_kwargs=base_kwargs, aggregation=aggregation, seed=cfg.seed,
        train=cfg.model_dump(), slices_per_shard=slices, epochs_per_slice=slice_epochs(cfg.epochs, slices),
        slice_indices=assign_slices(data.index_train.numpy(), shards, slices, cfg.seed), checkpoints=[],
    ).without(exclude)
    dev = resolve_device(device)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        members, processed = [], 0
        start = time.perf_counter()
        with progress_bar(quiet) as bar:
            task = bar.add_task(f"train-sisa {model_name}", total=shards, info="")
            for k in range(shards):
                model = _initial_model(data, state, k, 0, None)
                states, n = _train_stages(data, state, k, 0, model, dev)
                state.checkpoints.append(_save_checkpoints(tmp, k, 0, states))
                members.append(model)  # stays on the device: the ensemble is evaluated there
                processed += n
                bar.update(task, advance=1, info=f"shard {k + 1}/{shards}")
        seconds = time.perf_counter() - start
        ensemble = SisaEnsemble(members, aggregation).eval()
        results = evaluate_splits(ensemble, data, keep)
        results["seconds"] = seconds
        meta = {
            "kind": "sisa",
            "model": {
                "name": ENSEMBLE,
                "kwargs": {"base": model_name, "shards": shards, "aggregation": aggregation, **base_kwargs},
            },
            "train": cfg.model_dump(),
            "excluded": excluded_meta(exclude),
            "results": results,
            "examples_processed": processed,
            "device": str(dev),
            "sisa": {"shards": shards, "slices": slices, "epochs_per_slice": state.epochs_per_slice},
        }
        write_json(tmp / SHARDS_JSON, state.to_json())
        meta = write_run(tmp, ensemble, meta, data)
    return Run(path=out, meta=meta, model=ensemble, data=data)


def is_sisa_run(run: Run) -> bool:
    """A run trained by :func:`train_sisa`, or unlearned from one by the ``sisa`` method."""
    meta = run.meta
    return meta.get("kind") == "sisa" or (
        meta.get("kind") == "unlearn" and meta.get("unlearn", {}).get("method") == "sisa"
    )


def load_sisa_state(run: Run) -> SisaState:
    """Read and check a SISA run's ``shards.json``."""
    path = Path(run.path)
    if not is_sisa_run(run):
        raise UnlearnkitError(f"run {path} was not trained with SISA; use `unlearnkit train-sisa`")
    if not (path / SHARDS_JSON).exists():
        raise UnlearnkitError(f"run {path}: {SHARDS_JSON} is missing, so its shards cannot be retrained")
    return SisaState.from_json(read_json(path / SHARDS_JSON), str(path / SHARDS_JSON))


def earliest_slices(state: SisaState, indices: np.ndarray) -> dict[int, int]:
    """``{shard: earliest slice holding one of indices}`` for the affected shards.

    Raises if an index is in no shard (excluded from training or already forgotten).
    """
    indices = np.asarray(indices, dtype=np.int64)
    found = np.zeros(len(indices), dtype=bool)
    plan: dict[int, int] = {}
    for k, parts in enumerate(state.slice_indices):
        for r, part in enumerate(parts):
            hit = np.isin(indices, part)
            if hit.any():
                found |= hit
                plan.setdefault(k, r)
    if not found.all():
        missing = indices[~found][:5].tolist()
        raise UnlearnkitError(
            f"forget indices {missing} are in no shard of this SISA run (excluded from training or already forgotten)"
        )
    return dict(sorted(plan.items()))


@METHODS.register("sisa")
class Sisa(Method):
    """Retrain only the shards holding forgotten examples, from the checkpoint before
    the earliest affected slice. Needs a run from ``unlearnkit train-sisa``."""

    # The shards' remaining data is the retain set; the shard checkpoints and their recipe
    # live in the SISA run directory, so a plain model cannot be unlearned with SISA.
    requires = frozenset({"retain", "run"})
    exact = True

    class Params(Params):
        """SISA has no hyperparameters: the recipe is the one recorded in ``shards.json``."""

    def run(self, ctx: MethodContext, params: Params) -> MethodOutput:
        run = ctx.task.run
        state = load_sisa_state(run)
        forget_idx = ctx.data.index_train[ctx.forget].numpy()
        plan = earliest_slices(state, forget_idx)
        new_state = state.without(forget_idx)
        new_ckpts: dict[int, list[dict]] = {}
        processed = 0
        with progress_bar(ctx.quiet) as bar:
            task = bar.add_task("sisa: retrain shards", total=len(plan), info="")
            for k, r0 in plan.items():
                model = _initial_model(ctx.data, state, k, r0, run.path)
                new_ckpts[k], n = _train_stages(ctx.data, new_state, k, r0, model, ctx.device)
                ctx.model.members[k].load_state_dict(new_ckpts[k][-1])
                processed += n
                bar.update(task, advance=1, info=f"shard {k} from slice {r0}")

        def write_files(out: Path) -> None:
            """Copy the parent's checkpoints, replace the retrained ones, write shards.json."""
            shutil.copytree(Path(run.path) / SHARDS_DIR, Path(out) / SHARDS_DIR)
            for k, states in new_ckpts.items():
                new_state.checkpoints[k][plan[k]:] = _save_checkpoints(out, k, plan[k], states)
            write_json(Path(out) / SHARDS_JSON, new_state.to_json())

        extra = {
            "retrained_shards": list(plan),
            "restart_slice": {str(k): r for k, r in plan.items()},
            "shards": state.num_shards,
            "write_files": write_files,
        }
        return MethodOutput(ctx.model, processed, extra)
