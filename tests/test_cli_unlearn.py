"""CLI: forget-set random/class -> unlearn -> load_run, tune, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json

import pytest

from unlearnkit.io import read_json
from unlearnkit.runs import load_run


def test_round_trip_forget_set_unlearn_load_run(cli, digits_run, tmp):
    code, out, err = cli("forget-set", "random", "--run", digits_run.path, "--size", 100, "--seed", 4, "--out", tmp / "f.json")
    assert code == 0, err
    meta = read_json(tmp / "f.json")
    assert meta["kind"] == "random" and meta["size"] == 100 and meta["seed"] == 4 and len(meta["indices"]) == 100
    code, out, err = cli(
        "unlearn", "--run", digits_run.path, "--forget", tmp / "f.json", "--method", "neggrad_plus",
        "--set", "epochs=1", "--set", "alpha=0.9", "--out", tmp / "u", "-q",
    )
    assert code == 0, err
    assert "forget" in out and "retain" in out and "test" in out
    run = load_run(tmp / "u", data=digits_run.data)
    info = read_json(tmp / "u" / "unlearn.json")
    assert info["method"] == "neggrad_plus" and info["params"]["epochs"] == 1 and info["params"]["alpha"] == 0.9
    assert info["forget_size"] == 100 and info["examples_processed"] > 0 and info["seconds"] >= 0
    assert run.meta["forgotten"]["count"] == 100 and run.meta["kind"] == "unlearn"
    assert run.meta["forgotten"]["sha256"] == info["forget_sha256"]


def test_forget_set_class_and_txt(cli, digits_run, digits, tmp):
    code, _, err = cli("forget-set", "class", "--run", digits_run.path, "--class", 2, "--out", tmp / "c.json")
    assert code == 0, err
    meta = read_json(tmp / "c.json")
    assert meta["kind"] == "class" and meta["class"] == 2 and meta["size"] == int((digits.y_train == 2).sum())
    code, _, err = cli("forget-set", "random", "--run", digits_run.path, "--size", 7, "--seed", 0,
                       "--class-balanced", "--out", tmp / "r.txt")
    assert code == 0, err
    assert len((tmp / "r.txt").read_text().split()) == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["random", "--size", 0], "size must be"),
        (["random", "--size", 10**6], "size must be"),
        (["class", "--class", 10], "unknown class"),
        (["class", "--class", -1], "unknown class"),
    ],
)
def test_forget_set_bad_input(cli, digits_run, tmp, args, message):
    code, _, err = cli("forget-set", args[0], "--run", digits_run.path, *args[1:], "--out", tmp / "f.txt")
    assert code == 2 and message in err and not (tmp / "f.txt").exists()


@pytest.mark.parametrize(
    "forget, method, sets, message",
    [
        ("outside", "finetune", [], "outside the training set"),
        ("val", "finetune", [], "validation split"),
        ("empty", "finetune", [], "empty"),
        ("all", "finetune", [], "retain-free methods"),
        ("ok", "finetune", ["lr=0"], "lr"),
        ("ok", "neggrad_plus", ["alpha=2"], "alpha"),
        ("ok", "finetune", ["momentum_typo=0.5"], "valid keys"),
        ("ok", "finetune", ["lr"], "KEY=VALUE"),
        ("ok", "nope", [], "unknown method"),
        ("ok", "finetune", ["lr=1e30", "epochs=1"], "finetune: loss became"),
    ],
)
def test_unlearn_bad_input_exit_2_nothing_written(cli, digits_run, digits, tmp, forget, method, sets, message):
    train = digits.index_train.tolist()
    indices = {
        "outside": [10**6], "val": digits.index_val[:3].tolist(), "empty": [], "all": train, "ok": train[:50],
    }[forget]
    (tmp / "f.json").write_text(json.dumps({"indices": indices}))
    flags = [x for s in sets for x in ("--set", s)]
    code, _, err = cli("unlearn", "--run", digits_run.path, "--forget", tmp / "f.json", "--method", method,
                       *flags, "--out", tmp / "u", "-q")
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp / "u").exists() and not list(tmp.glob(".u.*"))
