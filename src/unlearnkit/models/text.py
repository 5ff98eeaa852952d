"""Text classifier: mean-pooled token embeddings (an embedding bag) and a hidden layer.

Inputs are int64 token ids ``[n, L]`` with 0 as padding.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import MODELS, Classifier


class EmbeddingBagClassifier(Classifier):
    def __init__(self, vocab_size: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.hidden = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x != 0).unsqueeze(-1).float()
        summed = (self.embedding(x) * mask).sum(1)
        pooled = summed / mask.sum(1).clamp_min(1.0)
        return self.hidden(pooled)


@MODELS.register("text")
def build_text(input_shape, num_classes, width: int = 64, vocab_size: int | None = None) -> EmbeddingBagClassifier:
    """``vocab_size`` comes from the dataset's vocabulary (passed by the training code)."""
    if vocab_size is None or len(input_shape) != 1:
        raise UnlearnkitError("model 'text' needs a text dataset (token ids) with a vocabulary")
    return EmbeddingBagClassifier(int(vocab_size), num_classes, width=int(width))
