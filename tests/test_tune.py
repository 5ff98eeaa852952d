"""Tuning (unlearnkit.meta.tune) and presets (unlearnkit.methods.presets) on tiny digits runs:
validation sets matched to a forget set's difficulty, the successive-halving search and its
cost cap, collapse detection, the preset fallback chain and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from unlearnkit.data import ForgetSet, save_forget
from unlearnkit.data.forget import class_forget_set, random_forget_set
from unlearnkit.difficulty.forget_sets import forget_by_score
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import read_json
from unlearnkit.meta.tune import best_row, search, tune, update_preset, validation_forget_set, wide_grid
from unlearnkit.methods import METHODS, preset_for
from unlearnkit.methods.presets import fallback_chain, load_presets, lookup, merge_preset, preset_kind


@pytest.fixture(scope="module")
def scores(digits_run) -> pd.DataFrame:
    """A synthetic per-example score (seeded), standing in for memorization."""
    idx = digits_run.data.index_train.numpy()
    return pd.DataFrame({"index": idx, "memorization": np.random.default_rng(0).random(len(idx))})


@pytest.fixture(scope="module")
def high(scores) -> ForgetSet:
    return forget_by_score(scores, "memorization", "high", 40, seed=0)


def labels(run, fs: ForgetSet) -> pd.Series:
    y = pd.Series(run.data.y_train.numpy(), index=run.data.index_train.numpy())
    return y.loc[fs.indices].value_counts().sort_index()


def test_tune_selects_by_tow_on_a_disjoint_validation_set(digits_run, tmp):
    forget = random_forget_set(digits_run.data, 100, seed=0)
    grid = {"lr": [0.01, 0.05], "epochs": [1]}
    res = tune(digits_run, "finetune", grid=grid, val_size=60, avoid=forget.indices, reference_dir=tmp)
    assert len(res.table) == 2 and res.chosen["lr"] in (0.01, 0.05) and res.chosen["epochs"] == 1
    assert res.tow == res.table["tow"].max() and 0 < res.tow <= 1
    assert not set(res.val_forget.indices) & set(forget.indices)
    assert len(list(tmp.glob("tune-reference-*"))) == 1  # the reference run is cached on disk
    again = tune(digits_run, "finetune", grid=grid, val_size=60, avoid=forget.indices, reference_dir=tmp)
    assert again.chosen == res.chosen and again.reference == res.reference
    json.dumps(res.to_dict())
    with pytest.raises(UnlearnkitError, match="no hyperparameters"):
        tune(digits_run, "retrain")


def test_validation_set_matches_the_difficulty_and_class_mix(digits_run, scores, high):
    s = scores.set_index("index")["memorization"]
    avoid = random_forget_set(digits_run.data, 80, seed=3).indices
    val = validation_forget_set(digits_run, like=high, scores=scores, avoid=avoid)
    assert len(val) == len(high) and not set(val.indices) & (set(high.indices) | set(avoid))
    assert labels(digits_run, val).equals(labels(digits_run, high))
    assert s.loc[val.indices].min() > s.quantile(0.8)  # a high set gets a high set
    assert 0 < val.meta["quantile_shift"] <= 0.2 and val.meta["like"] == "memorization-high"
    # the random like: its class counts, at random; the class like: another whole class
    rnd = random_forget_set(digits_run.data, 50, seed=1)
    vr = validation_forget_set(digits_run, like=rnd)
    assert labels(digits_run, vr).equals(labels(digits_run, rnd)) and not set(vr.indices) & set(rnd.indices)
    assert vr.indices.tolist() != rnd.indices.tolist()
    c3 = class_forget_set(digits_run.data, 3)
    vc = validation_forget_set(digits_run, like=c3)
    assert len(labels(digits_run, vc)) == 1 and vc.meta["class"] != 3
    # a class that runs out of candidates is matched from other classes, and says how many
    y = digits_run.data.y_train.numpy()
    threes = digits_run.data.index_train.numpy()[y == 3]
    lopsided = ForgetSet(threes[: len(threes) * 2 // 3], {"kind": "memorization-high", "score": "memorization"})
    vl = validation_forget_set(digits_run, like=lopsided, scores=scores, tolerance=1.0)
    k = len(threes) - len(lopsided)
    assert vl.meta["class_mismatched"] == len(lopsided) - k and (labels(digits_run, vl).get(3, 0) == k)
    # a score missing for some examples (NaN) is never matched on
    holes = scores.assign(memorization=scores["memorization"].where(~scores["index"].isin(val.indices)))
    again = validation_forget_set(digits_run, like=high, scores=holes)
    assert not set(again.indices) & set(val.indices)


def test_validation_set_bad_input(digits_run, scores):
    big = forget_by_score(scores, "memorization", "high", 400, seed=0)
    with pytest.raises(UnlearnkitError, match=r"shifts score quantiles by 0\.\d\d .* at most about \d+ examples"):
        validation_forget_set(digits_run, like=big, scores=scores)
    half = random_forget_set(digits_run.data, int(digits_run.data.n_train * 0.6), seed=0)
    with pytest.raises(UnlearnkitError, match="at most about"):
        validation_forget_set(digits_run, like=half)
    other_run = ForgetSet(np.arange(20), {"kind": "memorization-high", "score": "memorization",
                                          "run": {"weights_sha256": "0" * 64}})
    with pytest.raises(UnlearnkitError, match="built on another run"):
        validation_forget_set(digits_run, like=other_run, scores=scores)
    with pytest.raises(UnlearnkitError, match="dataset 'wine'"):
        validation_forget_set(digits_run, like=ForgetSet(np.arange(20), {"kind": "random", "dataset": "wine"}))
    with pytest.raises(UnlearnkitError, match="--val-size does not apply"):
        validation_forget_set(digits_run, 10, like=big)
    with pytest.raises(UnlearnkitError, match="no score 'margin'"):
        validation_forget_set(digits_run, like=ForgetSet(digits_run.data.index_train.numpy()[:20],
                                                          {"kind": "score:margin-high", "score": "margin"}))


def test_search_halves_over_epochs_and_respects_the_cost_cap():
    calls = []

    def evaluate(point):  # ToW grows with lr and epochs; 100 examples per epoch
        calls.append(dict(point))
        return {"tow": point["lr"] + point["epochs"] / 100, "examples_processed": 100 * point["epochs"]}

    grid = {"lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "epochs": [1, 2, 5]}
    table = search(grid, evaluate, eta=3)
    assert table.groupby("rung").size().tolist() == [6, 2, 1]  # successive halving: 6 -> 2 -> 1
    assert set(table.loc[table["rung"] == 1, "lr"]) == {0.5, 0.6}
    best = best_row(table)
    assert best["lr"] == 0.6 and best["epochs"] == 5
    calls.clear()
    capped = search(grid, evaluate, budget=250, eta=3)
    assert all(c["epochs"] <= 2 for c in calls)  # the 5-epoch point (500 examples) is predicted over the cap
    assert best_row(capped)["epochs"] == 2
    assert best_row(search({"lr": [0.1], "epochs": [5]}, evaluate, budget=250)) is None  # ran, over the cap


def test_search_breaks_tow_ties_by_margin_gap_so_strong_settings_advance():
    # An interpolating original: no prediction flips at 1 epoch, so every lr ties on ToW; only the
    # largest lr goes on to flip predictions at more epochs. The margin gap (distance to the
    # reference's margins) already shrinks with lr at 1 epoch and must carry it through the halving.
    def evaluate(point):
        moved = point["lr"] * point["epochs"]
        tow = 0.5 if point["epochs"] == 1 else 0.5 + moved / 10
        return {"tow": tow, "margin_gap": 10 - moved, "examples_processed": 100 * point["epochs"]}

    grid = {"lr": [1e-4, 1e-3, 1e-2, 1e-1], "epochs": [1, 5, 10]}
    table = search(grid, evaluate, eta=3)
    assert set(table.loc[table["rung"] == 1, "lr"]) == {1e-1, 1e-2}
    best = best_row(table)
    assert best["lr"] == 1e-1 and best["epochs"] == 10
    # without a margin gap, ties fall back to the cheaper point (every rung-0 point costs the same: first wins)
    plain = search(grid, lambda p: {k: v for k, v in evaluate(p).items() if k != "margin_gap"}, eta=3)
    assert set(plain.loc[plain["rung"] == 1, "lr"]) == {1e-4, 1e-3}


def test_confirming_on_a_second_original_rejects_a_setting_that_only_works_on_one():
    from unlearnkit.meta.tune import _confirm

    grid = {"lr": [0.01, 0.1], "epochs": [1]}
    first = {0.01: 0.80, 0.1: 0.95}  # lr 0.1 wins on the tuning original...
    second = {0.01: 0.79, 0.1: 0.20}  # ...and diverges on the other one
    table = search(grid, lambda p: {"tow": first[p["lr"]], "margin_gap": 0.0, "examples_processed": 10})
    assert best_row(table)["lr"] == 0.1
    confirmed = _confirm(table, list(grid), [lambda p: {"tow": second[p["lr"]], "margin_gap": 0.0}], top=3)
    best = best_row(confirmed)
    assert best["lr"] == 0.01 and best["tow"] == 0.80 and best["tow_confirm"] == 0.79  # table values kept as run


def test_several_confirming_originals_weigh_as_much_as_their_number():
    from unlearnkit.meta.tune import _confirm

    grid = {"lr": [0.01, 0.1], "epochs": [1]}
    first = {0.01: 0.70, 0.1: 0.99}  # lr 0.1 is far ahead on the tuning original...
    other = {0.01: 0.75, 0.1: 0.60}  # ...and behind on each of three others
    table = search(grid, lambda p: {"tow": first[p["lr"]], "margin_gap": 0.0, "examples_processed": 10})
    one = _confirm(table, list(grid), [lambda p: {"tow": other[p["lr"]], "margin_gap": 0.0}], top=3)
    assert best_row(one)["lr"] == 0.1  # (0.99 + 0.60) / 2 > (0.70 + 0.75) / 2
    three = _confirm(table, list(grid), [lambda p: {"tow": other[p["lr"]], "margin_gap": 0.0}] * 3, top=3)
    best = best_row(three)
    # mean over the four originals: (0.70 + 3 * 0.75) / 4 = 0.74 > (0.99 + 3 * 0.60) / 4 = 0.70
    assert best["lr"] == 0.01 and best["confirm_n"] == 3 and best["tow_confirm"] == 0.75


def test_wide_grid_covers_lr_epochs_and_the_methods_own_axes():
    g = wide_grid("salun", max_epochs=10)
    assert min(g["lr"]) <= 1e-4 and max(g["lr"]) >= 1e-1 and g["epochs"] == [1, 2, 5, 10] and "mask_ratio" in g
    assert set(wide_grid("scrub", 3)) == {"lr", "batch_size", "epochs", "msteps", "temperature"}
    assert wide_grid("scrub", 3)["epochs"] == [1, 2, 3] and len(wide_grid("finetune", 3)["batch_size"]) >= 2
    assert "alpha" in wide_grid("l1_sparse", 10) and "damping" in wide_grid("influence", 10)


def test_tune_like_with_a_cost_cap_and_collapse_flag(digits_run, scores, high, tmp):
    res = tune(digits_run, "finetune", grid={"lr": [0.01, 0.1], "epochs": [1, 2, 5]}, like=high, scores=scores,
               max_cost=0.2, reference_dir=tmp)
    assert res.val_forget.meta["match"] == "score and class" and res.cost <= 0.2
    assert (res.table.loc[res.table["eligible"], "cost"] <= 0.2).all()
    assert res.chosen["epochs"] <= 2  # 5 of the original's 15 epochs is over 0.2 of retraining
    assert res.to_dict()["cost"] == res.cost and res.collapsed_to is None
    with pytest.raises(UnlearnkitError, match="--max-cost must be > 0"):
        tune(digits_run, "finetune", max_cost=0)
    point = {"lr": [0.05], "epochs": [1]}
    zero = tune(digits_run, "l1_sparse", grid={**point, "alpha": [0.0]}, val_size=40, reference_dir=tmp)
    assert zero.collapsed_to == "finetune"
    noop = tune(digits_run, "finetune", grid={"lr": [1e-6], "epochs": [1]}, val_size=40, reference_dir=tmp)
    assert noop.collapsed_to == "original"
    update_preset(tmp / "p.json", noop, dataset="digits", model="mlp", kind="random", command="x")
    update_preset(tmp / "p.json", zero, dataset="digits", model="mlp", kind="random", command="y")
    preset = read_json(tmp / "p.json")
    assert "finetune" not in preset["mlp"]["random"] and preset["mlp"]["random"]["l1_sparse"] == zero.chosen
    assert preset["_provenance"]["mlp/random/finetune"]["shipped"] is False  # a no-op is recorded, not shipped
    assert preset["_provenance"]["mlp/random/l1_sparse"]["collapsed_to"] == "finetune"
    real = tune(digits_run, "l1_sparse", grid={**point, "alpha": [1e-2]}, val_size=40, reference_dir=tmp)
    assert real.collapsed_to is None


def test_preset_fallback_chain_and_validation(tmp):
    assert fallback_chain("mlp", "class-3") == [("mlp", "class"), ("mlp", "*"), ("*", "class"), ("*", "*")]
    assert preset_kind("score:confidence-high") == "memorization-high" and preset_kind("validation") == "*"
    path = tmp / "p.json"
    merge_preset(path, "mlp", "memorization-high", "finetune", {"lr": 0.1, "epochs": 2}, {"command": "x"}, methods=METHODS)
    merge_preset(path, "*", "*", "finetune", {"lr": 0.01}, {"command": "y"}, methods=METHODS)
    assert lookup(None, "finetune", "mlp", "memorization-high", path=path, methods=METHODS)[:2] == ({"lr": 0.1, "epochs": 2}, f"{path}/mlp/memorization-high")
    assert lookup(None, "finetune", "cnn", "random", path=path, methods=METHODS)[0] == {"lr": 0.01}
    assert lookup(None, "salun", "mlp", "random", path=path, methods=METHODS) == ({}, None, {})
    assert read_json(path)["_provenance"]["mlp/memorization-high/finetune"] == {"command": "x"}
    for bad, message in [
        ({"mlp": {"random": {"finetun": {}}}}, "mlp.random: unknown method 'finetun'"),
        ({"mlp": {"random": {"finetune": {"lrr": 1}}}}, "mlp.random.finetune: unknown key 'lrr'"),
        ({"mlp": {"hard": {}}}, "mlp.hard: unknown forget-set kind"),
        ({"nope": {}}, "unknown model family 'nope'"),
        ({"mlp": {"random": {"imu_uniform": {"lr": 0.1}}}}, "mlp.random.imu_uniform: 'imu_uniform' runs at 'imu''s presets"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(UnlearnkitError, match=message.replace(".", r"\.")) as e:
            load_presets(path=path, methods=METHODS)
        assert "\n" not in str(e.value)


def test_an_ablation_runs_at_its_methods_presets_and_tuned_values(tmp):
    """imu_uniform differs from imu in its weighting alone: the same presets, and in a bench imu's tuning."""
    from unlearnkit.experiments import validate_config
    from unlearnkit.experiments.plan import build_plan

    path = tmp / "p.json"
    merge_preset(path, "mlp", "random", "imu", {"lr": 0.05, "epochs": 3}, {"command": "x"}, methods=METHODS)
    assert lookup(None, "imu_uniform", "mlp", "random", path=path, methods=METHODS)[0] == {"lr": 0.05, "epochs": 3}
    assert preset_for("digits", "imu_uniform", "mlp", "memorization-high") == preset_for("digits", "imu", "mlp", "memorization-high")
    cfg = validate_config({**TUNED_BENCH, "methods": {"imu": {}, "imu_uniform": {}},
                           "tuning": {"per": "none", "grid": "small"}})
    assert cfg.tuning.tuned_methods(list(cfg.methods)) == ["imu"]
    units = build_plan(cfg, {}).units
    tunes = {dict(u.deps)["tuning"].label for u in units if u.kind == "unlearn" and "tuning" in dict(u.deps)}
    assert tunes == {"imu *"}  # both methods' unlearn units depend on imu's one tune unit
    assert sum(1 for u in units if u.kind == "unlearn" and u.inputs["method"] == "imu_uniform" and "tuning" in dict(u.deps)) > 0


