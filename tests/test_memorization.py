import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit import TrainConfig, UnlearnkitError
from unlearnkit.data import make_bundle
from unlearnkit.difficulty import memorization as mem
from unlearnkit.difficulty.memorization import (
    MemorizationWarning,
    estimate_memorization,
    load_memorization,
    memorization_estimate,
    split_half_reliability,
    subset_mask,
)
from unlearnkit.training import torch_threads

FAST = TrainConfig(lr=0.1, batch_size=32, weight_decay=0.0)
N_FLIP = 15


@pytest.fixture(scope="module")
def blobs():
    """600 training points in 5 Gaussian blobs (d=64), 15 of them with a wrong label."""
    rng = np.random.default_rng(0)
    n, d, c = 800, 64, 5
    centers = rng.normal(0, 1.0, (c, d))
    y = rng.integers(0, c, n)
    x = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    data = make_bundle("blobs", x[:600], y[:600], x[600:], y[600:], val_fraction=0.0, split_seed=0, num_classes=c)
    data.spec = {"name": "blobs", "val_fraction": 0.0, "split_seed": 0, "options": {}}
    flip = rng.choice(600, N_FLIP, replace=False)
    data.y_train[flip] = (data.y_train[flip] + 1) % c
    return data, flip


def call(data, out, **kw):
    """A small estimate: 6 mlp models in blocks of 2."""
    kw = {"k": 6, "epochs": 3, "cfg": FAST, "model_kwargs": {"width": 32}, "block_size": 2, **kw}
    return estimate_memorization(data, "mlp", out=out, **kw)


def run(data, out, **kw):
    with pytest.warns(MemorizationWarning):  # small k: always warned
        return call(data, out, **kw)


def test_mislabeled_examples_score_highest(blobs, tmp):
    data, flip = blobs
    with pytest.warns(MemorizationWarning, match="out of only 4.8 models"):
        res = estimate_memorization(
            data, "mlp", k=16, epochs=10, out=tmp / "m", cfg=FAST, model_kwargs={"width": 128}, block_size=8
        )
    t = res.table
    assert list(t.columns) == ["index", "memorization", "memorization_se", "memorization_n_out"]
    assert np.array_equal(t["index"], data.index_train.numpy())
    scores = t["memorization"].to_numpy()
    clean = np.delete(scores, flip)
    assert np.nanmean(scores[flip]) > np.nanpercentile(clean, 90)
    assert np.nanmean(scores[flip]) > 0.5 and abs(np.nanmean(clean)) < 0.1
    # Every model saw round(0.7 * 600) examples, so held-out counts sum to 16 * 180.
    assert t["memorization_n_out"].sum() == 16 * 180
    meta = res.meta
    assert meta["ensemble"] == "stacked" and meta["k"] == 16 and meta["seed"] == 0
    assert set(meta["reliability"]) >= {"split_half_spearman", "spearman_brown", "n_examples"}
    assert -1 <= meta["reliability"]["split_half_spearman"] <= 1  # computable at k=16
    assert meta["timings"]["seconds_per_model"] > 0 and meta["warnings"]


