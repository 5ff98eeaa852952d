"""``unlearnkit train`` end to end, and every bad input through the CLI.

Bad input must give exit code 2, exactly one line on stderr, no traceback, and
leave existing files untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_data import isolated_data_dirs, write_mnist, write_reviews  # noqa: F401  (fixture is autouse)

from unlearnkit import UnlearnkitError, load_run
from unlearnkit.io import sha256_file

TINY = ["--epochs", "1", "--width", "16", "--quiet"]


def assert_one_line_error(code: int, err: str, match: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir())}


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary directories atomic_dir would leave behind (``.NAME.*.tmp``)."""
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_train_with_exclude(cli, tmp):
    excl = tmp / "excl.txt"
    excl.write_text("# forget these\n" + "\n".join(map(str, range(0, 60, 3))) + "\n")
    code, out, err = cli(
        "train", "-d", "digits", "-m", "mlp", *TINY, "--val-fraction", "0", "--exclude", excl, "--out", tmp / "run"
    )
    assert code == 0, err
    assert "test" in out and str(tmp / "run") in out.replace("\n", "")
    meta = json.loads((tmp / "run" / "run.json").read_text())
    assert meta["excluded"]["count"] == 20 and meta["excluded"]["indices"][:3] == [0, 3, 6]
    assert meta["model"] == {"name": "mlp", "kwargs": {"width": 16}}
    dyn = pd.read_parquet(tmp / "run" / "dynamics.parquet")
    assert not set(range(0, 60, 3)) & set(dyn["index"])
    run = load_run(tmp / "run")
    assert np.array_equal(run.excluded, np.arange(0, 60, 3))
    assert 0.0 <= meta["results"]["test_acc"] <= 1.0


def test_train_with_dataset_options(cli, tmp):
    write_mnist(tmp / "data" / "mnist")
    code, out, err = cli(
        "train", "-d", "mnist", "-m", "cnn", "--epochs", "1", "--width", "4", "-q",
        "--data-root", tmp / "data", "-O", "pad32=true", "--option", "rgb=1", "--out", tmp / "run",
    )
    assert code == 0, err
    run = load_run(tmp / "run")
    assert run.data.input_shape == (3, 32, 32)
    assert run.meta["dataset"]["options"] == {"pad32": True, "rgb": 1}  # typed as every CLI value


def test_train_text_model_on_rotten_tomatoes(cli, tmp):
    write_reviews(tmp / "data" / "rotten-tomatoes")
    code, out, err = cli(
        "train", "-d", "rotten-tomatoes", "-m", "text", *TINY, "--optimizer", "adamw", "--lr", "0.01",
        "--data-root", tmp / "data", "--out", tmp / "run",
    )
    assert code == 0, err
    state = json.loads((tmp / "run" / "data_state.json").read_text())
    meta = json.loads((tmp / "run" / "run.json").read_text())
    assert meta["model"]["kwargs"]["vocab_size"] == len(state["vocab"]) + 2
    run = load_run(tmp / "run")
    assert run.data.state == state and run.data.x_test.dtype == torch.int64
    # The rebuilt data and weights give exactly the accuracy recorded at training time.
    from unlearnkit.training import accuracy

    assert accuracy(run.model, run.data.x_test, run.data.y_test) == pytest.approx(meta["results"]["test_acc"])


@pytest.mark.parametrize(
    "args,match",
    [
        (["-d", "nope"], "unknown dataset 'nope'; choose from:"),
        (["-m", "vit"], "unknown model 'vit'; choose from:"),
        (["--bogus", "1"], "No such option: --bogus"),
        (["--epochs", "many"], "Invalid value for '--epochs'"),
        (["--lr", "-1"], "invalid hyperparameters: lr"),
        (["-O", "colour=1"], "digits takes no options"),
        (["-d", "mnist", "-O", "colour=1"], "unknown option(s) colour"),
        (["-O", "pad32"], "expected KEY=VALUE"),
        (["-d", "mnist"], "looked in"),
        (["-d", "cifar10"], "cannot be downloaded here"),
    ],
)
def test_bad_arguments(cli, tmp, args, match):
    if "mnist" in args and "colour=1" in args:
        write_mnist(tmp / "data" / "mnist")
        args = [*args, "--data-root", tmp / "data"]
    code, out, err = cli("train", *TINY, *args, "--out", tmp / "run")
    assert_one_line_error(code, err, match)
    assert not (tmp / "run").exists() and not leftovers(tmp, "run")


