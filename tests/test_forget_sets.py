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
    low, high = forget_by_score(run, "loss", "low", 11), forget_by_score(run, "loss", "high", 10)
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


def test_entanglement_rum_bins(run):
    assert [entanglement_bin(lv, 15) for lv in ("low", "medium", "high")] == [3, 12, 14]
    assert [entanglement_bin(lv, 5) for lv in ("low", "medium", "high")] == [1, 3, 4]
    emb = predict_embeddings(run.model, run.data.x_train).numpy()
    dist = centroid_distance(emb)
    order = np.argsort(dist, kind="stable")
    width = len(dist) // 15
    sets = {lv: forget_by_entanglement(run, 15, lv, 30, construction="rum-bins") for lv in ("low", "medium", "high")}
    for lv, b in [("low", 3), ("medium", 12), ("high", 14)]:
        # RUM's cluster.py: the first n (closest to the centroid) of bin b of N // 15 rows.
        expect = np.sort(run.data.index_train.numpy()[order[b * width:b * width + 30]])
        assert np.array_equal(sets[lv].indices, expect)
        fs = sets[lv]
        assert fs.meta["kind"] == f"entanglement-{lv}" and fs.meta["bins"] == 15 and fs.meta["bin"] == b
        assert fs.meta["construction"] == "rum-bins"
        assert fs.meta["es"] == pytest.approx(run_entanglement(run, fs), rel=1e-9)
    mix = forget_by_entanglement(run, 15, "mix", 31, construction="rum-bins")
    assert len(mix) == 31 and mix.meta["parts"]["low"]["bin"] == 3
    low_part = forget_by_entanglement(run, 15, "low", 11, construction="rum-bins")  # 31 = 11 + 10 + 10
    assert set(low_part.indices) <= set(mix.indices)


def test_entanglement_levels_ordered_by_measured_es(run):
    es = {}
    for seed in (0, 1):
        sets = {lv: forget_by_entanglement(run, level=lv, size=60, seed=seed) for lv in ("low", "medium", "high", "mix")}
        es = {lv: fs.meta["es"] for lv, fs in sets.items()}
        assert es["low"] < es["medium"] < es["high"], es
        for lv, fs in sets.items():
            assert len(fs) == 60 and fs.meta["construction"] == "es-quantiles"
            assert fs.meta["es"] == pytest.approx(run_entanglement(run, fs), rel=1e-6)
        assert sets["low"].meta["es_compact"] <= es["low"] and es["high"] <= sets["high"].meta["es_random"] * 1.5
        parts = sets["mix"].meta["parts"]
        assert [parts[lv]["neighbours"] >= 0 for lv in ("low", "medium", "high")] == [True] * 3
    again = forget_by_entanglement(run, level="high", size=60, seed=1)
    assert np.array_equal(again.indices, sets["high"].indices)


def test_mix_gives_the_remainder_to_low():
    from unlearnkit.difficulty.forget_sets import mix_sizes, select_by_level

    assert mix_sizes(100) == (34, 33, 33)  # RUM's main_forget.py: 34 low, 33 medium, 33 high
    assert mix_sizes(101) == (35, 33, 33) and mix_sizes(99) == (33, 33, 33)
    values = np.arange(300, dtype=float)
    rows = select_by_level(values, True, "mix", 100, center=150.0)
    assert (values[rows] < 100).sum() == 34 and (values[rows] >= 200).sum() == 33


def test_errors(run):
    with pytest.raises(UnlearnkitError, match="larger than the training set"):
        forget_by_score(run, "loss", "high", 10_000)
    with pytest.raises(UnlearnkitError, match="holds .* fewer than --size"):
        forget_by_entanglement(run, 15, "high", 500, construction="rum-bins")
    with pytest.raises(UnlearnkitError, match="unknown construction"):
        forget_by_entanglement(run, 15, "high", 5, construction="kmeans")
    with pytest.raises(UnlearnkitError, match="unknown level"):
        forget_by_score(run, "loss", "extreme", 10)
    with pytest.raises(UnlearnkitError, match=r"--scores grad_norm"):
        forget_by_score(run, "grad_norm", "high", 10)
    with pytest.raises(UnlearnkitError, match="unknown score 'nope'.*registered scores"):
        forget_by_score(run, "nope", "high", 10)
    with pytest.raises(UnlearnkitError, match="at least 3"):
        forget_by_entanglement(run, 2, "low", 10, construction="rum-bins")


def test_cli(run, cli, tmp):
    code, out, _ = cli("forget-set", "by-score", "--run", run.path, "--score", "loss", "--level", "high",
                       "--size", 25, "--out", tmp / "f.json")
    assert code == 0 and "score:loss-high" in out
    fs = load_forget(tmp / "f.json", run.data)
    saved = json.loads((tmp / "f.json").read_text())
    assert len(fs) == 25 and saved["kind"] == "score:loss-high" and "es" in saved and "score_stats" in saved
    code, out, _ = cli("forget-set", "by-entanglement", "--run", run.path, "--bins", 10, "--level", "medium",
                       "--size", 20, "--construction", "rum-bins", "--out", tmp / "e.json")
    assert code == 0 and json.loads((tmp / "e.json").read_text())["bin"] == entanglement_bin("medium", 10)
    code, out, _ = cli("forget-set", "by-entanglement", "--run", run.path, "--level", "mix", "--size", 21,
                       "--seed", 3, "--out", tmp / "m.json")
    saved = json.loads((tmp / "m.json").read_text())
    assert code == 0 and "entanglement-mix" in out and saved["construction"] == "es-quantiles"
    assert set(saved["parts"]) == {"low", "medium", "high"}
    for args, msg in [
        (["by-score", "--score", "loss", "--level", "high", "--size", 99999], "larger than"),
        (["by-score", "--score", "nope", "--level", "high", "--size", 5], "unknown score"),
        (["by-entanglement", "--level", "middle", "--size", 5], "unknown level"),
        (["by-entanglement", "--level", "low", "--size", 5, "--construction", "kmeans"], "unknown construction"),
    ]:
        code, _, err = cli("forget-set", args[0], "--run", run.path, *args[1:], "--out", tmp / "x.json")
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "x.json").exists()


def test_cli_refuses_to_replace_a_forget_file(run, cli, tmp):
    for i, args in enumerate([["by-score", "--score", "loss", "--level", "high"], ["by-entanglement", "--level", "low"]]):
        target = tmp / f"keep{i}.json"
        target.write_text("[1, 2]\n")
        code, _, err = cli("forget-set", args[0], "--run", run.path, *args[1:], "--size", 10, "--out", target)
        assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1, err
        assert target.read_text() == "[1, 2]\n"
        code, _, err = cli("forget-set", args[0], "--run", run.path, *args[1:], "--size", 10, "--out", target,
                           "--overwrite")
        assert code == 0, err
        assert len(json.loads(target.read_text())["indices"]) == 10