def test_shipped_presets_validate_and_ignore_metadata():
    assert preset_for("digits", "_provenance") == {}
    for name in ("digits", "fashion-mnist"):
        data = load_presets(name, methods=METHODS)
        for model, kinds in data.items():
            if model.startswith("_"):
                continue
            for kind, methods in kinds.items():
                for method, values in methods.items():
                    METHODS.get(method).resolve_params(None, values)
        assert not any(s in json.dumps(data) for s in ("/tmp/", "/home/", "/work/", "/root/"))  # no machine paths


def test_tune_cli_like_writes_choice_grid_and_preset_kind(cli, digits_run, scores, high, tmp):
    like = tmp / "high.json"
    save_forget(like, high)
    scores.to_parquet(tmp / "scores.parquet")  # the CLI reads the run's scores; give it a copy of the run


    run_dir = tmp / "run"
    shutil.copytree(digits_run.path, run_dir)
    shutil.copy(tmp / "scores.parquet", run_dir / "scores.parquet")
    code, out, err = cli("tune", "--run", run_dir, "--method", "random_label", "--like", like, "--out", tmp / "t" / "tune.json",
                         "--update-preset", tmp / "preset.json", "-q")
    assert code == 0, err
    res = read_json(tmp / "t" / "tune.json")
    assert len(res["grid"]) == 3 + 1 and set(res["chosen"]) == {"lr", "epochs"}  # 3 lr at 1 epoch, the best at 5
    assert res["validation_forget"]["like"] == "memorization-high" and res["validation_forget"]["size"] == 40
    preset = read_json(tmp / "preset.json")
    assert res["collapsed_to"] is None and preset["mlp"]["memorization-high"]["random_label"] == res["chosen"]
    prov = preset["_provenance"]["mlp/memorization-high/random_label"]
    assert str(tmp) not in prov["command"] and "train" in prov and "date" in prov
    assert list((tmp / "t").glob("tune-reference-*"))  # the reference is cached beside the output
    # unlearn says which preset applied and the resolved hyperparameters
    code, out, err = cli("unlearn", "--run", run_dir, "--forget", like, "--method", "finetune", "--set", "epochs=1",
                         "--out", tmp / "u", "-q")
    assert code == 0, err
    assert "finetune hyperparameters (preset digits/" in out and "overridden by --set epochs" in out and "epochs=1" in out
    # the shipped preset was tuned on the demo's 30-epoch original; this run trained 15: said, with the remedy
    assert "tuned on an original trained with epochs=30" in " ".join(out.split()) and "(this run: epochs=15" in " ".join(out.split())


