"""The unlearning entry points.

- :func:`unlearn` is model-first: any ``nn.Module``, data as a DataBundle, tensors
  or torch Datasets, forget indices; nothing is written.
- :func:`unlearn_from_run` does the same for a loaded run directory (its recipe,
  registered architecture and excluded rows), in memory.
- :func:`unlearn_run` then writes the result as a run directory plus ``unlearn.json``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from unlearnkit.data import DataBundle, ForgetSet, as_bundle
from unlearnkit.data.forget import check_trained_on
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, write_json
from unlearnkit.methods.base import METHODS, Method, MethodContext
from unlearnkit.runs import Run, evaluate_splits, excluded_meta, write_run
from unlearnkit.task import Task, as_task
from unlearnkit.training import resolve_device, seed_everything

ForgetLike = ForgetSet | Sequence[int] | np.ndarray | torch.Tensor


@dataclass
class UnlearnOutcome:
    """Result of one unlearning call; ``seconds`` is wall time of the method alone."""

    model: nn.Module
    method: str
    params: dict[str, Any]
    seconds: float
    examples_processed: int
    extra: dict[str, Any] = field(default_factory=dict)
    # Method-specific files for the run directory (e.g. SISA shards): a method puts a
    # callable(run_dir) under MethodOutput.extra["write_files"]; unlearn_run calls it.
    write_files: Callable[[Path], None] | None = None
    # unlearnkit.unlearn(..., reference=...) evaluates the result against the reference
    # (an EvalReport with ToW under .comparisons); None otherwise.
    evaluation: Any = None


def retain_positions(run: Run, forget_pos: np.ndarray) -> np.ndarray:
    """D_r: training rows the original trained on, minus the forget rows."""
    data = run.data
    not_seen = data.positions(run.excluded, what="excluded indices") if len(run.excluded) else np.zeros(0, np.int64)
    return data.complement(np.concatenate([forget_pos, not_seen]))


def as_forget(forget: ForgetLike) -> ForgetSet:
    """A :class:`ForgetSet` from one, or from training indices (list, array or tensor)."""
    if isinstance(forget, ForgetSet):
        return forget
    if isinstance(forget, torch.Tensor):
        forget = forget.cpu().numpy()
    arr = np.asarray(forget)
    if arr.dtype == bool:
        raise UnlearnkitError("forget must be training indices, not a boolean mask; use np.nonzero(mask)[0]")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise UnlearnkitError(f"forget must be integer training indices, got {arr.dtype}")
    return ForgetSet(arr.astype(np.int64).ravel())


def check_requirements(cls: type[Method], task: Task, retain: np.ndarray) -> None:
    """Refuse, in one line, to run ``cls`` when the task or the data lacks what it requires."""
    if cls.needs_retain and len(retain) == 0:
        free = [m for m in METHODS.names() if not METHODS.get(m).needs_retain]
        raise UnlearnkitError(
            f"the forget set covers the whole training set, so '{cls.name or cls.__name__}' (which needs the retain set) "
            f"cannot run; retain-free methods: {', '.join(free)}"
        )
    task.check(cls.requires, f"method '{cls.name or cls.__name__}'")


def check_objective(cls: type[Method], model: nn.Module, data: DataBundle, forget_pos: np.ndarray) -> None:
    """Refuse a method that does not declare the model's training objective (``Method.objectives``)
    and, for a sequence model, a forget set holding an empty sequence (nothing to predict)."""
    objective = getattr(model, "objective", "classify")
    if objective not in cls.objectives:
        able = [m for m in METHODS.names() if objective in METHODS.get(m).objectives]
        raise UnlearnkitError(
            f"method '{cls.name}' does not support {objective} models; methods that do: {', '.join(able)}"
        )
    if objective == "next_token":
        tokens = (data.x_train[torch.as_tensor(forget_pos)] != 0).sum(1).numpy()
        empty = forget_pos[tokens < 2]
        if len(empty):
            raise UnlearnkitError(
                f"forget set: training sequence {int(data.index_train[int(empty[0])])} is empty (fewer than 2 tokens, "
                f"nothing to predict; {len(empty)} such); drop empty sequences from the forget set"
            )


def check_output_width(model: nn.Module, data: DataBundle, device: torch.device) -> None:
    """Refuse a model whose logits are not ``[n, num_classes]`` (one forward pass on two rows)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(data.x_train[:2].to(device))
    model.train(was_training)
    if getattr(model, "objective", "classify") == "next_token":
        return  # a sequence model's outputs are per position, checked by its own loss
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise UnlearnkitError(
            f"the model's output has shape {list(out.shape)} for 2 inputs, but the data has {data.num_classes} "
            f"classes; its last layer must output one logit per class ([n, {data.num_classes}])"
        )


