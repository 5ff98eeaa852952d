"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import MODELS, Classifier


class MLP(Classifier):
    def __init__(self, in_features: int, num_classes: int, width: int = 256, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@MODELS.register("mlp")
def build_mlp(input_shape, num_classes, width: int = 256, depth: int = 1) -> MLP:
    """``width`` hidden units in each of ``depth`` ReLU layers."""
    if not input_shape or any(s <= 0 for s in input_shape):
        raise UnlearnkitError(f"model 'mlp' needs float inputs, got shape {list(input_shape)}")
    return MLP(math.prod(input_shape), num_classes, width=int(width), depth=int(depth))