@pytest.mark.parametrize("args, message", [
    (["--max-cost", "0"], "--max-cost must be > 0"),
    (["--grid", "huge"], "unknown grid 'huge'"),
    (["--like", "WINE"], "dataset 'wine'"),
    (["--update-preset", "BAD"], "unknown method 'finetun'"),
])
def test_tune_cli_bad_input(cli, digits_run, tmp, args, message):
    (tmp / "wine.json").write_text(json.dumps({"indices": [1, 2, 3], "kind": "random", "dataset": "wine"}))
    (tmp / "bad.json").write_text(json.dumps({"mlp": {"random": {"finetun": {"lr": 1}}}}))
    args = [{"WINE": tmp / "wine.json", "BAD": tmp / "bad.json"}.get(a, a) for a in args]
    code, _, err = cli("tune", "--run", digits_run.path, "--method", "finetune", *args, "--out", tmp / "t.json")
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "t.json").exists()


TUNED_BENCH = {
    "name": "tiny-tuned",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "width": 16},
    "training": {"epochs": 4, "lr": 0.1},
    "seeds": [0, 1],
    "forget_sets": [{"kind": "random", "size": 30}, {"kind": "score", "score": "confidence", "level": "high", "size": 30},
                    {"kind": "score", "score": "confidence", "level": "low", "size": 0.45}],  # too large to match
    "scores": ["confidence"],
    "methods": {"finetune": {"batch_size": 64}},
    "metrics": {"mia_max_per_side": 100},
    "tuning": {"per": "forget_kind", "grids": {"finetune": {"lr": [0.01, 0.1], "epochs": [1, 2]}}, "max_cost": 0.3,
               "validation": "match"},
}


