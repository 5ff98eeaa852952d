"""The Method contract and registry.

A method is a small class registered with ``@METHODS.register(name)`` (the
registry sets its ``name``):

- ``requires``: what it needs beyond the model and the forget rows, from
  :data:`unlearnkit.task.REQUIREMENTS` (``retain``, ``features``, ``head``,
  ``build_model``, ``recipe``, ``run``); checked before it runs, each missing one a
  one-line error saying how to provide it. ``needs_retain`` is derived from it
  (retain-free methods get ``retain=None``);
- ``Params``: a pydantic model of its hyperparameters with defaults (``extra="forbid"``,
  ranges as ``Field`` constraints, so ``lr <= 0`` or ``alpha`` outside [0, 1] are refused);
- ``run(ctx, params) -> MethodOutput``: unlearn ``ctx.model`` (already a private copy)
  and return the new model and the work done.

Per-dataset tuned defaults live in ``unlearnkit/presets/<dataset>.json``
(``{method: {param: value}}``) and sit between the class defaults and the
user's overrides. :func:`unlearnkit.methods.unlearn` is the public entry point;
:func:`unlearnkit.testing.check_method` checks a third-party method against this contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from unlearnkit.data import DataBundle
from unlearnkit.errors import UnlearnkitError, validation_message
from unlearnkit.registry import Registry
from unlearnkit.task import REQUIREMENTS, Task


class Params(BaseModel):
    """Base of every method's hyperparameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class MethodContext:
    """Everything a method may read.

    ``model`` is a private copy of the original (safe to modify in place);
    ``original`` is the original itself (read only, e.g. SCRUB's teacher).
    ``task`` is bound to ``model`` (its ``head``/``features`` are the copy's) and
    carries what the method declared in ``requires``. ``forget`` / ``retain`` are
    row positions into ``data.x_train`` (int64); ``retain`` is None for retain-free
    methods.
    """

    model: nn.Module
    original: nn.Module
    task: Task
    data: DataBundle
    forget: np.ndarray
    retain: np.ndarray | None
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    quiet: bool = True


@dataclass
class MethodOutput:
    """The unlearned model, the number of examples processed (forward+backward
    passes over single examples) and anything the method wants recorded
    (e.g. influence weights, SISA shard bookkeeping)."""

    model: nn.Module
    examples_processed: int
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class of unlearning methods (see module docstring)."""

    name: ClassVar[str] = ""  # set by METHODS.register
    requires: ClassVar[frozenset[str]] = frozenset()
    needs_retain: ClassVar[bool] = False  # derived: "retain" in requires
    exact: ClassVar[bool] = False  # retrain and SISA are exact; the rest approximate
    # Training objectives of the models it can unlearn (a model's ``objective``, default "classify");
    # methods that also work on sequence models add "next_token".
    objectives: ClassVar[frozenset[str]] = frozenset({"classify"})
    Params: ClassVar[type[Params]] = Params
    # The small grid `unlearnkit tune` searches by default ({param: [values]}; empty = nothing to tune).
    tune_grid: ClassVar[dict[str, list[Any]]] = {}
    # A method that is another method's ablation reads that method's presets (e.g. imu_uniform
    # runs at imu's hyperparameters, so the two differ in their weighting alone); it is not tuned.
    presets_of: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "needs_retain" in vars(cls):
            raise TypeError(f"{cls.__name__}: declare requires = frozenset({{'retain'}}) (or frozenset()), not needs_retain")
        unknown = sorted(set(cls.requires) - set(REQUIREMENTS))
        if unknown:
            raise TypeError(f"{cls.__name__}.requires: unknown {unknown}; choose from {sorted(REQUIREMENTS)}")
        cls.requires = frozenset(cls.requires)
        cls.needs_retain = "retain" in cls.requires

    def run(self, ctx: MethodContext, params: Params) -> MethodOutput:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def resolve_params(cls, dataset: str | None = None, overrides: dict[str, Any] | None = None, *,
                       model: str | None = None, kind: str | None = None) -> Params:
        """Class defaults < preset for ``dataset`` / ``model`` family / forget-set ``kind``
        (:mod:`unlearnkit.methods.presets`) < ``overrides``, validated."""
        values = {**preset_for(dataset, cls.name, model, kind), **(overrides or {})}
        valid = ", ".join(cls.Params.model_fields) or "none"
        try:
            return cls.Params(**values)
        except ValidationError as e:
            raise UnlearnkitError(
                f"method '{cls.name}': invalid hyperparameters: {validation_message(e)} (valid keys: {valid})"
            ) from None


METHODS: Registry[type[Method]] = Registry("method", entry_points="unlearnkit.methods")


def preset_for(dataset: str | None, method: str, model: str | None = None, kind: str | None = None) -> dict[str, Any]:
    """Tuned defaults shipped for ``dataset`` (by its base name), model family and forget-set
    kind, through the presets' fallback chain; {} when none applies."""
    from unlearnkit.methods.presets import lookup

    return lookup(dataset, method, model, kind, methods=METHODS)[0]
