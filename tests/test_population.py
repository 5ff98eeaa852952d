"""The bench's population block: N originals and N oracles from the ensemble engine, every method
unlearning each original, per-example ε / F / final score / KLoM p95 in population.parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from test_bench import TINY
from unlearnkit.data import load_forget
from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments import run_bench, validate_config
from unlearnkit.experiments.population import (
    NOISE_FLOOR,
    ORACLES,
    ORIGINAL,
    ORIGINALS,
    POPULATION,
    POPULATION_COLUMNS,
    Outputs,
    population_scores,
)
from unlearnkit.runs import new_model
from unlearnkit.training import predict_logits

N = 3
POP = {**TINY, "seeds": [0], "methods": {"finetune": {"epochs": 1}, "neggrad_plus": {}, "sisa": {}},
       "sisa": {"shards": 2, "slices": 1}, "population": {"n": N, "forget_sets": ["random", "memorization-high"]}}


def problems(changes: dict) -> list[str]:
    with pytest.raises(UnlearnkitError) as e:
        validate_config({**POP, "population": {**POP["population"], **changes}})
    return str(e.value).splitlines()


@pytest.mark.parametrize("changes, expected", [
    ({"n": 1}, "config: population.n: per-example ε and KLoM compare two populations of models: n must be at least 2, got 1"),
    ({"forget_sets": ["class-3"]}, "config: population.forget_sets.0: no forget set 'class-3'; this config has: memorization-high, random"),
    ({"methods": ["scrub"]}, "config: population.methods.0: 'scrub' is not among the config's methods: finetune, neggrad_plus, sisa"),
    ({"methods": ["sisa"]}, "config: population.methods.0: 'sisa' is exact (it needs its own shard ensemble); the population runs approximate methods"),
    ({"colour": "red"}, "config: population.colour: unknown key"),
])
def test_bad_population_block_is_one_line(changes, expected):
    assert problems(changes) == [expected]


def test_methods_default_to_the_approximate_ones():
    cfg = validate_config(POP)
    assert cfg.population.methods_of(list(cfg.methods)) == ["finetune", "neggrad_plus"]  # not sisa


def test_cli_refuses_n_below_2_in_one_line(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**POP, "population": {"n": 1, "forget_sets": ["random"]}}))
    code, out, err = cli("bench", cfg, "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in out + err
    assert [ln for ln in err.splitlines() if "population.n" in ln] and "must be at least 2" in err


@pytest.fixture(scope="module")
def pop_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pop") / "out"
    run_bench(validate_config(POP), out)
    return out


def test_population_table_has_every_row_with_finite_values(pop_dir):
    df = pd.read_parquet(pop_dir / POPULATION)
    assert list(df.columns) == POPULATION_COLUMNS
    methods = [ORIGINAL, "finetune", "neggrad_plus", NOISE_FLOOR]
    assert list(df["method"]) == methods * 2  # per forget set: original first, the noise floor last
    assert list(df["forget_kind"]) == ["memorization-high"] * 4 + ["random"] * 4
    assert (df["n"] == N).all() and (df["forget_size"] == 30).all()
    num = [c for c in POPULATION_COLUMNS if c not in ("forget_kind", "method", "params", "forget_quality_grid")]
    assert np.isfinite(df[num].to_numpy(dtype=float)).all()
    assert df["forget_quality_grid"].isna().all()  # scorer_grid is off
    assert df["forget_quality"].between(0, 1).all() and (df["max_epsilon"] == np.ceil(np.log(N - 1))).all()
    assert (df.filter(like="klom_") >= 0).all().all()
    # One set of oracles per forget set: the same reference accuracies on every row of it.
    assert (df.groupby("forget_kind")[["ref_retain_acc", "ref_test_acc"]].nunique() == 1).all().all()
    ft = df[df["method"] == "finetune"]
    assert all(json.loads(p)["epochs"] == 1 for p in ft["params"])  # the config's value, as the vanilla rows
    assert (ft["seconds"] > 0).all() and (df[df["method"] == ORIGINAL]["seconds"] == 0).all()
    md = (pop_dir / "report.md").read_text()
    assert f"## Challenge score and KLoM (N = {N} models per side)" in md and "retrain (noise floor)" in md


def test_oracles_against_themselves_score_like_retraining(pop_dir):
    """Identical populations: every ε 0, so F = 1 and the final score 1, and KLoM 0 on every split."""
    path = next((pop_dir / "units" / "population_models").glob(f"*/{ORACLES}"))
    ora = Outputs.load(path)
    assert ora.n == N and ora.margins["retain"].shape[1] == N
    s = population_scores(ora, ora, scorer_grid=True)
    assert s["forget_quality"] == 1.0 and s["forget_quality_grid"] == 1.0 and s["final_score"] == 1.0
    assert s["epsilon_mean"] == 0.0
    assert s["klom_forget"] == s["klom_retain"] == s["klom_val"] == 0.0


def test_originals_on_disk_reproduce_the_original_row(pop_dir, digits):
    """The saved weights (member j under keys 'j.<name>') are the originals the row was scored from."""
    unit = next((pop_dir / "units" / "population_models").glob(f"*/{ORIGINALS}")).parent
    record = json.loads((unit / "unit.json").read_text())
    inputs, weights = record["inputs"], load_file(str(unit / ORIGINALS))
    models = []
    for j in range(N):
        m = new_model(inputs["model"], digits, inputs["model_kwargs"])
        m.load_state_dict({k.split(".", 1)[1]: v for k, v in weights.items() if k.split(".", 1)[0] == str(j)})
        models.append(m.eval())
    forget_dir = next((pop_dir / "units" / "forget").glob(f"{record['deps']['forget'][:20]}"))
    retain = digits.complement(load_forget(forget_dir / "forget.json", digits).check(digits))
    x, y = digits.x_train[retain], digits.y_train[retain].numpy()
    acc = np.mean([(predict_logits(m, x).argmax(1).numpy() == y).mean() for m in models])
    row = next(r for r in record["summary"]["rows"] if r["method"] == ORIGINAL)
    assert acc == pytest.approx(row["retain_acc"], abs=1e-12)
    # The members differ (their own seeds), so ε has spread to measure.
    assert not np.allclose(predict_logits(models[0], digits.x_test), predict_logits(models[1], digits.x_test))


def test_methods_run_with_the_vanilla_rows_hyperparameters(pop_dir):
    """Same resolution (config < preset for dataset, model and forget kind) as the bench's own rows."""
    res, pop = pd.read_parquet(pop_dir / "results.parquet"), pd.read_parquet(pop_dir / POPULATION)
    for _, row in pop[~pop["method"].isin([ORIGINAL, NOISE_FLOOR])].iterrows():
        vanilla = res[(res["forget_kind"] == row["forget_kind"]) & (res["method"] == row["method"])
                      & (res["variant"] == "vanilla")]
        assert list(vanilla["params"]) == [row["params"]], (row["forget_kind"], row["method"])


def test_a_fresh_run_gives_the_same_table(pop_dir, tmp_path):
    cfg = validate_config({**POP, "population": {**POP["population"], "forget_sets": ["random"]},
                           "forget_sets": [{"kind": "random", "size": 30}]})
    run_bench(cfg, tmp_path / "again", report=False)
    again = pd.read_parquet(tmp_path / "again" / POPULATION).drop(columns="seconds")
    first = pd.read_parquet(pop_dir / POPULATION).drop(columns="seconds")
    pd.testing.assert_frame_equal(again, first[first["forget_kind"] == "random"].reset_index(drop=True))