def test_estimate_formula_by_hand():
    # Example 0: seen by models 0,1 (both right), held out of 2,3 (both wrong) -> mem 1, se 0.
    # Example 1: seen by 0,1,2 (right, wrong, right), held out of 3 (right) -> 2/3 - 1, se NaN (one held out).
    masks = np.array([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=bool)
    correct = np.array([[1, 1], [1, 0], [0, 1], [0, 1]], dtype=bool)
    t = memorization_estimate(correct, masks)
    assert t["memorization"].tolist() == pytest.approx([1.0, 2 / 3 - 1])
    assert t["memorization_se"][0] == 0 and np.isnan(t["memorization_se"][1])
    assert t["memorization_n_out"].tolist() == [2, 1]
    # Sample variances: p_in=1/2 over 4 seen, p_out=1/2 over 4 held out.
    m = np.array([[1], [1], [1], [1], [0], [0], [0], [0]], dtype=bool)
    c = np.array([[1], [0], [1], [0], [1], [1], [0], [0]], dtype=bool)
    var = np.var([1, 0, 1, 0], ddof=1)
    assert memorization_estimate(c, m)["memorization_se"][0] == pytest.approx(np.sqrt(2 * var / 4))


def test_split_half_is_one_when_halves_agree():
    rng = np.random.default_rng(1)
    masks = rng.random((40, 200)) < 0.5
    level = np.linspace(0, 1, 200)
    # Seen: always right; held out: right exactly when the example's level is below a per-half threshold.
    correct = masks | (level[None, :] < 0.5)
    rel = split_half_reliability(correct, masks)
    assert rel["n_examples"] > 150 and rel["halves"] == [20, 20]
    assert rel["split_half_spearman"] == pytest.approx(1.0)


def test_masks_depend_only_on_seed_and_model():
    a = subset_mask(100, 0.7, 3, 5)
    assert a.sum() == 70 and np.array_equal(a, subset_mask(100, 0.7, 3, 5))
    assert not np.array_equal(a, subset_mask(100, 0.7, 3, 6))
    assert not np.array_equal(a, subset_mask(100, 0.7, 4, 5))


def test_loop_and_stacked_estimates_agree(blobs, tmp):
    data, _ = blobs
    a = run(data, tmp / "loop", ensemble="loop")
    b = run(data, tmp / "vec", ensemble="stacked")
    assert a.meta["ensemble"] == "loop" and b.meta["ensemble"] == "stacked"
    diff = (a.table["memorization"] - b.table["memorization"]).abs()
    assert diff.max() <= 1 / 6 + 1e-9 and (diff > 0).mean() < 0.02  # at most one flipped prediction


def test_interrupted_run_resumes_to_identical_result(blobs, tmp, monkeypatch):
    data, _ = blobs
    full = run(data, tmp / "full")
    calls, original = [], mem.train_block

    def crash_on_second(block, ctx):
        calls.append(block.block)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the second block
        return original(block, ctx)

    monkeypatch.setattr(mem, "train_block", crash_on_second)
    with pytest.raises(KeyboardInterrupt), pytest.warns(MemorizationWarning):
        call(data, tmp / "part")
    assert sorted(p.name for p in (tmp / "part" / "models").iterdir()) == ["block_0000.npz"]
    assert not (tmp / "part" / "memorization.parquet").exists()
    monkeypatch.undo()
    resumed = run(data, tmp / "part")
    assert resumed.meta["timings"]["blocks_resumed"] == 1
    pd.testing.assert_frame_equal(resumed.table, full.table, check_exact=True)
    assert (tmp / "part" / "memorization.parquet").read_bytes() == (tmp / "full" / "memorization.parquet").read_bytes()


def test_refuses_directory_of_another_configuration(blobs, tmp):
    data, _ = blobs
    run(data, tmp / "m")
    with pytest.raises(UnlearnkitError, match="another configuration.*seed"):
        call(data, tmp / "m", seed=1)
    with pytest.raises(UnlearnkitError, match="another configuration.*k"):
        call(data, tmp / "m", k=8)
    (tmp / "other").mkdir()
    (tmp / "other" / "notes.txt").write_text("x")
    with pytest.raises(UnlearnkitError, match="not a memorization directory"):
        call(data, tmp / "other")


def test_load_memorization_checks_expectations(blobs, tmp):
    data, _ = blobs
    res = run(data, tmp / "m")
    table, meta = load_memorization(tmp / "m", expect={"dataset": data.spec, "model": "mlp", "seed": 0, "k": 6})
    pd.testing.assert_frame_equal(table, res.table)
    assert meta["reliability"] == res.reliability
    for expect, what in [
        ({"seed": 1}, "seed=0"),
        ({"dataset": "digits"}, "dataset name='blobs'"),
        ({"dataset": {**data.spec, "split_seed": 3}}, "split_seed=0"),
        ({"model": "cnn"}, "model name='mlp'"),
    ]:
        with pytest.raises(UnlearnkitError, match=what):
            load_memorization(tmp / "m", expect=expect)
    with pytest.raises(UnlearnkitError, match="no finished memorization"):
        load_memorization(tmp)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"k": 1}, "k must be"),
        ({"fraction": 1.0}, "fraction must be"),
        ({"fraction": 0.0}, "fraction must be"),
        ({"ensemble": "fast"}, "unknown ensemble"),
        ({"executor": "spark"}, "unknown executor"),
    ],
)
def test_bad_input(blobs, tmp, kw, msg):
    data, _ = blobs
    with pytest.raises(UnlearnkitError, match=msg):
        estimate_memorization(data, "mlp", out=tmp / "m", **kw)


def test_batchnorm_outside_a_chain_cannot_be_stacked(digits, tmp):
    cfg = TrainConfig(epochs=1)
    with pytest.raises(UnlearnkitError, match="BatchNorm"):
        estimate_memorization(digits, "resnet18", k=2, out=tmp / "m", cfg=cfg, ensemble="stacked",
                              model_kwargs={"width": 4})


def test_cli(cli, tmp):
    out = tmp / "mem"
    args = ["memorization", "--dataset", "digits", "--k", "4", "--epochs", "1", "--width", "16", "--out", out, "-q"]
    code, stdout, stderr = cli(*args)
    assert code == 0, stderr
    assert "split-half reliability" in stdout and "memorization.parquet" in stdout
    assert "warning:" in stderr and "out of only 1.2 models" in stderr
    assert len(pd.read_parquet(out / "memorization.parquet")) == 1293
    code, stdout, stderr = cli(*args, "--seed", "1")
    assert code == 2 and "another configuration" in stderr and "Traceback" not in stderr
    code, _, stderr = cli("memorization", "--dataset", "digits", "--k", "1", "--out", tmp / "x")
    assert code == 2 and "k must be" in stderr and len(stderr.strip().splitlines()) == 1


