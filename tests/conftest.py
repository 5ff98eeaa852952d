"""Shared fixtures: tiny data, tiny runs and a CLI runner that returns (code, stdout, stderr)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One thread: the unit tests use tiny models, for which a second thread only adds
# synchronisation (and on a loaded 2-core machine it is many times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``unlearnkit ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from unlearnkit.cli import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:  # typer/click and main() exit this way
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(capsys):
    return lambda *args: run_cli(list(args), capsys)


@pytest.fixture(scope="session")
def digits():
    from unlearnkit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, digits):
    """A small mlp trained on digits (session-wide; do not modify)."""
    from unlearnkit import TrainConfig, train_run

    out = tmp_path_factory.mktemp("runs") / "orig"
    return train_run(digits, "mlp", TrainConfig(epochs=15, lr=0.1, seed=0), out, model_kwargs={"width": 64})


@pytest.fixture
def tmp(tmp_path) -> Path:
    return tmp_path