def test_bench_tunes_once_per_forget_kind_and_records_params(cli, tmp):
    from unlearnkit.experiments import read_results, run_bench, validate_config

    cfg = validate_config(TUNED_BENCH)
    out = run_bench(cfg, tmp / "b", report=False)
    assert not out.failures
    tunes = [f for f in sorted((tmp / "b" / "units" / "tune").glob("*/unit.json")) if "skipped" not in read_json(f)["summary"]]
    assert len(tunes) == 2  # one method x the two forget kinds that can be matched, not per seed
    skipped = [read_json(f)["summary"] for f in (tmp / "b" / "units" / "tune").glob("*/unit.json")]
    assert len(skipped) == 3 and sum("skipped" in s for s in skipped) == 1  # the 45% set: presets kept
    chosen = {}
    evaluated = set()
    for f in (tmp / "b" / "units" / "forget").glob("*/forget.json"):
        evaluated |= set(read_json(f)["indices"])
    for f in tunes:
        rec = read_json(f)
        res = read_json(f.parent / "tune.json")
        assert not set(res["validation_forget"]["indices"]) & evaluated  # never tuned on an evaluated set
        assert res["cost"] <= 0.3 and rec["summary"]["chosen"] == res["chosen"]
        assert 0 <= res["tow_confirm"] <= 1  # confirmed on the second seed's original
        chosen[res["validation_forget"]["like"]] = res["chosen"]
    assert set(chosen) == {"random", "confidence-high"}
    df = read_results(tmp / "b")
    ft = df[df["method"] == "finetune"]
    for _, r in ft[ft["forget_kind"] != "confidence-low"].iterrows():
        params = json.loads(r["params"])
        kind = "random" if r["forget_kind"] == "random" else "confidence-high"
        assert {k: params[k] for k in chosen[kind]} == chosen[kind] and params["batch_size"] == 64
    assert (df.loc[df["method"] == "original", "params"] == "{}").all()
    assert run_bench(cfg, tmp / "b", report=False).units_run == 0  # tuning is cached work
    code, out, err = cli("tune-presets", tmp / "b", "--update-preset", tmp / "p.json")
    assert code == 0, err
    preset = read_json(tmp / "p.json")
    assert preset["mlp"]["random"]["finetune"] == chosen["random"]
    assert preset["mlp"]["memorization-high"]["finetune"] == chosen["confidence-high"]  # a proxy's high set
    assert "tune-presets b" in preset["_provenance"]["mlp/random/finetune"]["command"]
    with pytest.raises(UnlearnkitError, match="tuning.methods.0: 'retrain' is exact"):
        validate_config({**TUNED_BENCH, "methods": {"finetune": {}, "retrain": {}},
                         "tuning": {"methods": ["retrain"]}})
    with pytest.raises(UnlearnkitError, match="tuning.max_cost"):
        validate_config({**TUNED_BENCH, "tuning": {"max_cost": 0}})


