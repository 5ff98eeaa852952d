"""The model contract and registry.

Every model is a :class:`Classifier`: ``embed(x) -> [n, d]`` penultimate
features and ``head``, an ``nn.Linear(d, num_classes)``; ``forward`` is
``head(embed(x))``. The difficulty scores, the Entanglement Score and IMU rely
on exactly these two.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.registry import Registry


class Classifier(nn.Module):
    """Base class: subclasses define ``embed`` and set ``self.head``."""

    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


ModelBuilder = Callable[..., Classifier]
MODELS: Registry[ModelBuilder] = Registry("model")


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> Classifier:
    """Build a registered model for inputs of ``input_shape`` (without the batch dim)."""
    builder = MODELS.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return builder(tuple(input_shape), int(num_classes), **kwargs)
    except TypeError as e:
        raise UnlearnkitError(f"model '{name}': bad arguments {sorted(kwargs)} ({e})") from None


def require_image(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise UnlearnkitError(f"model '{name}' needs image inputs [C, H, W], got shape {list(input_shape)}")
    return input_shape  # type: ignore[return-value]
