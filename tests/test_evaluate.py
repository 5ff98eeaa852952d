"""Evaluation through runs on digits: evaluate_model / evaluate_runs / check_reference and the CLI."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from unlearnkit import TrainConfig, UnlearnkitError, load_dataset, train_run
from unlearnkit.data import ForgetSet, save_forget
from unlearnkit.metrics import check_reference, evaluate_model, evaluate_runs
from unlearnkit.metrics import tug_of_war
from unlearnkit.metrics.evaluate import run_seed, to_jsonable
from unlearnkit.methods import unlearn_run
from unlearnkit.training import accuracy

CFG = dict(epochs=4, lr=0.1)
WIDTH = {"width": 32}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits):
    """A 60-example forget set, 2 models trained on everything and 2 references trained without it."""
    root = tmp_path_factory.mktemp("eval")
    idx = np.random.default_rng(0).choice(digits.index_train.numpy(), 60, replace=False)
    forget = ForgetSet(idx, {"kind": "random"}, source=str(root / "forget.json"))
    save_forget(root / "forget.json", forget)
    models = [
        train_run(digits, "mlp", TrainConfig(**CFG, seed=s), root / f"model{s}", model_kwargs=WIDTH) for s in (0, 1)
    ]
    refs = [
        train_run(digits, "mlp", TrainConfig(**CFG, seed=s), root / f"ref{s}", model_kwargs=WIDTH, exclude=idx)
        for s in (0, 1)
    ]
    return root, forget, models, refs


@pytest.fixture(scope="module")
def other_split_run(tmp_path_factory):
    """A 1-epoch run on digits with another validation split (split_seed 1)."""
    data = load_dataset("digits", split_seed=1)
    return train_run(data, "mlp", TrainConfig(epochs=1), tmp_path_factory.mktemp("split") / "s", model_kwargs=WIDTH)


def test_evaluate_model_metrics(setup, digits):
    _, forget, models, _ = setup
    res = evaluate_model(models[0], None, forget)
    pos = forget.positions(digits)
    retain = digits.complement(pos)
    m = models[0].model
    assert res.metrics["forget_acc"] == pytest.approx(accuracy(m, digits.x_train[pos], digits.y_train[pos]))
    assert res.metrics["retain_acc"] == pytest.approx(accuracy(m, digits.x_train[retain], digits.y_train[retain]))
    assert res.metrics["test_acc"] == pytest.approx(accuracy(m, digits.x_test, digits.y_test))
    assert res.metrics["val_acc"] == pytest.approx(accuracy(m, digits.x_val, digits.y_val))
    assert 0 <= res.metrics["mia_efficacy"] <= 1 and 0 <= res.metrics["mia_auc"] <= 1
    assert res.sizes == {"forget": 60, "retain": digits.n_train - 60, "test": len(digits.y_test), "val": len(digits.y_val)}
    pe = res.per_example
    assert list(pe.columns) == ["index", "p_true", "loss", "correct", "logit_conf"]
    assert pe["index"].tolist() == forget.indices.tolist()
    assert pe["correct"].mean() == res.metrics["forget_acc"]
    # A bare model on the same data gives the same numbers; the same seed gives the same numbers.
    bare = evaluate_model(m, digits, forget)
    assert bare.metrics == res.metrics
    assert evaluate_model(models[0], None, forget, seed=0).metrics == res.metrics


def test_retain_set_drops_what_the_run_never_saw(setup, digits, tmp):
    _, forget, _, refs = setup
    # The reference excluded the forget set itself: its retain set is D minus S.
    assert evaluate_model(refs[0], None, forget).sizes["retain"] == digits.n_train - 60
    other = np.setdiff1d(digits.index_train.numpy(), forget.indices)[:25]
    run = train_run(digits, "mlp", TrainConfig(epochs=1), tmp / "x", model_kwargs=WIDTH, exclude=other)
    assert evaluate_model(run, None, forget).sizes["retain"] == digits.n_train - 60 - 25


def test_evaluate_model_refuses_other_split_data(setup, other_split_run):
    _, forget, models, _ = setup
    with pytest.raises(UnlearnkitError, match="split_seed 1"):
        evaluate_model(models[0], other_split_run.data, forget)


def test_forget_everything_leaves_no_retain_set(setup, digits):
    _, _, models, _ = setup
    res = evaluate_runs(models[:1], [], ForgetSet(digits.index_train.numpy())).to_dict()
    assert math.isnan(res["retain_acc"]) and math.isnan(res["mia_efficacy"])
    assert 0 <= res["forget_acc"] <= 1
    # Strict JSON has no NaN: it is written as null.
    assert to_jsonable(res)["retain_acc"] is None
    json.dumps(to_jsonable(res), allow_nan=False)


def test_reference_against_itself_gives_tow_one(setup):
    _, forget, _, refs = setup
    res = evaluate_runs([refs[0]], [refs[0]], forget).to_dict()
    assert res["tow"] == 1.0 and res["tow_mia"] == 1.0 and res["avg_gap"] == 0.0
    assert res["reference"]["forget_acc"] == res["forget_acc"]
    assert "epsilon" not in res


def test_model_that_saw_the_forget_set_vs_reference(setup):
    _, forget, models, refs = setup
    res = evaluate_runs(models[:1], refs[:1], forget).to_dict()
    # The model trained on S and the reference did not: they differ, ToW < 1.
    assert 0 < res["tow"] < 1
    assert res["tow"] == pytest.approx(
        (1 - abs(res["forget_acc"] - res["reference"]["forget_acc"]))
        * (1 - abs(res["retain_acc"] - res["reference"]["retain_acc"]))
        * (1 - abs(res["test_acc"] - res["reference"]["test_acc"]))
    )


def test_check_reference_refuses(setup, other_split_run, digits, tmp):
    _, forget, models, refs = setup
    check_reference(refs[0], forget, models[0])  # a proper reference passes
    with pytest.raises(UnlearnkitError, match="must exclude the forget set"):
        check_reference(models[1], forget, models[0])
    with pytest.raises(UnlearnkitError, match="split_seed 1"):
        check_reference(other_split_run, forget, models[0])
    extra = np.union1d(forget.indices, np.setdiff1d(digits.index_train.numpy(), forget.indices)[:10])
    ref_extra = train_run(digits, "mlp", TrainConfig(epochs=1), tmp / "e", model_kwargs=WIDTH, exclude=extra)
    with pytest.raises(UnlearnkitError, match="besides the forget set"):
        check_reference(ref_extra, forget, models[0])


def test_several_seeds_give_ci_and_epsilon(setup):
    _, forget, models, refs = setup
    res = evaluate_runs(models, refs, forget).to_dict(per_example=True)
    for key in ("forget_acc", "tow", "avg_gap"):
        agg = res[key]
        assert len(agg["values"]) == 2
        assert agg["mean"] == pytest.approx(np.mean(agg["values"]))
        assert agg["ci95"][0] <= agg["mean"] <= agg["ci95"][1]
    assert len(res["reference"]["test_acc"]["values"]) == 2
    eps = res["epsilon"]
    assert eps["n_models"] == 2 and eps["n_references"] == 2
    assert 0 <= eps["forget_quality"] <= 1 and 0 <= eps["mean"] <= 50
    pe = res["per_example"]
    assert len(pe) == 4 * len(forget)
    assert set(pe["role"]) == {"model", "reference"}
    one = pe.groupby("index")["epsilon"].nunique()
    assert (one == 1).all() and sorted(one.index) == forget.indices.tolist()
    assert pe.groupby("index")["score"].first().mean() == pytest.approx(eps["forget_quality"])
    # N = 2: the challenge's truncation ceil(log(N - 1)) = 0 leaves no points, and says so.
    assert eps["max_epsilon"] == 0 and eps["forget_quality"] == 0
    assert any("every example scores 0" in w for w in res["warnings"])
    kl = res["klom"]
    assert set(kl["p95"]) == {"forget", "retain", "val"} and all(v >= 0 for v in kl["p95"].values())


def test_cli_writes_json_and_parquet(setup, cli):
    root, forget, models, refs = setup
    out, pq = root / "metrics.json", root / "pe.parquet"
    code, stdout, stderr = cli(
        "evaluate", "--model", models[0].path, "--model", models[1].path,
        "--reference", refs[0].path, "--reference", refs[1].path,
        "--forget", root / "forget.json", "--mia-max", 300, "--per-example", pq, "--out", out, "-q",
    )
    assert code == 0, stderr
    assert "tow" in stdout and "forget_quality" in stdout and "300" in stdout and "KLoM p95 forget" in stdout
    assert "used 2 model(s) of train, 2 reference(s), pairing seed" in stdout
    res = json.loads(out.read_text())
    for key in ("forget_acc", "retain_acc", "test_acc", "val_acc", "mia_efficacy", "mia_auc", "tow", "tow_mia", "avg_gap"):
        assert set(res[key]) == {"mean", "ci95", "values", "n"}
    assert res["mia"]["max_per_side"] == 300
    assert set(res["reference"]) >= {"forget_acc", "mia_efficacy"}
    assert res["epsilon"]["forget_quality"] is not None
    pe = pd.read_parquet(pq)
    assert list(pe.columns[:3]) == ["index", "role", "run"] and len(pe) == 4 * len(forget)

    # One model, one reference: plain numbers.
    code, _, stderr = cli("evaluate", "--model", models[0].path, "--reference", refs[0].path,
                          "--forget", root / "forget.json", "--out", out, "-q", "--overwrite")
    assert code == 0, stderr
    res = json.loads(out.read_text())
    assert isinstance(res["tow"], float) and isinstance(res["reference"]["test_acc"], float)


def test_cli_bad_input(setup, other_split_run, cli, digits, tmp):
    root, forget, models, refs = setup
    base = ["evaluate", "--model", models[0].path, "--out", tmp / "m.json"]

    def fails(forget_text: str, *extra, match: str):
        f = tmp / "f.txt"
        f.write_text(forget_text)
        code, _, err = cli(*base, "--forget", f, *extra)
        assert code == 2 and match in err and "Traceback" not in err, err
        assert not (tmp / "m.json").exists()

    n_total = digits.n_train + len(digits.y_val)
    fails(f"{n_total + 5}\n", match="outside the training set")
    fails(f"{int(digits.index_val[0])}\n", match="validation split")
    fails("", match="empty")
    good = "".join(f"{i}\n" for i in forget.indices)
    fails(good, "--reference", models[1].path, match="must exclude the forget set")
    fails(good, "--per-example", tmp / "pe.csv", match=".parquet")
    fails(good, "--reference", other_split_run.path, match="split_seed 1")
    fails(good, "--model", other_split_run.path, match="split_seed 1")


def _accs(row):
    return {"forget": row["forget_acc"], "retain": row["retain_acc"], "test": row["test_acc"]}


def test_seed_pairing_by_default_and_mean_pairing(setup):
    _, forget, models, refs = setup
    assert [run_seed(r) for r in models + refs] == [0, 1, 0, 1]
    # Passing the references in the other order changes nothing: pairs are by seed.
    seed = evaluate_runs(models, refs[::-1], forget)
    assert seed.pairing == "seed" and [p[1] for p in seed.pairs] == [str(refs[0].path), str(refs[1].path)]
    runs = {r["path"]: r for r in seed.per_run}
    expected = [tug_of_war(_accs(runs[str(m.path)]), _accs(runs[str(r.path)])) for m, r in zip(models, refs)]
    np.testing.assert_allclose(seed.comparisons["tow"].values, expected)
    mean = evaluate_runs(models, refs, forget, pairing="mean")
    ref_mean = {k: np.mean([runs[str(r.path)][k] for r in refs]) for k in ("forget_acc", "retain_acc", "test_acc")}
    expected_mean = [tug_of_war(_accs(runs[str(m.path)]), _accs(ref_mean)) for m in models]
    np.testing.assert_allclose(mean.comparisons["tow"].values, expected_mean)
    assert mean.to_dict()["comparison"].startswith("each model against the mean")
    # CIs of bounded quantities stay in [0, 1].
    assert 0 <= seed.comparisons["tow"].lo and seed.comparisons["tow"].hi <= 1


def test_seed_pairing_names_the_missing_seed(setup):
    _, forget, models, refs = setup
    with pytest.raises(UnlearnkitError, match=r"no reference for seed 1 .*seeds \[0\]"):
        evaluate_runs(models, refs[:1], forget)
    with pytest.raises(UnlearnkitError, match="two references have seed 0"):
        evaluate_runs(models[:1], [refs[0], refs[0]], forget)
    # pairing 'mean' accepts it, and rejects unknown pairings.
    assert evaluate_runs(models, refs[:1], forget, pairing="mean").comparisons["tow"].n == 2
    with pytest.raises(UnlearnkitError, match="pairing must be"):
        evaluate_runs(models, refs, forget, pairing="best")


def test_mia_repeats_and_spread(setup):
    _, forget, models, _ = setup
    res = evaluate_model(models[0], None, forget, mia_repeats=3)
    assert len(res.mia_values) == 3
    assert res.metrics["mia_efficacy"] == pytest.approx(np.mean(res.mia_values))
    assert res.metrics["mia_efficacy_sd"] == pytest.approx(np.std(res.mia_values, ddof=1))


def test_refuses_to_pool_methods_or_forget_sets(setup, tmp):
    _, forget, models, refs = setup
    a = unlearn_run(models[0], forget, "finetune", tmp / "ft", {"epochs": 1})
    b = unlearn_run(models[1], forget, "neggrad", tmp / "ng", {"epochs": 1})
    c = unlearn_run(models[1], forget, "finetune", tmp / "ft2", {"epochs": 2})
    with pytest.raises(UnlearnkitError, match="different methods .*finetune.*neggrad"):
        evaluate_runs([a, b], refs, forget)
    with pytest.raises(UnlearnkitError, match="different methods"):
        evaluate_runs([a, c], refs, forget)  # other parameters: another method
    other = ForgetSet(forget.indices[:30], {"kind": "random"})
    d = unlearn_run(models[1], other, "finetune", tmp / "ft3", {"epochs": 1})
    with pytest.raises(UnlearnkitError, match="another forget set"):
        evaluate_runs([d], refs[1:], forget)
    rep = evaluate_runs([a], refs[:1], forget)
    assert rep.method.startswith("finetune") and rep.n_models == 1 and rep.n_references == 1


def test_cli_refuses_pooling_in_one_line(setup, cli, tmp):
    root, forget, models, refs = setup
    a = unlearn_run(models[0], forget, "finetune", tmp / "ft", {"epochs": 1})
    b = unlearn_run(models[1], forget, "neggrad", tmp / "ng", {"epochs": 1})
    code, _, err = cli("evaluate", "--model", a.path, "--model", b.path, "--reference", refs[0].path,
                       "--reference", refs[1].path, "-f", root / "forget.json", "-o", tmp / "m.json", "-q")
    assert code == 2 and "different methods" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_sisa_exact_reference_gives_tow_one(setup, digits, tmp):
    """SISA's reference is the SISA ensemble trained without S: its unlearning reproduces it exactly."""
    from unlearnkit.methods.sisa import train_sisa

    _, forget, _, refs = setup
    cfg = TrainConfig(epochs=2, lr=0.1, seed=3)
    sisa = train_sisa(digits, "mlp", 3, 2, cfg, tmp / "sisa", model_kwargs=WIDTH)
    unlearned = unlearn_run(sisa, forget, "sisa", tmp / "sisa_u")
    exact = train_sisa(digits, "mlp", 3, 2, cfg, tmp / "sisa_ref", model_kwargs=WIDTH, exclude=forget.indices)
    rep = evaluate_runs([unlearned], [exact], forget)
    assert rep.pairs == [(str(unlearned.path), str(exact.path))]
    assert rep.comparisons["tow"].mean == 1.0 and rep.comparisons["tow_mia"].mean == 1.0
