"""A small convolutional network: two blocks of two 3x3 conv + BatchNorm + ReLU, max-pooling,
then average-pooling to a 2x2 grid.

BatchNorm is what makes one epoch enough: at the training defaults (SGD 0.05, batch 128,
cosine) one epoch on Fashion-MNIST reached 87.5% test accuracy with it against 83.6% with
GroupNorm and 70.9% for GroupNorm with pooling to 1x1 (one seed each, measured side by side).
Pooling to 2x2 rather than 1x1 keeps where in the image a feature is, which the clothing
classes need. BatchNorm acts per channel, so a stacked ensemble of these cnns (grouped
convolutions) still trains each member exactly as the loop does.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import MODELS, Classifier, require_image

POOLED = 2  # side of the grid the last feature map is averaged to


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class SmallCNN(Classifier):
    prefers_channels_last = True  # read by training.train

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width),
            _block(width, 2 * width),
            nn.AdaptiveAvgPool2d(POOLED),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * POOLED * POOLED, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@MODELS.register("cnn")
def build_cnn(input_shape, num_classes, width: int = 32) -> SmallCNN:
    """Four 3x3 conv layers (``width``, ``2*width`` channels) with BatchNorm; embedding size
    ``8*width`` (the ``2*width`` channels on a 2x2 grid). Inputs of at least 4x4 pixels."""
    c, h, w = require_image("cnn", input_shape)
    if min(h, w) < 4:
        raise UnlearnkitError(f"model 'cnn' needs images of at least 4x4 pixels, got {h}x{w}")
    return SmallCNN(c, num_classes, width=int(width))