def test_bench_reserve_gives_every_kind_a_validation_set_as_hard_as_its_evaluated_sets(tmp):
    from unlearnkit.data import load_dataset
    from unlearnkit.data.forget import tuning_reserve
    from unlearnkit.experiments import run_bench, validate_config

    cfg = validate_config({**TUNED_BENCH, "seeds": [0], "tuning": {**TUNED_BENCH["tuning"], "validation": "reserve"}})
    out = run_bench(cfg, tmp / "r", report=False)
    assert not out.failures
    reserve = set(tuning_reserve(load_dataset("digits"), 0.5, cfg.tuning.val_seed).tolist())
    evaluated = {}
    for f in (tmp / "r" / "units" / "forget").glob("*/forget.json"):
        rec = read_json(f)
        assert not set(rec["indices"]) & reserve  # evaluated sets never touch the reserve
        evaluated[rec["label"]] = rec
    vals = {}
    for f in (tmp / "r" / "units" / "tune_validation").glob("*/forget.json"):
        rec = read_json(f)
        assert set(rec["indices"]) <= reserve
        vals[rec["like"]] = rec
    assert set(vals) == set(evaluated)  # every kind tuned, the 45% set included (no match refused)
    for label in ("confidence-high", "confidence-low"):
        ev, va = evaluated[label]["score_stats"], vals[label]["score_stats"]
        overall = evaluated[label]["score_stats_all"]["mean"]
        # the validation set sits where the evaluated set does, far from the average example
        assert abs(va["mean"] - ev["mean"]) < 0.25 * abs(ev["mean"] - overall), (label, ev, va, overall)
    assert len(vals["confidence-high"]["indices"]) == len(evaluated["confidence-high"]["indices"]) == 30


