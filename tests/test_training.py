import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit import TrainConfig, UnlearnkitError, load_run, train_run
from unlearnkit.training import augment_batch, make_config


def test_same_seed_same_weights(digits, tmp):
    cfg = TrainConfig(epochs=2, seed=3)
    a = train_run(digits, "mlp", cfg, tmp / "a", model_kwargs={"width": 32})
    b = train_run(digits, "mlp", cfg, tmp / "b", model_kwargs={"width": 32})
    c = train_run(digits, "mlp", TrainConfig(epochs=2, seed=4), tmp / "c", model_kwargs={"width": 32})
    assert a.meta["weights_sha256"] == b.meta["weights_sha256"]
    assert a.meta["weights_sha256"] != c.meta["weights_sha256"]


def test_run_directory_contents(digits_run):
    p = digits_run.path
    assert {"model.safetensors", "run.json", "dynamics.parquet"} <= {f.name for f in p.iterdir()}
    r = digits_run.meta["results"]
    assert r["test_acc"] > 0.85 and 0 <= r["train_acc"] <= 1
    dyn = pd.read_parquet(p / "dynamics.parquet")
    assert list(dyn.columns) == ["index", "epoch", "p_true", "correct", "loss"]
    assert len(dyn) == 15 * digits_run.data.n_train
    assert set(dyn["index"]) == set(digits_run.data.index_train.tolist())
    # Later epochs fit better than the first.
    by_epoch = dyn.groupby("epoch")["p_true"].mean()
    assert by_epoch.iloc[-1] > by_epoch.iloc[0]


def test_load_run_roundtrip_and_sha(digits_run, tmp):
    run = load_run(digits_run.path)
    x = digits_run.data.x_test[:20]
    assert torch.allclose(run.model(x), digits_run.model(x))
    # Corrupt a copy of the checkpoint: loading must refuse.
    import shutil

    bad = tmp / "bad"
    shutil.copytree(digits_run.path, bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(UnlearnkitError, match="sha256"):
        load_run(bad)


def test_exclude_trains_without_those_indices(digits, tmp):
    excl = digits.index_train[:50].numpy()
    run = train_run(digits, "mlp", TrainConfig(epochs=1), tmp / "e", exclude=excl)
    dyn = run.dynamics()
    assert not set(excl.tolist()) & set(dyn["index"].tolist())
    assert run.meta["excluded"]["count"] == 50
    assert np.array_equal(run.excluded, np.sort(excl))


def test_exclude_validation_index_refused(digits, tmp):
    with pytest.raises(UnlearnkitError, match="validation split"):
        train_run(digits, "mlp", TrainConfig(epochs=1), tmp / "v", exclude=digits.index_val[:2].numpy())
    assert not (tmp / "v").exists()


def test_bad_hyperparameters():
    with pytest.raises(UnlearnkitError, match="lr"):
        make_config(lr=0)


def test_augment_shapes_and_determinism():
    x = torch.rand(6, 3, 8, 8)
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    # Crop+flip keeps each image's values (up to the zero padding).
    assert (a.abs().sum() <= x.abs().sum() + 1e-5)