@pytest.mark.parametrize(
    "content,match",
    [
        ("1\n5\n99999\n", "outside the training set"),
        ("4\n7\n4\n", "duplicate indices [4]"),
        ("1\n2.5\n", "is not an integer index"),
        ("1\nabc\n", "is not an integer index"),
        ("-3\n", "is negative"),
    ],
)
def test_bad_index_files(cli, tmp, content, match):
    f = tmp / "excl.txt"
    f.write_text(content)
    code, out, err = cli("train", *TINY, "--exclude", f, "--out", tmp / "run")
    assert_one_line_error(code, err, match)
    assert not (tmp / "run").exists()
    assert f.read_text() == content


def test_bad_index_json_and_missing_file(cli, tmp):
    f = tmp / "excl.json"
    f.write_text(json.dumps({"indices": [1, True]}))
    assert_one_line_error(*cli("train", *TINY, "--exclude", f, "--out", tmp / "r")[::2], "not an integer index")
    assert_one_line_error(*cli("train", *TINY, "--exclude", tmp / "no.txt", "--out", tmp / "r")[::2], "not found")


def test_out_holding_a_run_needs_overwrite(cli, tmp):
    assert cli("train", *TINY, "--out", tmp / "run")[0] == 0
    before = snapshot(tmp / "run")
    code, out, err = cli("train", *TINY, "--seed", "1", "--out", tmp / "run")
    assert_one_line_error(code, err, "already holds a run; pass --overwrite")
    assert snapshot(tmp / "run") == before
    code, out, err = cli("train", *TINY, "--seed", "1", "--overwrite", "--out", tmp / "run")
    assert code == 0, err
    after = snapshot(tmp / "run")
    assert after["model.safetensors"] != before["model.safetensors"] and not leftovers(tmp, "run")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from unlearnkit import TrainConfig, load_dataset, train_run

    out = tmp_path_factory.mktemp("cli_train") / "run"
    return train_run(load_dataset("digits"), "mlp", TrainConfig(epochs=1), out, model_kwargs={"width": 16}).path


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupted_checkpoint_refused(small_run, tmp, damage):
    bad = tmp / "bad"
    shutil.copytree(small_run, bad)
    w = bad / "model.safetensors"
    raw = w.read_bytes()
    if damage == "flip":
        w.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    elif damage == "truncate":
        w.write_bytes(raw[: len(raw) // 2])
    else:
        w.unlink()
    with pytest.raises(UnlearnkitError, match="sha256 mismatch|missing model.safetensors") as e:
        load_run(bad)
    assert "\n" not in str(e.value)
    assert load_run(small_run).meta["weights_sha256"] == sha256_file(small_run / "model.safetensors")


def test_other_format_version_refused(small_run, tmp):
    bad = tmp / "old"
    shutil.copytree(small_run, bad)
    meta = json.loads((bad / "run.json").read_text())
    meta["format_version"] = 99
    (bad / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UnlearnkitError, match="format version 99 is incompatible"):
        load_run(bad)


@pytest.mark.parametrize("existing", [False, True])
def test_ctrl_c_leaves_no_run_directory(cli, tmp, monkeypatch, existing):
    import unlearnkit.training

    if existing:
        assert cli("train", *TINY, "--out", tmp / "run")[0] == 0
        before = snapshot(tmp / "run")
    calls = []

    def interrupt(loss, where):  # called once per training step, inside the loop
        calls.append(where)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(unlearnkit.training, "check_finite", interrupt)
    code, out, err = cli("train", *TINY, "--overwrite", "--out", tmp / "run")
    assert code == 130 and len(calls) == 3
    assert "Traceback" not in err
    if existing:
        assert snapshot(tmp / "run") == before
    else:
        assert not (tmp / "run").exists()
    assert not leftovers(tmp, "run")
