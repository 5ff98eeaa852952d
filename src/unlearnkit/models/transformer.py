"""Small transformers over token ids ``[n, L]`` (int64, 0 = padding, right-padded).

- ``transformer``: a causal language model. ``embed(x) -> [n, L, d]`` (the final
  hidden state at every position), ``head = nn.Linear(d, vocab_size)``, so
  ``forward(x) -> [n, L, vocab_size]`` next-token logits. It declares
  ``objective = "next_token"``: the one training loop then trains it on
  next-token cross-entropy (:func:`unlearnkit.training.per_example_loss`).
- ``text_transformer``: an encoder classifier (bidirectional attention that
  ignores padding, mean pooling over real tokens, a ReLU layer):
  ``embed(x) -> [n, d]``, ``head = nn.Linear(d, num_classes)``.

Both are built from the same pre-norm encoder stack, sized to train on a CPU in
seconds (width 32-64, 2 layers). Inputs are checked on every forward: a
sequence longer than the context, or a token id outside the vocabulary (data
with a different vocabulary than the model was built for), is a one-line error.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.base import MODELS, Classifier


class TokenEncoder(nn.Module):
    """Token + learned position embeddings, ``depth`` pre-norm encoder layers, a final LayerNorm."""

    def __init__(self, vocab_size: int, context: int, width: int, depth: int, heads: int, causal: bool) -> None:
        super().__init__()
        if width % heads:
            raise UnlearnkitError(f"transformer: width {width} is not divisible by heads {heads}")
        self.vocab_size, self.context, self.causal = vocab_size, context, causal
        self.tokens = nn.Embedding(vocab_size, width, padding_idx=0)
        self.positions = nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def check(self, x: torch.Tensor) -> None:
        """One-line errors for inputs this encoder cannot read."""
        if x.dim() != 2 or x.is_floating_point():
            raise UnlearnkitError(f"transformer: needs int64 token ids [n, L], got {x.dtype} {list(x.shape)}")
        if x.shape[1] > self.context:
            raise UnlearnkitError(
                f"transformer: sequences of length {x.shape[1]} are longer than the model's context of {self.context}"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise UnlearnkitError(
                f"transformer: token id {int(x.max())} is outside the model's vocabulary of {self.vocab_size} ids "
                "(vocabulary mismatch between the model and the data)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[n, L, width]``."""
        self.check(x)
        length = x.shape[1]
        h = self.tokens(x) + self.positions.weight[:length]
        if self.causal:
            mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=h.dtype)
            h = self.layers(h, mask=mask, is_causal=True)
        else:
            pad = x == 0
            pad[:, 0] &= ~pad.all(1)  # an all-padding row attends to its first position instead of nothing
            h = self.layers(h, src_key_padding_mask=pad)
        return self.norm(h)


class CausalTransformer(Classifier):
    """Causal language model; ``forward(x) -> [n, L, vocab_size]`` next-token logits."""

    objective: ClassVar[str] = "next_token"

    def __init__(self, vocab_size: int, context: int, width: int = 32, depth: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.encoder = TokenEncoder(vocab_size, context, width, depth, heads, causal=True)
        self.head = nn.Linear(width, vocab_size)

    @property
    def vocab_size(self) -> int:
        return self.encoder.vocab_size

    @property
    def context(self) -> int:
        return self.encoder.context

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[n, L, width]``: position ``t`` predicts token ``t + 1``."""
        return self.encoder(x)


class TextTransformer(Classifier):
    """Encoder classifier over token ids; ``embed(x) -> [n, width]``."""

    def __init__(
        self, vocab_size: int, context: int, num_classes: int, width: int = 64, depth: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        self.encoder = TokenEncoder(vocab_size, context, width, depth, heads, causal=False)
        self.hidden = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        mask = (x != 0).unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.hidden(pooled)


def _token_shape(name: str, input_shape: tuple[int, ...], vocab_size: int | None) -> int:
    if vocab_size is None or len(input_shape) != 1:
        raise UnlearnkitError(f"model '{name}' needs a token dataset (int64 ids [n, L]) with a vocabulary")
    return int(input_shape[0])


@MODELS.register("transformer")
def build_transformer(
    input_shape, num_classes, width: int = 32, depth: int = 2, heads: int = 2,
    context: int | None = None, vocab_size: int | None = None,
) -> CausalTransformer:
    """Causal LM; ``context`` defaults to the data's sequence length, ``vocab_size`` comes from the data."""
    length = _token_shape("transformer", input_shape, vocab_size)
    context = length if context is None else int(context)
    if length > context:
        raise UnlearnkitError(
            f"transformer: sequences of length {length} are longer than the model's context of {context}"
        )
    return CausalTransformer(int(vocab_size), context, int(width), int(depth), int(heads))


@MODELS.register("text_transformer")
def build_text_transformer(
    input_shape, num_classes, width: int = 64, depth: int = 2, heads: int = 4, vocab_size: int | None = None,
) -> TextTransformer:
    """Encoder classifier; context = the data's (padded) sequence length."""
    length = _token_shape("text_transformer", input_shape, vocab_size)
    return TextTransformer(int(vocab_size), length, int(num_classes), int(width), int(depth), int(heads))
