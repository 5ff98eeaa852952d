"""Unlearning a causal transformer on markov sequences through the same Method contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unlearnkit.data import ForgetSet, load_dataset, make_bundle
from unlearnkit.data.markov import canary_indices
from unlearnkit.errors import UnlearnkitError
from unlearnkit.methods.api import unlearn
from unlearnkit.methods.imu import model_influence
from unlearnkit.methods.npo import npo_loss
from unlearnkit.metrics.sequence import sequence_log_likelihoods
from unlearnkit.runs import new_model
from unlearnkit.task import Task
from unlearnkit.training import TrainConfig, per_example_loss, seed_everything, train

SMALL = {"states": 6, "chains": 2, "length": 10, "n_train": 240, "n_test": 60, "canaries": 12}
RECIPE = TrainConfig(epochs=6, lr=1e-2, optimizer="adamw", weight_decay=0.0, batch_size=32)


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("markov", **SMALL)
    seed_everything(0)
    model = new_model("transformer", data, {"width": 16})
    train(model, data.x_train, data.y_train, RECIPE, record_dynamics=False)
    task = Task(model, build_model=lambda: new_model("transformer", data, {"width": 16}), recipe=RECIPE)
    return data, model, task


def test_sequence_influence_matches_autograd(trained):
    data, model, _ = trained
    x = data.x_train[:10]
    got = model_influence(model, x, data.y_train[:10])
    grads = []
    for i in range(10):
        loss = per_example_loss(model(x[i : i + 1]), x[i : i + 1]).mean()
        gw, gb = torch.autograd.grad(loss, [model.head.weight, model.head.bias])
        grads.append(torch.cat([gw, gb[:, None]], 1).flatten().double())
    g = torch.stack(grads)
    want = -(g @ (g.mean(0) / ((g * g).mean(0) + 0.01)))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))


def test_npo_loss_formula_and_limit():
    lp, ref = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -4.0])
    beta = 0.5
    want = (2 / beta) * np.mean([math.log(1 + math.exp(beta * 1.0)), math.log(1 + math.exp(beta * -1.0))])
    assert float(npo_loss(lp, ref, beta)) == pytest.approx(want)
    # Its gradient in log p is σ(β r); as β -> 0 that is 1/2 per example: gradient ascent on NLL, halved.
    lp.requires_grad_(True)
    npo_loss(lp, ref, 1e-6).backward()
    assert torch.allclose(lp.grad, torch.full((2,), 0.5), atol=1e-5)


@pytest.mark.parametrize("method,params", [
    ("neggrad", {"lr": 0.05, "epochs": 3}),
    ("npo", {"lr": 0.05, "epochs": 3}),
    ("imu", {"lr": 0.05, "epochs": 3}),
    ("imu_uniform", {"lr": 0.05, "epochs": 3}),
])
def test_retain_free_methods_lower_forget_likelihood(trained, method, params):
    data, model, task = trained
    fs = ForgetSet(canary_indices(data))
    pos = fs.positions(data)
    out = unlearn(model, data, fs, method, params, task=task, seed=0, device="cpu")
    before = sequence_log_likelihoods(model, data.x_train[pos])[0].mean()
    after = sequence_log_likelihoods(out.model, data.x_train[pos])[0].mean()
    assert after < before - 0.05, (method, before, after)
    assert out.examples_processed > 0


def test_retrain_and_finetune_run_on_sequences(trained):
    data, model, task = trained
    fs = ForgetSet(canary_indices(data))
    ref = unlearn(model, data, fs, "retrain", task=task, seed=0, device="cpu")
    assert ref.examples_processed == RECIPE.epochs * (data.n_train - len(fs))
    ft = unlearn(model, data, fs, "finetune", {"epochs": 1, "lr": 1e-3}, task=task, seed=0, device="cpu")
    assert ft.examples_processed == data.n_train - len(fs)


def test_classifier_only_method_refused(trained):
    data, model, task = trained
    with pytest.raises(UnlearnkitError, match="'salun' does not support next_token models; methods that do: .*npo"):
        unlearn(model, data, [int(data.index_train[0])], "salun", task=task, device="cpu")


def test_empty_sequence_in_forget_set_is_one_line(trained):
    data, model, task = trained
    x = data.x_train.clone()
    x[3, 1:] = 0  # one token left: nothing to predict
    bundle = make_bundle("seq", x, data.y_train, data.x_test, data.y_test, num_classes=data.num_classes,
                         state=data.state)
    with pytest.raises(UnlearnkitError, match="training sequence 3 is empty") as e:
        unlearn(model, bundle, [1, 3], "neggrad", task=task, device="cpu")
    assert "\n" not in str(e.value)


def test_npo_runs_on_a_classifier(digits):
    seed_everything(0)
    model = new_model("mlp", digits, {"width": 16})
    train(model, digits.x_train, digits.y_train, TrainConfig(epochs=3, lr=0.1), record_dynamics=False)
    forget = digits.index_train[:20].numpy()
    out = unlearn(model, digits, forget, "npo", {"lr": 0.05, "epochs": 3}, device="cpu")
    pos = digits.positions(forget)
    lp = lambda m: -per_example_loss(m(digits.x_train[pos]), digits.y_train[pos]).mean()  # noqa: E731
    with torch.no_grad():
        assert float(lp(out.model)) < float(lp(model))


def test_cli_sequence_run_refusals_are_one_line(tmp_path, cli):
    run = tmp_path / "seq"
    code, out, err = cli("train", "-d", "markov", "-m", "transformer", "-O", "n_train=120", "-O", "length=8",
                         "-O", "states=4", "--val-fraction", "0", "--optimizer", "adamw", "--epochs", "1", "--out", run,
                         "--quiet")
    assert code == 0, err
    forget = tmp_path / "f.txt"
    forget.write_text("1\n2\n")
    for args in (["unlearn", "--run", run, "--forget", forget, "--method", "salun", "--out", tmp_path / "u"],
                 ["evaluate", "--model", run, "--forget", forget, "--out", tmp_path / "m.json"],
                 ["score", "--run", run],
                 ["memorization", "-d", "markov", "-m", "transformer", "--k", "2", "--epochs", "1", "--lr", "0.01",
                  "--weight-decay", "0", "--out", tmp_path / "mem"]):
        code, out, err = cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "next_token" in err or "sequence model" in err, err


@pytest.mark.parametrize("method", ["npo", "imu"])
def test_contract_kit_on_the_sequence_model(trained, method):
    from unlearnkit.methods import METHODS
    from unlearnkit.testing import check_method

    data, _, task = trained
    report = check_method(METHODS.get(method), {"lr": 0.01, "epochs": 1}, task=task, data=data,
                          forget=canary_indices(data))
    assert "deterministic for a seed" in report.checks and report.examples_processed > 0
