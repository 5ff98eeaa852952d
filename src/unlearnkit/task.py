"""The contract between the toolkit and a model: :class:`Task`.

A plain ``nn.Module`` whose ``forward(x)`` returns logits ``[n, num_classes]`` is
enough for most methods. Some parts need more, and a :class:`Task` supplies it:

- ``features(x) -> [n, d]``, the penultimate features (the input of the head),
  and ``head``, the ``nn.Linear`` that maps them to logits (IMU, the Entanglement
  Score, the centroid scores). Default: the model's own ``embed``/``head`` when it
  is a built-in :class:`~unlearnkit.models.Classifier`, else the last ``nn.Linear``
  and a forward hook on it;
- ``build_model()`` (a fresh, untrained model) and ``recipe`` (the
  :class:`~unlearnkit.training.TrainConfig` it was trained with), for anything that
  retrains: ``retrain``, memorization;
- ``run``, the run directory the model came from, for methods that read files
  there (SISA's shard checkpoints).

Methods declare which of these they need (``Method.requires``); a missing one is a
one-line error naming it and how to provide it (:func:`missing_requirement`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn

from unlearnkit.data import DataBundle

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import find_head, head_inputs
from unlearnkit.training import TrainConfig

if TYPE_CHECKING:
    from unlearnkit.runs import Run

FeaturesFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]

# What a method may require, and how a user provides each one (for the error message).
REQUIREMENTS: dict[str, str] = {
    "retain": "a forget set smaller than the training set (the retain set D_r = training rows minus the forget rows)",
    "features": "Task(model, features=lambda model, x: ...) returning [n, d] penultimate features, "
                "or a model with an nn.Linear head",
    "head": "Task(model, head='name of the nn.Linear that outputs the logits'), or a model with an nn.Linear",
    "build_model": "Task(model, build_model=lambda: MyNet()) returning a fresh, untrained model",
    "recipe": "Task(model, recipe=TrainConfig(...)), the recipe the model was trained with",
    "run": "a SISA run directory (made by train_sisa or `unlearnkit train-sisa`), unlearned with unlearn_run",
}


class Task:
    """What the toolkit knows about a model beyond ``forward``.

    ``model`` returns logits ``[n, num_classes]``. ``head`` is the ``nn.Linear``
    producing them, given as the module or its qualified name in ``model`` (None:
    found by :func:`find_head`); ``features(model, x) -> [n, d]`` overrides the
    penultimate features (None: the head's input). ``build_model`` returns a fresh,
    untrained model of the same architecture; ``recipe`` is how it was trained.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        build_model: Callable[[], nn.Module] | None = None,
        recipe: TrainConfig | None = None,
        head: str | nn.Linear | None = None,
        features: FeaturesFn | None = None,
        run: "Run | None" = None,
    ) -> None:
        if isinstance(head, nn.Module):
            names = [n for n, m in model.named_modules() if m is head]
            if not names:
                raise UnlearnkitError("Task: the head module given is not part of the model")
            head = names[0]
        if head is not None and not isinstance(dict(model.named_modules()).get(head), nn.Linear):
            raise UnlearnkitError(f"Task: head '{head}' is not an nn.Linear inside {type(model).__name__}")
        self.model = model
        self.build_model = build_model
        self.recipe = recipe
        self.head_name = head
        self.features_fn = features
        self.run = run

    @classmethod
    def from_run(cls, run: "Run") -> "Task":
        """The task of a run directory: its model, a fresh model of the same registered
        architecture (``build_model``), its training recipe and the run itself."""
        from unlearnkit.runs import new_model

        own = run.extra.get("task")
        if isinstance(own, Task):  # an in-memory run (memory_run) carries the user's task
            return own.bound(run.model)
        meta, data = run.meta, run.data
        spec = meta.get("model")
        build = None
        if spec and data is not None:
            def build() -> nn.Module:
                return new_model(spec["name"], data, spec.get("kwargs", {}))
        recipe = TrainConfig(**meta["train"]) if meta.get("train") else None
        return cls(run.model, build_model=build, recipe=recipe, run=run)

    def bound(self, model: nn.Module) -> "Task":
        """The same task for ``model``, a copy of ``self.model`` (same architecture): its head
        is looked up by name in the copy, so methods may change the copy freely."""
        return Task(model, build_model=self.build_model, recipe=self.recipe, head=self.head_name,
                    features=self.features_fn, run=self.run)

    @property
    def head(self) -> nn.Linear:
        """The ``nn.Linear`` producing the logits (default: :func:`find_head`)."""
        if self.head_name is None:
            return find_head(self.model)[1]
        return dict(self.model.named_modules())[self.head_name]  # checked in `of`

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[n, d]`` of a batch ``x`` (the input of :attr:`head`), in the
        model's current mode; call under ``torch.no_grad()`` when no gradient is needed."""
        if self.features_fn is not None:
            return self.features_fn(self.model, x)
        return head_inputs(self.model, self.head, x)

    def check(self, requires: frozenset[str], what: str) -> None:
        """Raise a one-line error naming the first requirement in ``requires`` this task cannot
        meet and how to provide it ("retain" concerns the data: the caller checks it)."""
        for need in sorted(requires):
            if need in ("features", "head"):
                if need == "features" and self.features_fn is not None:
                    continue
                try:
                    self.head  # noqa: B018 - raises, naming why, when there is no head
                except UnlearnkitError as e:
                    raise UnlearnkitError(f"{what} requires {need}: {e}") from None
            elif need != "retain" and getattr(self, need) is None:
                raise missing_requirement(what, need)


def memory_run(task: Task, data: DataBundle, excluded: np.ndarray | None = None) -> "Run":
    """A :class:`~unlearnkit.runs.Run` over an in-memory model, for the run-level machinery
    (scores, RUM, evaluation) behind the model-first calls. Nothing is on disk: ``path`` is
    a placeholder naming the model; the model trained on every training row except
    ``excluded`` (original training indices; a retrained reference excludes the forget
    set); :meth:`Task.from_run` returns ``task`` (bound to whatever model the run holds)."""
    from unlearnkit.runs import Run, excluded_meta

    meta: dict = {
        "kind": "memory",
        "excluded": excluded_meta(np.zeros(0, np.int64) if excluded is None else excluded),
        "dataset": data.spec,
        **({"train": task.recipe.model_dump()} if task.recipe is not None else {}),
    }
    path = Path(f"<in-memory {type(task.model).__name__}>")
    return Run(path=path, meta=meta, model=task.model, data=data, extra={"task": task})


def as_task(model: nn.Module, task: Task | None) -> Task:
    """``task`` (checked to wrap ``model``), or the default task of ``model``."""
    if task is None:
        return Task(model)
    if task.model is not model:
        raise UnlearnkitError("task.model is not the model passed; build the task with Task(model, ...)")
    return task


def missing_requirement(what: str, need: str) -> UnlearnkitError:
    """The one-line error for ``what`` (e.g. "method 'retrain'") lacking requirement ``need``."""
    return UnlearnkitError(f"{what} requires {need}, which the task lacks; provide {REQUIREMENTS[need]}")
