import json
import shutil

import numpy as np
import pandas as pd
import pytest

from unlearnkit import UnlearnkitError, load_run
from unlearnkit.data import load_forget
from unlearnkit.difficulty import forget_by_entanglement, forget_by_score, run_entanglement, score_run
from unlearnkit.difficulty.forget_sets import entanglement_bin
from unlearnkit.difficulty.geometry import centroid_distance
from unlearnkit.training import predict_embeddings


@pytest.fixture(scope="module")
def run(digits_run, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("fs") / "run"
    shutil.copytree(digits_run.path, path)
    r = load_run(path, data=digits)
    score_run(r, "confidence,loss,margin")
    return r


def values_of(run, fs, score):
    table = pd.read_parquet(run.path / "scores.parquet").set_index("index")
    return table.loc[fs.indices, score].to_numpy()


@pytest.mark.parametrize("score,higher_is_harder", [("loss", True), ("confidence", False)])
def test_levels_follow_hardness(run, score, higher_is_harder):
    sets = {lv: forget_by_score(run, score, lv, 40) for lv in ("low", "medium", "high", "mix")}
    assert all(len(fs) == 40 for fs in sets.values())
    mean = {lv: values_of(run, fs, score).mean() for lv, fs in sets.items()}
    sign = 1 if higher_is_harder else -1
    assert sign * mean["low"] < sign * mean["medium"] < sign * mean["high"]
    table = pd.read_parquet(run.path / "scores.parquet")
    all_vals = table[score].to_numpy()
    hardness = sign * all_vals
    # low = exactly the 40 least hard, high = the 40 hardest.
    assert sign * values_of(run, sets["low"], score).max() <= np.sort(hardness)[39] + 1e-12
    assert sign * values_of(run, sets["high"], score).min() >= np.sort(hardness)[-40] - 1e-12
    # medium = the 40 closest to the median.
    med = np.median(all_vals)
    assert np.abs(values_of(run, sets["medium"], score) - med).max() <= np.sort(np.abs(all_vals - med))[39] + 1e-12
    meta = sets["high"].meta
    assert meta["kind"] == f"score:{score}-high" and meta["level"] == "high" and meta["size"] == 40
    assert meta["score_stats"]["mean"] == pytest.approx(mean["high"])
    assert meta["higher_is_harder"] is higher_is_harder


def test_mix_is_thirds(run):
    mix = forget_by_score(run, "loss", "mix", 31)
    assert len(mix) == 31
    low, high = forget_by_score(run, "loss", "low", 10), forget_by_score(run, "loss", "high", 11)
    assert set(low.indices) <= set(mix.indices) and set(high.indices) <= set(mix.indices)
    middle = np.setdiff1d(mix.indices, np.union1d(low.indices, high.indices))
    assert len(middle) == 10
    med = np.median(pd.read_parquet(run.path / "scores.parquet")["loss"])
    assert np.abs(values_of(run, mix, "loss")[np.isin(mix.indices, middle)] - med).max() < np.abs(
        values_of(run, high, "loss") - med).min()


def test_es_recorded_and_matches(run):
    fs = forget_by_score(run, "margin", "high", 50)
    assert fs.meta["es"] == pytest.approx(run_entanglement(run, fs), rel=1e-9)
    assert fs.meta["run"]["weights_sha256"] == run.meta["weights_sha256"]


def test_memorization_table_centre_is_half():
    idx = np.arange(200)
    mem = np.linspace(0, 1, 200) ** 3  # median far below 0.5
    table = pd.DataFrame({"index": idx, "label": 0, "memorization": mem})
    fs = forget_by_score(table, "memorization", "medium", 20)
    assert fs.meta["kind"] == "memorization-medium" and fs.meta["center"] == 0.5
    assert np.abs(mem[fs.indices] - 0.5).max() <= np.sort(np.abs(mem - 0.5))[19]
    assert abs(mem[fs.indices].mean() - 0.5) < 0.02 and np.median(mem) < 0.2
    assert "es" not in fs.meta
    high = forget_by_score(table, "memorization", "high", 20)
    assert set(high.indices) == set(range(180, 200))


def test_entanglement_bins(run):
    assert [entanglement_bin(lv, 15) for lv in ("low", "medium", "high")] == [3, 12, 14]
    assert [entanglement_bin(lv, 5) for lv in ("low", "medium", "high")] == [1, 3, 4]
    emb = predict_embeddings(run.model, run.data.x_train).numpy()
    dist = pd.Series(centroid_distance(emb), index=run.data.index_train.numpy())
    sets = {lv: forget_by_entanglement(run, 15, lv, 30, seed=0) for lv in ("low", "medium", "high")}
    d = {lv: dist.loc[fs.indices] for lv, fs in sets.items()}
    assert d["low"].max() < d["medium"].min() and d["medium"].max() <= d["high"].min()
    # Bin 14 of 15: exactly the top 15th of distances.
    n = len(dist)
    top = np.sort(dist.to_numpy())[-(n // 15):]
    assert d["high"].min() >= top.min() - 1e-9
    for lv, fs in sets.items():
        assert fs.meta["kind"] == f"entanglement-{lv}" and fs.meta["bins"] == 15
        assert fs.meta["es"] == pytest.approx(run_entanglement(run, fs), rel=1e-9)
        assert fs.meta["score_stats"]["mean"] == pytest.approx(d[lv].mean(), rel=1e-6)
    again = forget_by_entanglement(run, 15, "high", 30, seed=0)
    other = forget_by_entanglement(run, 15, "high", 30, seed=1)
    assert np.array_equal(again.indices, sets["high"].indices)
    assert not np.array_equal(other.indices, sets["high"].indices)


def test_errors(run):
    with pytest.raises(UnlearnkitError, match="larger than the training set"):
        forget_by_score(run, "loss", "high", 10_000)
    with pytest.raises(UnlearnkitError, match="holds .* fewer than --size"):
        forget_by_entanglement(run, 15, "high", 500)
    with pytest.raises(UnlearnkitError, match="unknown level"):
        forget_by_score(run, "loss", "extreme", 10)
    with pytest.raises(UnlearnkitError, match=r"--scores grad_norm"):
        forget_by_score(run, "grad_norm", "high", 10)
    with pytest.raises(UnlearnkitError, match="unknown score 'nope'.*registered scores"):
        forget_by_score(run, "nope", "high", 10)
    with pytest.raises(UnlearnkitError, match="at least 3"):
        forget_by_entanglement(run, 2, "low", 10)


def test_cli(run, cli, tmp):
    code, out, _ = cli("forget-set", "by-score", "--run", run.path, "--score", "loss", "--level", "high",
                       "--size", 25, "--out", tmp / "f.json")
    assert code == 0 and "score:loss-high" in out
    fs = load_forget(tmp / "f.json", run.data)
    saved = json.loads((tmp / "f.json").read_text())
    assert len(fs) == 25 and saved["kind"] == "score:loss-high" and "es" in saved and "score_stats" in saved
    code, out, _ = cli("forget-set", "by-entanglement", "--run", run.path, "--bins", 10, "--level", "medium",
                       "--size", 20, "--seed", 3, "--out", tmp / "e.json")
    assert code == 0 and json.loads((tmp / "e.json").read_text())["bin"] == entanglement_bin("medium", 10)
    for args, msg in [
        (["by-score", "--score", "loss", "--level", "high", "--size", 99999], "larger than"),
        (["by-score", "--score", "nope", "--level", "high", "--size", 5], "unknown score"),
        (["by-entanglement", "--level", "middle", "--size", 5], "unknown level"),
    ]:
        code, _, err = cli("forget-set", args[0], "--run", run.path, *args[1:], "--out", tmp / "x.json")
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "x.json").exists()
