"""A small 4-layer convolutional network (two conv blocks, then pooling)."""

from __future__ import annotations

import torch
from torch import nn

from unlearnkit.models.base import MODELS, Classifier, require_image


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class SmallCNN(Classifier):
    prefers_channels_last = True  # read by training.train

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width),
            _block(width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@MODELS.register("cnn")
def build_cnn(input_shape, num_classes, width: int = 32) -> SmallCNN:
    """Four 3x3 conv layers with ``width`` and ``2*width`` channels; embedding size ``2*width``."""
    c, _, _ = require_image("cnn", input_shape)
    return SmallCNN(c, num_classes, width=int(width))