def run_method(
    task: Task,
    data: DataBundle,
    forget_pos: np.ndarray,
    retain: np.ndarray,
    method: str | type[Method],
    params: dict[str, Any] | None,
    *,
    seed: int,
    device: str,
    quiet: bool,
    family: str | None = None,
    kind: str | None = None,
) -> UnlearnOutcome:
    """Check the method's requirements, then run it on a private copy of ``task.model``.

    ``method``: a registered name or a :class:`Method` subclass (registered or not, as
    :func:`unlearnkit.testing.check_method` runs it).
    ``forget_pos`` / ``retain`` are row positions in ``data.x_train``. Never modifies
    ``task.model``. Params: class defaults < preset (dataset, model ``family``, forget-set
    ``kind``; :mod:`unlearnkit.methods.presets`) < ``params``.
    """
    cls = METHODS.get(method) if isinstance(method, str) else method
    method = cls.name or cls.__name__
    check_requirements(cls, task, retain)
    check_objective(cls, task.model, data, forget_pos)
    p = cls.resolve_params(data.spec.get("name"), params, model=family, kind=kind)
    dev = resolve_device(device)
    seed_everything(seed)
    model = copy.deepcopy(task.model).to(dev)
    ctx = MethodContext(
        model=model,
        original=task.model,
        task=task.bound(model),
        data=data,
        forget=forget_pos,
        retain=retain if cls.needs_retain else None,
        seed=seed,
        device=dev,
        quiet=quiet,
    )
    start = time.perf_counter()
    try:
        out = cls().run(ctx, p)
    except UnlearnkitError as e:
        raise UnlearnkitError(f"{method}: {e}") from None
    seconds = time.perf_counter() - start
    out.model.eval()  # stays on the device it ran on: callers go on computing there
    # A step that diverged on the very last batch is not caught by the per-step loss check.
    bad = [n for n, w in out.model.named_parameters() if not torch.isfinite(w).all()]
    if bad:
        raise UnlearnkitError(f"method '{method}' produced non-finite weights ({bad[0]}); stopped, nothing written")
    write_files = out.extra.pop("write_files", None)
    return UnlearnOutcome(
        out.model, method, p.model_dump(), seconds, out.examples_processed, out.extra, write_files
    )


def unlearn(
    model: nn.Module,
    data: Any,
    forget: ForgetLike,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    task: Task | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> UnlearnOutcome:
    """Unlearn the rows ``forget`` of ``data`` from ``model`` with a registered ``method``.

    ``model``: any ``nn.Module`` mapping a batch ``[n, ...]`` to logits ``[n, num_classes]``,
    trained on ``data``'s training rows. ``data``: a DataBundle, tensors ``(x, y, x_test,
    y_test)`` / ``(x, y)``, or torch Datasets ``(train, test)`` / ``train``
    (:func:`unlearnkit.data.as_bundle`). ``forget``: training indices (row numbers of ``x``
    for tensors and Datasets) or a ForgetSet; the retain set is every other training row.
    ``task`` adds what some methods require (``Method.requires``): a head and features
    (found by default), ``build_model`` and ``recipe`` (retrain). Never modifies ``model``;
    the outcome's ``model`` is the unlearned copy, on the device it ran on (``device``).
    """
    bundle = as_bundle(data)
    task = as_task(model, task)
    fs = as_forget(forget)
    forget_pos = fs.check(bundle)
    check_output_width(model, bundle, next(iter(model.parameters())).device)
    return run_method(
        task, bundle, forget_pos, bundle.complement(forget_pos), method, params,
        seed=seed, device=device, quiet=quiet, kind=fs.kind,
    )


def unlearn_from_run(
    run: Run,
    forget: ForgetSet,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> UnlearnOutcome:
    """:func:`unlearn` for a loaded run directory, in memory: the task is
    :meth:`Task.from_run` (registered architecture, recipe, the run itself) and the
    retain set leaves out the rows the run never trained on (``run.excluded``)."""
    forget_pos = forget.check(run.data)
    check_trained_on(forget, run.excluded, f"run {run.path}")
    return run_method(
        Task.from_run(run), run.data, forget_pos, retain_positions(run, forget_pos), method, params,
        seed=seed, device=device, quiet=quiet, family=(run.meta.get("model") or {}).get("name"), kind=forget.kind,
    )


def unlearn_run(
    run: Run,
    forget: ForgetSet,
    method: str,
    out: str | Path,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
    overwrite: bool = False,
) -> Run:
    """:func:`unlearn_from_run`, then write the model as a run directory with ``unlearn.json``.

    The run's ``excluded`` lists what the weights never trained on (for exact
    methods this includes the forget set); ``forgotten`` lists the forget set.
    """
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = unlearn_from_run(run, forget, method, params, seed=seed, device=device, quiet=quiet)
        cls = METHODS.get(method)
        excluded = np.union1d(run.excluded, forget.indices) if cls.exact else run.excluded
        results = evaluate_splits(res.model, run.data)
        results["seconds"] = res.seconds
        info = {
            "method": method,
            "params": res.params,
            "seed": seed,
            "forget_sha256": forget.sha256,
            "forget_size": len(forget),
            "forget_source": forget.source,
            "forget_meta": forget.meta,
            "seconds": res.seconds,
            "examples_processed": res.examples_processed,
            "parent": {"path": str(run.path), "weights_sha256": run.meta.get("weights_sha256")},
            **({"extra": res.extra} if res.extra else {}),
        }
        meta = {
            "kind": "unlearn",
            "model": run.meta["model"],
            "train": run.meta.get("train", {}),
            "excluded": excluded_meta(excluded),
            "forgotten": excluded_meta(forget.indices),
            "results": results,
            "examples_processed": res.examples_processed,
            "unlearn": {k: info[k] for k in ("method", "params", "seed", "forget_sha256")},
        }
        meta = write_run(tmp, res.model, meta, run.data)
        if res.write_files is not None:
            res.write_files(tmp)
        write_json(tmp / "unlearn.json", info)
    return Run(path=out, meta=meta, model=res.model, data=run.data, extra={"unlearn": info})
