import json

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit import TrainConfig, UnlearnkitError, load_run, train_run
from unlearnkit.runs import new_model
from unlearnkit.training import augment_batch, make_config, seed_everything


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


def test_train_accuracy_and_until_fit(digits):
    from unlearnkit.training import accuracy, train

    x, y = digits.x_train[:300], digits.y_train[:300]
    seed_everything(0)
    model = new_model("mlp", digits, {"width": 32})
    cfg = TrainConfig(epochs=60, lr=0.1, batch_size=32, weight_decay=0.0, schedule="constant", until_fit=1.0)
    r = train(model, x, y, cfg)
    assert r.epochs_run < 60 and r.train_accuracy == 1.0 == accuracy(model, x, y)
    assert r.examples_processed == r.epochs_run * 300 and r.dynamics["epoch"].max() == r.epochs_run - 1
    seed_everything(0)
    capped = train(new_model("mlp", digits, {"width": 32}), x, y, cfg.model_copy(update={"epochs": 1}))
    assert capped.epochs_run == 1 and capped.train_accuracy == accuracy(capped.model, x, y) < 1.0


def test_cli_train_warns_when_the_model_does_not_fit(cli, tmp):
    code, out, err = cli("train", "--epochs", "1", "--lr", "0.01", "--width", "8", "--out", tmp / "r", "-q")
    assert code == 0 and "warning: the train accuracy is 0." in err and "--weight-decay 0" in err
    code, _, err = cli("train", "--epochs", "40", "--until-fit", "0.9", "--weight-decay", "0", "--lr", "0.1",
                       "--width", "32", "--fit-threshold", "0.9", "--out", tmp / "f", "-q")
    assert code == 0 and "warning" not in err
    meta = json.loads((tmp / "f" / "run.json").read_text())
    assert meta["train"]["until_fit"] == 0.9 and meta["results"]["train_acc"] >= 0.9
    for flags, msg in [(["--until-fit", "1.2"], "until_fit"), (["--until-fit", "0"], "until_fit"),
                       (["--epochs", "0"], "epochs"), (["--fit-threshold", "0"], "fit threshold")]:
        code, _, err = cli("train", *flags, "--out", tmp / "x", "-q")
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err


def test_cnn_predictions_run_channels_last_and_leave_the_model_as_it_was():
    from unlearnkit.models.cnn import SmallCNN
    from unlearnkit.training import _channels_last_while, predict_embeddings, predict_logits

    torch.manual_seed(0)
    model = SmallCNN(3, 4, width=4)
    x = torch.randn(40, 3, 8, 8)
    weights = {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()}
    with torch.no_grad():
        reference = model.eval()(x)
    with _channels_last_while(model, x) as on:
        assert on and model.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
        assert not model.features[0][0].weight.is_contiguous()
    assert {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()} == weights
    model.train()
    logits = predict_logits(model, x, batch_size=16)
    assert model.training and torch.allclose(logits, reference, atol=1e-5)
    assert {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()} == weights
    assert predict_embeddings(model, x).shape == (40, 16)
    rows = torch.randn(6, 40)  # a non-contiguous input of a model in the default layout
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 3))
    assert torch.allclose(predict_logits(mlp, rows.t()), mlp(rows.t()))
    with _channels_last_while(model, x.flatten(1)) as on:  # not images: nothing changes
        assert not on and model.features[0][0].weight.is_contiguous()


def test_train_run_records_the_fit_that_train_measured(digits, tmp):
    from unlearnkit.training import accuracy

    run = train_run(digits, "mlp", TrainConfig(epochs=2, seed=0), tmp / "r", model_kwargs={"width": 16})
    r = run.meta["results"]
    assert r["train_acc"] == accuracy(run.model, digits.x_train, digits.y_train)
    assert r["test_acc"] == accuracy(run.model, digits.x_test, digits.y_test)
