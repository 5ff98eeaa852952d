import json

import numpy as np
import pandas as pd
import pytest

from unlearnkit import TrainConfig, UnlearnkitError, train_run
from unlearnkit.data import ForgetSet, save_forget
from unlearnkit.meta.instance import analyze_instances, hard_classifier_auc, true_label_probability
from unlearnkit.methods import unlearn_from_run

METHODS = ["retrain", "finetune"]
PARAMS = {"finetune": {"epochs": 1}}


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("inst")
    run = train_run(digits, "mlp", TrainConfig(epochs=3, lr=0.1, seed=0), root / "run", model_kwargs={"width": 32})
    rng = np.random.default_rng(0)
    forget = ForgetSet(rng.choice(digits.index_train.numpy(), 24, replace=False), {"kind": "random"})
    save_forget(root / "forget.json", forget)
    res = analyze_instances(run, forget, METHODS, seeds=2, out=root / "out", params=PARAMS)
    return run, forget, res, root


def test_outputs_written(setup):
    run, forget, res, root = setup
    out = root / "out"
    assert {"instances.parquet", "analysis.json", "difficulty_hist.png", "method_scatter.png",
            "score_correlations.png"} <= {p.name for p in out.iterdir()}
    inst = pd.read_parquet(out / "instances.parquet")
    assert len(inst) == len(METHODS) * len(forget)
    assert set(inst["method"]) == set(METHODS)
    assert set(inst["index"]) == set(forget.indices.tolist())
    assert {"difficulty", "difficulty_seed0", "difficulty_seed1", "p_unlearned", "p_retrained", "p_original"} <= set(inst.columns)
    assert ((inst["difficulty"] >= 0) & (inst["difficulty"] <= 1)).all()
    np.testing.assert_allclose(inst["difficulty"], (inst["p_unlearned"] - inst["p_retrained"]).abs())
    # The mean over seeds of per-seed signed gaps is the gap of the means.
    for png in ("difficulty_hist.png", "method_scatter.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_summary_values_in_range(setup):
    _, _, res, root = setup
    s = json.loads((root / "out" / "analysis.json").read_text())
    assert s["methods"] == METHODS and s["seeds"] == 2
    rho = s["method_correlations"]["retrain~finetune"]
    assert rho is None or -1 <= rho <= 1
    assert s["score_correlations"] and all(v is None or -1 <= v <= 1 for v in s["score_correlations"].values())
    assert 0 <= s["classifier"]["auc"] <= 1 and s["classifier"]["folds"] >= 2
    assert s["hard"]["count"] >= 1 and 0 <= s["hard_fraction_mean"] <= 1
    assert all(0 <= v <= 1 for v in s["hard_fraction"].values())
    assert s["skipped"] == {}
    assert s["score_source"].startswith("computed now")  # no scores.parquet in the run: cheap ones


def test_difficulty_is_distance_to_retrained_references(setup):
    run, forget, res, _ = setup
    pos = forget.positions(run.data)
    x, y = run.data.x_train[pos], run.data.y_train[pos]
    # References are retrain with seeds 0..S-1; methods run with seeds S..2S-1.
    refs = np.mean([true_label_probability(unlearn_from_run(run, forget, "retrain", seed=s).model, x, y) for s in range(2)], 0)
    ft = np.mean([true_label_probability(unlearn_from_run(run, forget, "finetune", PARAMS["finetune"], seed=s).model, x, y)
                  for s in (2, 3)], 0)
    got = res.instances[res.instances["method"] == "finetune"].set_index("index").loc[forget.indices]
    np.testing.assert_allclose(got["p_retrained"], refs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["difficulty"], np.abs(ft - refs), rtol=1e-5, atol=1e-7)


def test_classifier_auc_unit():
    rng = np.random.default_rng(0)
    hard = np.zeros(40, bool)
    hard[:10] = True
    feats = pd.DataFrame({"signal": hard + rng.normal(0, 0.05, 40), "const": 1.0, "missing": np.nan})
    r = hard_classifier_auc(feats, hard)
    assert r["auc"] == pytest.approx(1.0) and r["features"] == ["signal"] and r["folds"] == 5
    noise = hard_classifier_auc(pd.DataFrame({"noise": rng.normal(size=40)}), hard)
    assert 0 <= noise["auc"] < 0.9
    assert hard_classifier_auc(feats[["const"]], hard)["auc"] is None


def test_errors_and_cli(setup, cli, tmp):
    run, forget, _, root = setup
    with pytest.raises(UnlearnkitError, match="unknown method 'nope'"):
        analyze_instances(run, forget, ["nope"], seeds=1)
    with pytest.raises(UnlearnkitError, match="not analysed"):
        analyze_instances(run, forget, ["finetune"], seeds=1, params={"neggrad": {}})
    with pytest.raises(UnlearnkitError, match="epochs"):  # sisa is skipped (not a SISA run): its params too
        analyze_instances(run, forget, ["finetune", "sisa"], seeds=1, params={"sisa": {}, "finetune": {"epochs": 0}})
    base = ["analyze-instances", "--run", run.path, "--forget", root / "forget.json", "--out", tmp / "o"]
    for extra, msg in [(["--methods", "retrain,nope"], "unknown method"), (["--seeds", "0"], "--seeds must be >= 1"),
                       (["--methods", "sisa"], "no method left"), (["--set", "finetune.epochs"], "METHOD.KEY=VALUE"),
                       (["--methods", "finetune", "--set", "finetune.epochs=0"], "epochs"),
                       (["--methods", "finetune", "--set", "finetune.bogus=1"], "bogus")]:
        code, _, err = cli(*base, *extra)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "o").exists()
    code, _, err = cli(*base[:-2], "--out", root / "out", "--methods", "retrain", "--seeds", "1")
    assert code == 2 and "--overwrite" in err
    code, out, _ = cli(*base, "--methods", "finetune", "--seeds", "1", "--set", "finetune.epochs=1", "-q")
    assert code == 0 and "finetune" in out
    s = json.loads((tmp / "o" / "analysis.json").read_text())
    assert s["params"] == {"finetune": {"epochs": 1}} and s["methods"] == ["finetune"]


def test_references_from_the_ensemble_engine_equal_the_retrain_method(digits_run, digits):
    """analyze-instances trains its S references together; each equals `unlearn --method retrain`."""
    from unlearnkit.data.forget import random_forget_set
    from unlearnkit.meta.instance import _ensemble_references, true_label_probability
    from unlearnkit.methods import unlearn_from_run

    forget = random_forget_set(digits, 20, 0)
    pos = forget.positions(digits)
    x, y = digits.x_train[pos], digits.y_train[pos]
    p = _ensemble_references(digits_run, pos, 2, "cpu", x, y)
    assert p.shape == (2, 20)
    for s in range(2):
        alone = unlearn_from_run(digits_run, forget, "retrain", None, seed=s, device="cpu").model
        np.testing.assert_allclose(p[s], true_label_probability(alone, x, y), atol=1e-4)
