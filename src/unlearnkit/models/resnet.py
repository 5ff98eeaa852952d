"""CIFAR-style ResNet-18/50 (3x3 stem, no max-pool) with a width multiplier.

``width`` is the channel count of the first stage (64 in the standard
network); ``--width 16`` makes a ResNet-18 that trains on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnkit.models.base import MODELS, Classifier, require_image


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
        )
        self.shortcut = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


def _avoid_onednn() -> None:
    """Route CPU convolutions around oneDNN for the rest of the process.

    torch 2.13's oneDNN CPU kernels intermittently corrupt the heap in this
    network's backward pass (reproduced on 8x8 inputs with one thread, outside
    unlearnkit; a per-forward ``mkldnn.flags`` context was not enough). The
    native kernels are slower but correct; GPUs (cuDNN) are unaffected.
    """
    torch.backends.mkldnn.enabled = False


class ResNet(Classifier):
    def __init__(self, block, layers: list[int], in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        _avoid_onednn()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages, cin = [], width
        for i, n in enumerate(layers):
            planes = width * 2**i
            for j in range(n):
                stages.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))


@MODELS.register("resnet18")
def build_resnet18(input_shape, num_classes, width: int = 64) -> ResNet:
    c, _, _ = require_image("resnet18", input_shape)
    return ResNet(BasicBlock, [2, 2, 2, 2], c, num_classes, int(width))


@MODELS.register("resnet50")
def build_resnet50(input_shape, num_classes, width: int = 64) -> ResNet:
    c, _, _ = require_image("resnet50", input_shape)
    return ResNet(Bottleneck, [3, 4, 6, 3], c, num_classes, int(width))
