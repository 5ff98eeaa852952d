"""Text models: the transformer encoder classifier beside the embedding bag, and a small
rotten-tomatoes bench end to end (the data is obtained by `make test` as `data fetch` does)."""

from __future__ import annotations

import pytest
import torch

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models import build_model
from unlearnkit.task import Task
from unlearnkit.training import TrainConfig, accuracy, seed_everything, train


def toy_tokens(n: int = 200, length: int = 10, vocab: int = 30, seed: int = 0):
    """Label 1 iff token 5 appears; right-padded rows of random length."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(6, vocab, (n, length), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, length // 2, (n,), generator=g)
    x[y == 1, pos[y == 1]] = 5
    lengths = torch.randint(length // 2 + 1, length + 1, (n,), generator=g)
    x[torch.arange(length)[None] >= lengths[:, None]] = 0
    return x, y


@pytest.mark.parametrize("name", ["text", "text_transformer"])
def test_text_models_expose_features_and_head_and_learn(name):
    x, y = toy_tokens()
    seed_everything(0)
    model = build_model(name, (10,), 2, vocab_size=30, width=16)
    task = Task(model)
    feats = task.features(x[:7])
    assert feats.shape == (7, 16) and task.head is model.head
    assert torch.allclose(task.head(feats), model(x[:7]), atol=1e-6)
    train(model, x, y, TrainConfig(epochs=15, lr=1e-2, optimizer="adamw", weight_decay=0.0, batch_size=32),
          record_dynamics=False)
    assert accuracy(model, x, y) > 0.9


def test_encoder_ignores_padding_and_survives_empty_rows():
    x, _ = toy_tokens(n=8)
    seed_everything(0)
    model = build_model("text_transformer", (14,), 2, vocab_size=30, width=16).eval()
    padded = torch.cat([x, torch.zeros(8, 4, dtype=torch.int64)], 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded), atol=1e-5)
        out = model(torch.zeros(2, 10, dtype=torch.int64))
    assert torch.isfinite(out).all()
    with pytest.raises(UnlearnkitError, match="longer than the model's context of 14"):
        model(torch.ones(2, 20, dtype=torch.int64))
    with pytest.raises(UnlearnkitError, match="vocabulary mismatch"):
        model(torch.full((2, 10), 30, dtype=torch.int64))


TEXT_BENCH = {
    "name": "tiny text",
    "dataset": {"name": "rotten-tomatoes", "options": {"subset": 300, "max_len": 24}},
    "model": {"name": "text_transformer", "width": 16},
    "training": {"epochs": 8, "lr": 0.01, "optimizer": "adamw", "weight_decay": 0.0, "batch_size": 32},
    "seeds": [0],
    "forget_sets": [{"kind": "random", "size": 20}, {"kind": "memorization", "level": "high", "size": 20}],
    "memorization": {"k": 4, "training": {"epochs": 3, "lr": 0.01, "optimizer": "adamw", "weight_decay": 0.0,
                                          "batch_size": 32}},
    "scores": ["confidence", "loss"],
    "methods": {"finetune": {"epochs": 1}, "imu": {}},
    "metrics": {"mia_max_per_side": 50},
}


def test_text_bench_end_to_end(tmp_path):
    from unlearnkit.data import get_dataset
    from unlearnkit.experiments import read_results, run_bench, validate_config

    if get_dataset("rotten-tomatoes").locate(None) is None:
        pytest.fail("rotten-tomatoes is missing: `make test` fetches it (unlearnkit data fetch rotten-tomatoes)")
    outcome = run_bench(validate_config(TEXT_BENCH), tmp_path / "bench")
    assert not outcome.failures, outcome.failures
    df = read_results(tmp_path / "bench")
    assert set(df["method"]) == {"original", "finetune", "imu"}
    assert set(df["forget_kind"]) == {"random", "memorization-high"}
    assert df["test_acc"].between(0, 1).all() and df["tow"].between(0, 1).all()
    assert (df.loc[df.method == "original", "retain_acc"] > 0.7).all()  # the original fits its training rows
