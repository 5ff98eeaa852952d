"""The retrained reference: the ``retrain`` method (the run's recipe, fresh weights) on D minus
a forget set. Tuning scores settings against it, RUM's search scores candidates against it, and
the bench's ``retrain`` rows are it; this is the one place that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from unlearnkit.data import ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import read_json
from unlearnkit.methods.api import unlearn_from_run, unlearn_run
from unlearnkit.runs import Run, load_run


@dataclass
class Reference:
    """A model retrained without the forget set, and what retraining it cost."""

    model: nn.Module
    seconds: float  # wall time of the retraining (the stored one when reused from disk)
    examples_processed: int  # training examples seen (epochs x rows)


def retrain_reference(
    run: Run,
    forget: ForgetSet | np.ndarray,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
    out: str | Path | None = None,
) -> Reference:
    """Retrain ``run``'s model on D minus ``run.excluded`` minus ``forget`` (original training indices).

    With ``out``, the reference is a run directory there: reused when it already exists
    (retraining is the costliest step of tuning), else written. A run without a training
    recipe (and no user task that can build a model) is a one-line error.
    """
    if "task" not in run.extra and ("train" not in run.meta or "model" not in run.meta):
        raise UnlearnkitError(f"{run.path}: run.json has no training recipe; cannot retrain a reference")
    fs = forget if isinstance(forget, ForgetSet) else ForgetSet(np.asarray(forget, np.int64))
    if out is not None and (Path(out) / "run.json").exists():
        info = read_json(Path(out) / "unlearn.json")
        return Reference(load_run(out, data=run.data).model, float(info["seconds"]), int(info["examples_processed"]))
    if out is not None:
        ref = unlearn_run(run, fs, "retrain", out, seed=seed, device=device, quiet=quiet)
        info = ref.extra["unlearn"]
        return Reference(ref.model, float(info["seconds"]), int(info["examples_processed"]))
    res = unlearn_from_run(run, fs, "retrain", seed=seed, device=device, quiet=quiet)
    return Reference(res.model, float(res.seconds), int(res.examples_processed))
