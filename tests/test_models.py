"""Every registered model: output shape, ``embed`` shape, ``head`` type, determinism, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnkit import UnlearnkitError
from unlearnkit.models import MODELS, Classifier, build_model
from unlearnkit.training import seed_everything

# (model, input shape, kwargs, expected embedding size)
CASES = [
    ("mlp", (1, 8, 8), {"width": 32}, 32),
    ("mlp", (30,), {"width": 16, "depth": 2}, 16),
    ("cnn", (1, 28, 28), {"width": 8}, 32),
    ("cnn", (3, 32, 32), {"width": 4}, 16),
    ("resnet18", (3, 16, 16), {"width": 8}, 64),
    ("resnet18", (1, 12, 12), {"width": 8}, 64),
    ("resnet50", (3, 16, 16), {"width": 4}, 128),
    ("text", (12,), {"width": 16, "vocab_size": 50}, 16),
]


def _inputs(shape: tuple[int, ...], n: int, kwargs: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if "vocab_size" in kwargs:
        x = torch.randint(0, kwargs["vocab_size"], (n, *shape), generator=g)
        x[:, -3:] = 0  # padding
        return x
    return torch.rand(n, *shape, generator=g)


@pytest.mark.parametrize("name,shape,kwargs,dim", CASES, ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}" for c in CASES])
def test_shapes_embed_and_head(name, shape, kwargs, dim):
    model = build_model(name, shape, 7, **kwargs)
    assert isinstance(model, Classifier) and isinstance(model.head, nn.Linear)
    assert model.head.in_features == dim and model.head.out_features == 7
    model.eval()
    x = _inputs(shape, 3, kwargs)
    with torch.no_grad():
        z, logits = model.embed(x), model(x)
    assert z.shape == (3, dim) and logits.shape == (3, 7)
    assert torch.allclose(logits, model.head(z), atol=1e-5)  # forward is head(embed(x))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name,shape,kwargs,dim", CASES[::2])
def test_same_seed_same_init(name, shape, kwargs, dim):
    seed_everything(5)
    a = build_model(name, shape, 3, **kwargs).state_dict()
    seed_everything(5)
    b = build_model(name, shape, 3, **kwargs).state_dict()
    seed_everything(6)
    c = build_model(name, shape, 3, **kwargs).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)


def test_text_ignores_padding():
    model = build_model("text", (6,), 2, width=8, vocab_size=20).eval()
    x = torch.tensor([[3, 4, 5, 0, 0, 0]])
    shorter = torch.tensor([[3, 4, 5, 0]])
    with torch.no_grad():
        assert torch.allclose(model.embed(x), model.embed(shorter))


def test_width_scales_resnet():
    small = sum(p.numel() for p in build_model("resnet18", (3, 32, 32), 10, width=4).parameters())
    big = sum(p.numel() for p in build_model("resnet18", (3, 32, 32), 10, width=8).parameters())
    assert 3.5 < big / small < 4.1  # conv weights scale with width^2


@pytest.mark.parametrize(
    "name,shape,kwargs,match",
    [
        ("cnn", (30,), {}, "needs image inputs"),
        ("resnet50", (30,), {}, "needs image inputs"),
        ("text", (12,), {}, "needs a text dataset"),
        ("mlp", (8,), {"depthh": 2}, "bad arguments"),
        ("vit", (8,), {}, "unknown model 'vit'; choose from: .*mlp"),
    ],
)
def test_bad_model_requests(name, shape, kwargs, match):
    with pytest.raises(UnlearnkitError, match=match):
        build_model(name, shape, 2, **kwargs)


def test_registry_has_every_model():
    assert {"mlp", "cnn", "resnet18", "resnet50", "text"} <= set(MODELS.names())


def test_cnn_trains_on_a_batch_of_one_row():
    """A last partial batch of one (or a one-example forget set) has no batch variance after
    pooling; the cnn's hidden BatchNorm then uses its running statistics instead of failing."""
    from unlearnkit.models.cnn import RowNorm

    seed_everything(0)
    model = build_model("cnn", (1, 8, 8), 3, width=4).train()
    norm = next(m for m in model.modules() if isinstance(m, RowNorm))
    before = norm.running_mean.clone()
    x = torch.rand(1, 1, 8, 8)
    model(x).sum().backward()
    assert torch.equal(norm.running_mean, before) and norm.weight.grad is not None
    model(torch.rand(5, 1, 8, 8))
    assert not torch.equal(norm.running_mean, before)  # larger batches still update them
