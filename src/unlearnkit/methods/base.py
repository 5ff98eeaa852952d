"""The Method contract and registry.

A method is a small class registered with ``@METHODS.register(name)``:

- ``needs_retain``: whether it reads the retain set D_r (retain-free methods get ``None``);
- ``Params``: a pydantic model of its hyperparameters with defaults (``extra="forbid"``,
  ranges as ``Field`` constraints, so ``lr <= 0`` or ``alpha`` outside [0, 1] are refused);
- ``run(ctx, params) -> MethodOutput``: unlearn ``ctx.model`` (already a private copy)
  and return the new model and the work done.

Per-dataset tuned defaults live in ``unlearnkit/presets/<dataset>.json``
(``{method: {param: value}}``) and sit between the class defaults and the
user's overrides. :func:`unlearnkit.methods.unlearn` is the public entry point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from unlearnkit.data import DataBundle
from unlearnkit.errors import UnlearnkitError
from unlearnkit.models import Classifier
from unlearnkit.registry import Registry


class Params(BaseModel):
    """Base of every method's hyperparameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class MethodContext:
    """Everything a method may read.

    ``model`` is a private copy of the original (safe to modify in place).
    ``forget`` / ``retain`` are row positions into ``data.x_train`` (int64);
    ``retain`` is None for retain-free methods. ``run`` is the original
    :class:`unlearnkit.runs.Run` (its ``meta["train"]`` is the training recipe,
    its ``path`` the run directory, e.g. SISA checkpoints).
    """

    model: Classifier
    data: DataBundle
    forget: np.ndarray
    retain: np.ndarray | None
    run: Any
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    quiet: bool = True


@dataclass
class MethodOutput:
    """The unlearned model, the number of examples processed (forward+backward
    passes over single examples) and anything the method wants recorded
    (e.g. influence weights, SISA shard bookkeeping)."""

    model: Classifier
    examples_processed: int
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class of unlearning methods (see module docstring)."""

    name: ClassVar[str] = ""
    needs_retain: ClassVar[bool] = True
    exact: ClassVar[bool] = False  # retrain and SISA are exact; the rest approximate
    Params: ClassVar[type[Params]] = Params
    # The small grid `unlearnkit tune` searches by default ({param: [values]}; empty = nothing to tune).
    tune_grid: ClassVar[dict[str, list[Any]]] = {}

    def run(self, ctx: MethodContext, params: Params) -> MethodOutput:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def resolve_params(cls, dataset: str | None = None, overrides: dict[str, Any] | None = None) -> Params:
        """Class defaults < preset for ``dataset`` < ``overrides``, validated."""
        values = {**preset_for(dataset, cls.name), **(overrides or {})}
        valid = ", ".join(cls.Params.model_fields) or "none"
        try:
            return cls.Params(**values)
        except ValidationError as e:
            parts = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            raise UnlearnkitError(
                f"method '{cls.name}': invalid hyperparameters: {'; '.join(parts)} (valid keys: {valid})"
            ) from None


METHODS: Registry[type[Method]] = Registry("method")


def preset_for(dataset: str | None, method: str) -> dict[str, Any]:
    """Tuned defaults shipped for ``dataset`` (by its base name), or {}.

    Top-level keys starting with ``_`` (e.g. ``_provenance``) are metadata, not methods.
    """
    if not dataset:
        return {}
    base = dataset.split(":")[0]
    try:
        text = resources.files("unlearnkit").joinpath("presets", f"{base}.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    presets = {k: v for k, v in json.loads(text).items() if not k.startswith("_")}
    return dict(presets.get(method, {}))
