"""The public unlearning entry points: :func:`unlearn` (in memory) and
:func:`unlearn_run` (writes a run directory plus ``unlearn.json``)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unlearnkit.data import ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import atomic_dir, write_json
from unlearnkit.methods.base import METHODS, MethodContext
from unlearnkit.models import Classifier
from unlearnkit.runs import Run, evaluate_splits, excluded_meta, write_run
from unlearnkit.training import resolve_device, seed_everything


@dataclass
class UnlearnOutcome:
    """Result of one unlearning call; ``seconds`` is wall time of the method alone."""

    model: Classifier
    method: str
    params: dict[str, Any]
    seconds: float
    examples_processed: int
    extra: dict[str, Any] = field(default_factory=dict)
    # Method-specific files for the run directory (e.g. SISA shards): a method puts a
    # callable(run_dir) under MethodOutput.extra["write_files"]; unlearn_run calls it.
    write_files: Callable[[Path], None] | None = None


def retain_positions(run: Run, forget_pos: np.ndarray) -> np.ndarray:
    """D_r: training rows the original trained on, minus the forget rows."""
    data = run.data
    not_seen = data.positions(run.excluded, what="excluded indices") if len(run.excluded) else np.zeros(0, np.int64)
    return data.complement(np.concatenate([forget_pos, not_seen]))


def unlearn(
    run: Run,
    forget: ForgetSet,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> UnlearnOutcome:
    """Unlearn ``forget`` from ``run``'s model with a registered ``method``.

    Never modifies ``run.model``. ``params`` override the method's defaults
    (class defaults < dataset preset < params).
    """
    cls = METHODS.get(method)
    data = run.data
    forget_pos = forget.check(data)
    retain = retain_positions(run, forget_pos)
    if cls.needs_retain and len(retain) == 0:
        free = [m for m in METHODS.names() if not METHODS.get(m).needs_retain]
        raise UnlearnkitError(
            f"the forget set covers the whole training set, so '{method}' (which needs the retain set) "
            f"cannot run; retain-free methods: {', '.join(free)}"
        )
    p = cls.resolve_params(data.spec.get("name"), params)
    dev = resolve_device(device)
    seed_everything(seed)
    ctx = MethodContext(
        model=copy.deepcopy(run.model).to(dev),
        data=data,
        forget=forget_pos,
        retain=retain if cls.needs_retain else None,
        run=run,
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
    out.model.cpu().eval()
    # A step that diverged on the very last batch is not caught by the per-step loss check.
    bad = [n for n, w in out.model.named_parameters() if not torch.isfinite(w).all()]
    if bad:
        raise UnlearnkitError(f"method '{method}' produced non-finite weights ({bad[0]}); stopped, nothing written")
    write_files = out.extra.pop("write_files", None)
    return UnlearnOutcome(
        out.model, method, p.model_dump(), seconds, out.examples_processed, out.extra, write_files
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
    """:func:`unlearn`, then write the model as a run directory with ``unlearn.json``.

    The run's ``excluded`` lists what the weights never trained on (for exact
    methods this includes the forget set); ``forgotten`` lists the forget set.
    """
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = unlearn(run, forget, method, params, seed=seed, device=device, quiet=quiet)
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
