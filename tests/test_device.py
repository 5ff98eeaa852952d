"""Device plumbing, checked on the CPU: every layer takes ``device`` ("auto" by default), an
explicit ``cpu`` gives what ``auto`` gives here, ``--device cuda`` without a GPU is one line,
and mixed precision (``amp``) runs through the one training loop."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnkit import TrainConfig, train_run
from unlearnkit.data import ForgetSet
from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.evaluate import evaluate_model
from unlearnkit.runs import load_run, new_model
from unlearnkit.training import resolve_device, train

NO_GPU = "no CUDA GPU is available"


@pytest.fixture
def no_cuda(monkeypatch):
    """Behave as a machine without CUDA even where there is one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_device(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UnlearnkitError, match=NO_GPU):
        resolve_device("cuda")
    with pytest.raises(UnlearnkitError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_explicit_cpu_equals_auto_on_a_cpu_machine(no_cuda, digits, tmp):
    cfg = TrainConfig(epochs=2, lr=0.1, seed=3)
    a = train_run(digits, "mlp", cfg, tmp / "a", model_kwargs={"width": 16}, device="cpu")
    b = train_run(digits, "mlp", cfg, tmp / "b", model_kwargs={"width": 16}, device="auto")
    assert a.meta["weights_sha256"] == b.meta["weights_sha256"]
    run = load_run(tmp / "a", device="cpu")
    assert next(run.model.parameters()).device.type == "cpu"
    forget = ForgetSet(digits.index_train[:20].numpy())
    ra = evaluate_model(run, None, forget).metrics
    rb = evaluate_model(load_run(tmp / "a"), None, forget).metrics
    assert ra == rb


def test_amp_trains_in_bfloat16_autocast_and_is_recorded(digits, tmp):
    x, y = digits.x_train, digits.y_train
    plain = new_model("mlp", digits, {"width": 32})
    mixed = new_model("mlp", digits, {"width": 32})
    mixed.load_state_dict(plain.state_dict())
    r32 = train(plain, x, y, TrainConfig(epochs=3, lr=0.1), device="cpu")
    r16 = train(mixed, x, y, TrainConfig(epochs=3, lr=0.1, amp=True), device="cpu")
    # Both learn (digits: chance is 0.1) about equally, weights stay float32, and bfloat16
    # changed the numbers (so autocast was really on).
    assert r32.train_accuracy > 0.5 and abs(r16.train_accuracy - r32.train_accuracy) < 0.1
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), mixed.parameters()))
    run = train_run(digits, "mlp", TrainConfig(epochs=1, amp=True), tmp / "amp", model_kwargs={"width": 16})
    assert json.loads((tmp / "amp" / "run.json").read_text())["train"]["amp"] is True
    assert np.isfinite(run.meta["results"]["test_acc"])


def test_cli_amp_flag(cli, tmp):
    code, _, err = cli("train", "-d", "digits", "-m", "mlp", "--epochs", "1", "--width", "8", "--amp", "-q",
                       "--out", tmp / "r")
    assert code == 0, err
    assert json.loads((tmp / "r" / "run.json").read_text())["train"]["amp"] is True


@pytest.fixture
def forget_file(tmp, digits):
    path = tmp / "f.json"
    path.write_text(json.dumps({"indices": digits.index_train[:30].tolist()}))
    return path


def test_cli_device_cuda_without_gpu_is_one_line(no_cuda, cli, tmp, digits_run, forget_file):
    run = tmp / "run"
    shutil.copytree(digits_run.path, run)  # `score` writes into the run directory
    commands = {
        "train": ["train", "-d", "digits", "-m", "mlp", "--epochs", "1", "--out", tmp / "t"],
        "train-sisa": ["train-sisa", "-d", "digits", "-m", "mlp", "--epochs", "1", "--out", tmp / "s"],
        "unlearn": ["unlearn", "-r", run, "-f", forget_file, "--method", "finetune", "--out", tmp / "u"],
        "score": ["score", "-r", run, "--scores", "confidence"],
        "evaluate": ["evaluate", "--model", run, "--forget", forget_file, "--out", tmp / "e.json"],
        "memorization": ["memorization", "-d", "digits", "-m", "mlp", "--k", "4", "--out", tmp / "m"],
        "rum": ["rum", "-r", run, "-f", forget_file, "--refine-by", "centroid_distance", "--out", tmp / "rum"],
        "bench": ["bench", Path(__file__).parents[1] / "configs" / "demo.yaml", "--out", tmp / "b"],
    }
    for name, args in commands.items():
        code, _, err = cli(*args, "--device", "cuda", "-q")
        assert code == 2, (name, err)
        assert NO_GPU in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
    for out in ("t", "s", "u", "m", "rum", "e.json", "b"):
        assert not (tmp / out).exists(), out
    assert not (run / "scores.parquet").exists()
