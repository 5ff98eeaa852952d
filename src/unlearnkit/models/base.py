"""The model contract and registry.

Every built-in model is a :class:`Classifier`: ``embed(x) -> [n, d]`` penultimate
features and ``head``, an ``nn.Linear(d, num_classes)``; ``forward`` is
``head(embed(x))``. Any other ``nn.Module`` works too: :func:`find_head` takes
its last ``nn.Linear`` as the head and :func:`head_inputs` reads the head's
input with a forward hook (what :class:`unlearnkit.task.Task` does by default).
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import torch
from torch import nn

from unlearnkit.errors import ConfigError, UnlearnkitError
from unlearnkit.registry import Registry


class Classifier(nn.Module):
    """Base class: subclasses define ``embed`` and set ``self.head``."""

    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """``(qualified name, module)`` of ``model``'s head: ``model.head`` when it is an
    ``nn.Linear``, else the last ``nn.Linear`` registered in ``model``.

    Raises a one-line error when the model has no ``nn.Linear`` at all.
    """
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return "head", head
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UnlearnkitError(
            f"model {type(model).__name__} has no nn.Linear layer, so its head and penultimate features "
            "cannot be found; pass Task(model, head=..., features=...) naming them"
        )
    return linears[-1]


def head_inputs(model: nn.Module, head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The input of ``head`` when ``model(x)`` runs: penultimate features ``[n, d]``.

    Uses ``model.embed`` when the model is a :class:`Classifier` and ``head`` is its
    own head (no extra work); otherwise a forward hook on ``head`` captures its input.
    """
    if isinstance(model, Classifier) and head is model.head:
        return model.embed(x)
    seen: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    if not seen:
        raise UnlearnkitError(
            f"model {type(model).__name__}: its head (the last nn.Linear) was not called by forward; "
            "pass Task(model, head=...) naming the layer that outputs the logits"
        )
    h = seen[-1]
    if h.dim() != 2 or h.shape[0] != x.shape[0]:
        raise UnlearnkitError(
            f"model {type(model).__name__}: the head's input has shape {list(h.shape)}, not [n, d]; "
            "pass Task(model, features=...) returning [n, d] penultimate features"
        )
    return h


def require_classifier(model: nn.Module, what: str) -> None:
    """One-line refusal of a sequence model (``objective == "next_token"``) by a part of the
    toolkit (``what``) defined for classifiers only."""
    if getattr(model, "objective", "classify") != "classify":
        raise UnlearnkitError(
            f"{what} are defined for classifiers; {type(model).__name__} is a sequence model "
            "(next-token objective): use unlearnkit.difficulty.sequence and unlearnkit.metrics.sequence "
            "(docs/language.md)"
        )


ModelBuilder = Callable[..., Classifier]
# Keyword arguments that are layer sizes or counts: positive integers (checked before building).
SIZE_ARGS = frozenset({"width", "depth", "heads", "shards", "context", "vocab_size"})
MODELS: Registry[ModelBuilder] = Registry("model", entry_points="unlearnkit.models")


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> Classifier:
    """Build a registered model for inputs of ``input_shape`` (without the batch dim)."""
    builder = MODELS.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for key in SIZE_ARGS & set(kwargs):
        v = kwargs[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ConfigError(f"model '{name}': {key} must be a positive integer, got {v!r}")
    try:
        model = builder(tuple(input_shape), int(num_classes), **kwargs)
    except TypeError as e:
        raise ConfigError(f"model '{name}': bad arguments {sorted(kwargs)} ({e})") from None
    except (ValueError, RuntimeError) as e:  # torch refusing a size (e.g. heads not dividing width)
        raise ConfigError(f"model '{name}' with {kwargs}: {str(e).splitlines()[0]}") from None
    # A zero-sized layer trains without error and predicts at chance: refuse it here.
    empty = next((n for n, w in model.named_parameters() if w.numel() == 0), None)
    if empty is not None:
        raise ConfigError(f"model '{name}' with {kwargs}: layer {empty} has no weights; give positive sizes")
    return model


def require_image(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise UnlearnkitError(f"model '{name}' needs image inputs [C, H, W], got shape {list(input_shape)}")
    return input_shape  # type: ignore[return-value]