def flipped_digits(digits, n: int = 500, rate: float = 0.04):
    """The first ``n`` digits training rows with ``rate`` of their labels changed to another class."""
    rng = np.random.default_rng(1)
    x, y = digits.x_train[:n].numpy(), digits.y_train[:n].numpy().copy()
    flip = rng.choice(n, int(rate * n), replace=False)
    y[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    data = make_bundle("flipped", x, y, digits.x_test.numpy(), digits.y_test.numpy(), val_fraction=0.0,
                       split_seed=0, num_classes=10)
    data.spec = {"name": "flipped", "val_fraction": 0.0, "split_seed": 0, "options": {}}
    return data, flip


def test_default_recipe_finds_flipped_labels(digits, tmp):
    """At the defaults (the mlp's memorization recipe: no weight decay, until fit) the subset
    models fit the mislabeled rows they see, so those rank at the top."""
    from sklearn.metrics import roc_auc_score

    data, flip = flipped_digits(digits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)  # small k
        res = estimate_memorization(data, "mlp", k=16, out=tmp / "m", model_kwargs={"width": 64})
    fit = res.meta["fit"]
    assert fit["in_subset_accuracy"]["median"] >= 0.99 and fit["fits"]
    assert len(fit["in_subset_accuracy"]["per_model"]) == 16
    assert fit["epochs_run"]["max"] <= fit["epochs_run"]["cap"]
    assert not any("in-subset accuracy" in w for w in res.warnings)
    is_flipped = np.isin(np.arange(data.n_train), flip)
    scores = res.table["memorization"].fillna(0).to_numpy()
    assert roc_auc_score(is_flipped, scores) >= 0.9


def test_underfitting_recipe_warns(digits, tmp):
    data, _ = flipped_digits(digits, n=300)
    weak = TrainConfig(epochs=1, lr=0.01, weight_decay=5e-4)
    with pytest.warns(MemorizationWarning, match=r"median in-subset accuracy of the 4 subset models is 0\.\d+ \(< 0\.99\)"):
        res = estimate_memorization(data, "mlp", k=4, out=tmp / "m", cfg=weak, model_kwargs={"width": 16})
    assert not res.meta["fit"]["fits"] and res.meta["fit"]["threshold"] == 0.99
    assert any("--weight-decay 0" in w for w in res.warnings)


def test_until_fit_and_threshold_options(blobs, tmp):
    data, _ = blobs
    res = call(data, tmp / "m", epochs=50, until_fit=0.9, fit_threshold=0.5)
    fit = res.meta["fit"]
    assert fit["threshold"] == 0.5 and fit["epochs_run"]["cap"] == 50
    assert fit["epochs_run"]["max"] < 50 and fit["in_subset_accuracy"]["min"] >= 0.9
    assert res.meta["train"]["until_fit"] == 0.9


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"until_fit": 0.0}, "until_fit"),
        ({"until_fit": 1.5}, "until_fit"),
        ({"epochs": 0}, "epochs"),
        ({"fit_threshold": 0.0}, "fit threshold"),
    ],
)
def test_bad_fit_options(blobs, tmp, kw, msg):
    data, _ = blobs
    with pytest.raises(UnlearnkitError, match=msg):
        estimate_memorization(data, "mlp", k=4, out=tmp / "m", **kw)


def test_family_without_default_recipe_names_the_options(digits, tmp):
    with pytest.raises(UnlearnkitError, match="no default memorization recipe.*--epochs, --lr and --weight-decay"):
        estimate_memorization(digits, "resnet18", k=2, out=tmp / "m")


def test_cli_fit_options(cli, tmp):
    base = ["memorization", "--dataset", "digits", "--k", "2", "--width", "8", "-q"]
    code, stdout, stderr = cli(*base, "--epochs", "2", "--until-fit", "0.5", "--fit-threshold", "0.3", "--out", tmp / "a")
    assert code == 0, stderr
    assert "fit: in-subset accuracy median" in stdout and "(cap 2)" in stdout
    for flags, msg in [(["--until-fit", "1.5"], "until_fit"), (["--until-fit", "0"], "until_fit"),
                       (["--epochs", "0"], "epochs"), (["--fit-threshold", "2"], "fit threshold")]:
        code, _, stderr = cli(*base, *flags, "--out", tmp / "b")
        assert code == 2 and msg in stderr and len(stderr.strip().splitlines()) == 1, stderr
    code, _, stderr = cli("memorization", "-m", "resnet18", "--k", "2", "--out", tmp / "c")
    assert code == 2 and "no default memorization recipe" in stderr and "--weight-decay" in stderr
