"""How the bench scores rows: SISA against its own exact reference, seed vs mean pairing."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnkit.experiments import read_results, run_bench, validate_config
from unlearnkit.experiments.plan import build_plan
from unlearnkit.experiments.runner import collect_results

SISA = {
    "name": "sisa-scoring",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "width": 16},
    "training": {"epochs": 2, "lr": 0.1},
    "seeds": [0, 1],
    "forget_sets": [{"kind": "random", "size": 30}],
    "scores": ["confidence"],
    "methods": {"sisa": {}, "finetune": {"epochs": 1}},
    "sisa": {"shards": 2, "slices": 2},
    "metrics": {"mia_max_per_side": 100, "mia_repeats": 2},
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("sisa") / "out"
    run_bench(validate_config(SISA), out, report=False)
    return out


def test_sisa_rows_use_the_sisa_ensemble_without_s(bench):
    cfg = validate_config(SISA)
    plan = build_plan(cfg, {})
    sisa_rows = [r for r in plan.rows if r.setup["method"] == "sisa"]
    assert len(sisa_rows) == 2
    for r in sisa_rows:
        assert r.reference.kind == "sisa_train" and dict(r.reference.deps)["forget"] is r.forget
        assert r.retrain is not None and r.retrain.inputs["method"] == "retrain"
    others = [r for r in plan.rows if r.setup["method"] != "sisa"]
    assert all(r.reference.kind == "unlearn" and r.retrain is None for r in others)

    df = read_results(bench)
    sisa = df[df["method"] == "sisa"]
    # Exact by construction: the unlearned ensemble is the ensemble trained without S.
    assert (sisa["tow"] == 1.0).all() and (sisa["tow_mia"] == 1.0).all()
    # Its accuracy loss and cost are against the single-model retrain, reported beside.
    ft = df[df["method"] == "finetune"].set_index("seed")
    for _, row in sisa.iterrows():
        assert row["retrain_test_acc"] == ft.loc[row["seed"], "ref_test_acc"]
        assert row["retrain_seconds"] == ft.loc[row["seed"], "ref_seconds"]
    assert (ft["retrain_test_acc"] == ft["ref_test_acc"]).all()
    assert df["mia_auc"].between(0, 1).all() and (df["mia_efficacy_sd"] >= 0).all()


def test_mean_pairing_scores_against_the_mean_reference(bench):
    seed_cfg = validate_config(SISA)
    mean_cfg = validate_config({**SISA, "metrics": {**SISA["metrics"], "pairing": "mean"}})
    paired = collect_results(build_plan(seed_cfg, {}), bench, seed_cfg)
    mean = collect_results(build_plan(mean_cfg, {}), bench, mean_cfg)
    assert len(paired) == len(mean) == 6, (len(paired), len(mean))
    ft = paired[paired["method"] == "finetune"]
    ft_mean = mean[mean["method"] == "finetune"]
    for col in ("ref_forget_acc", "ref_retain_acc", "ref_test_acc"):
        assert np.allclose(ft_mean[col].to_numpy(float), ft[col].mean())
    assert not np.allclose(ft_mean["tow"].to_numpy(float), ft["tow"].to_numpy(float))