def test_when_nothing_beats_doing_nothing_the_setting_moving_the_original_least_wins():
    grid = {"lr": [1e-4, 0.1], "epochs": [1, 30]}
    # every setting ties with the original (ToW 1.0); the strongest has the smallest margin gap
    # (moves toward the reference's margins) and the largest shift from the original's
    moved = {(1e-4, 1): 0.01, (1e-4, 30): 0.2, (0.1, 1): 2.0, (0.1, 30): 5.0}
    table = search(grid, lambda p: {"tow": 1.0, "margin_gap": 6.0 - moved[p["lr"], p["epochs"]],
                                    "margin_shift": moved[p["lr"], p["epochs"]],
                                    "examples_processed": 10 * p["epochs"]}, eta=1)
    assert (best_row(table)["lr"], best_row(table)["epochs"]) == (0.1, 30)  # no baseline: the margin gap
    least = best_row(table, baseline=1.0)
    assert (least["lr"], least["epochs"]) == (1e-4, 1)
    # a setting a step above doing nothing: the margin gap ranks the settings as before
    assert best_row(table, baseline=0.98)["epochs"] == 30


def test_bench_confirms_on_every_other_seeds_original_or_the_number_asked():
    from importlib import resources

    from unlearnkit.experiments.config import load_config
    from unlearnkit.experiments.plan import build_plan

    cfg = load_config(resources.files("unlearnkit").joinpath("configs", "demo.yaml"))
    train_label = {u.key: u.label for u in build_plan(cfg, {}).units if u.kind == "train"}  # "seed N"

    def confirming(tuning: dict) -> set[tuple]:
        plan = build_plan(cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update=tuning)}), {})
        return {tuple(train_label[d.key] for k, d in u.deps if k.startswith("confirm"))
                for u in plan.units if u.kind in ("tune", "tune_validation")}

    assert confirming({"confirm": True}) == {tuple(f"seed {s}" for s in cfg.seeds[1:])}  # the demo's 5 seeds: 4 confirm
    assert confirming({"confirm": 2}) == {tuple(f"seed {s}" for s in cfg.seeds[1:3])}
    assert confirming({"confirm": False}) == {()}
