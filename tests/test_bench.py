"""The bench pipeline end to end on a tiny digits config: results columns, report,
resume after an interruption, the Ray executor, the lock, `results`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments import COLUMNS, TIME_COLUMNS, read_results, run_bench, validate_config
from unlearnkit.experiments import units as units_mod
from unlearnkit.experiments.lock import LOCK, BenchLock

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "width": 16},
    "training": {"epochs": 4, "lr": 0.1},
    "seeds": [0, 1],
    "forget_sets": [
        {"kind": "random", "size": 30},
        {"kind": "memorization", "level": "high", "size": 30},
    ],
    "memorization": {"k": 6, "epochs": 3},
    "scores": ["confidence"],
    "methods": {"finetune": {"epochs": 1}},
    "metrics": {"mia_max_per_side": 100},
}
N_ROWS = 2 * 2 * 2  # forget sets x (original + finetune) x seeds


def tiny_config(**changes):
    return validate_config({**TINY, **changes})


def comparable(df: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """Everything but wall times (optionally one seed's rows)."""
    if seed is not None:
        df = df[df["seed"] == seed]
    return df.drop(columns=TIME_COLUMNS).reset_index(drop=True)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "out"
    run_bench(tiny_config(), out)
    return out


def test_results_table_has_every_row_and_column(bench_dir):
    df = read_results(bench_dir)
    assert list(df.columns) == COLUMNS
    assert len(df) == N_ROWS
    assert set(df["forget_kind"]) == {"random", "memorization-high"}
    assert set(df["method"]) == {"original", "finetune"}
    assert set(df["variant"]) == {"vanilla"}
    assert (df["forget_size"] == 30).all()
    for col in ("forget_acc", "retain_acc", "test_acc", "mia_efficacy", "tow", "tow_mia", "ref_test_acc"):
        assert df[col].between(0, 1).all(), col
    assert np.isfinite(df["es"]).all() and (df["es"] > 0).all()
    # The original's row costs nothing; finetune costs something, less than retraining here.
    orig = df[df["method"] == "original"]
    assert (orig["seconds"] == 0).all()
    ft = df[df["method"] == "finetune"]
    assert (ft["seconds"] > 0).all() and (ft["ref_seconds"] > 0).all()
    # Every row's ToW is recomputable from its own accuracies and its reference's.
    r = df.iloc[0]
    tow = np.prod([1 - abs(r[k] - r[f"ref_{k}"]) for k in ("forget_acc", "retain_acc", "test_acc")])
    assert r["tow"] == pytest.approx(tow)


def test_report_has_tables_and_figures(bench_dir):
    html = (bench_dir / "report.html").read_text()
    md = (bench_dir / "report.md").read_text()
    assert "Tug-of-War" in html and "<table" in html and "data:image/png;base64," in html
    assert "## Summary" in md and "| claim | verdict |" in md and "| method |" in md
    figs = sorted(p.name for p in (bench_dir / "figures").glob("*.png"))
    assert {"tow_by_level.png", "tow_gain_over_original.png", "memorization_histogram.png"} <= set(figs)
    for name in figs:
        assert f"figures/{name}" in md
    # A self-contained page: no external resources.
    assert 'src="http' not in html and "<link" not in html


def test_rerun_is_a_no_op_with_identical_results(bench_dir, monkeypatch):
    before = read_results(bench_dir)
    calls = []
    monkeypatch.setitem(units_mod.HANDLERS, "train", lambda *a: calls.append(a))
    res = run_bench(tiny_config(), bench_dir, report=False)
    assert res.units_run == 0 and not calls
    pd.testing.assert_frame_equal(read_results(bench_dir), before)


def test_interrupted_bench_resumes_to_the_same_results(bench_dir, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    real = units_mod.HANDLERS["unlearn"]
    count = {"n": 0}

    def dies_after_three(*args):
        count["n"] += 1
        if count["n"] > 3:
            raise KeyboardInterrupt  # as if the process were killed mid-run
        return real(*args)

    monkeypatch.setitem(units_mod.HANDLERS, "unlearn", dies_after_three)
    cfg = tiny_config(seeds=[0])  # seed 0's units are the same as the full run's
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, out, report=False)
    assert not (out / "results.parquet").exists()
    assert not (out / LOCK).exists()  # the lock is released on the way out
    # Nothing half-written: every unit directory present is complete.
    for d in (out / "units").glob("*/*"):
        assert (d / "unit.json").exists(), d
    finished = len(list((out / "units").glob("*/*")))

    monkeypatch.setitem(units_mod.HANDLERS, "unlearn", real)
    res = run_bench(cfg, out, report=False)
    assert res.units_run == res.units_total - finished
    pd.testing.assert_frame_equal(comparable(read_results(out)), comparable(read_results(bench_dir), seed=0))


def test_a_failing_unit_is_reported_and_the_rest_finishes(tmp_path, monkeypatch):
    real = units_mod.HANDLERS["unlearn"]

    def refuses(inputs, *rest):
        if inputs["method"] == "retrain":  # the reference still trains
            return real(inputs, *rest)
        raise UnlearnkitError("no forget example has negative influence")

    monkeypatch.setitem(units_mod.HANDLERS, "unlearn", refuses)
    cfg = tiny_config(seeds=[0], forget_sets=[{"kind": "random", "size": 30}], memorization={"k": 2})
    res = run_bench(cfg, tmp_path / "out", report=False)
    roots = {k: v for k, v in res.failures.items() if not v.startswith("skipped")}
    assert roots and all("negative influence" in v for v in roots.values())
    assert json.loads((tmp_path / "out" / "failures.json").read_text()) == res.failures
    # The original's row needs no unlearning: it is still there.
    assert list(res.results["method"]) == ["original"]


def test_lock_refuses_a_second_bench(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        info = {"pid": holder.pid, "host": socket.gethostname(), "started": "now"}
        (out / LOCK).write_text(json.dumps(info))
        with pytest.raises(UnlearnkitError, match=f"another bench \\(pid {holder.pid}"):
            run_bench(tiny_config(), out)
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone now: its lock is stale and is taken over, saying so.
    said = []
    with BenchLock(out, notify=said.append):
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    assert said and "stale lock" in said[0]
    assert not (out / LOCK).exists()


def test_results_command_prints_tables(bench_dir, cli):
    code, out, err = cli("results", bench_dir, "--group-by", "method")
    assert code == 0, err
    assert "tow" in out and "finetune" in out and "original" in out
    code, out, err = cli("results", bench_dir, "--group-by", "nonsense")
    assert code == 2 and "nonsense" in err
    code, out, err = cli("results", bench_dir / "missing")
    assert code == 2 and "no results" in err


def test_report_command_regenerates_the_report(bench_dir, cli):
    before = (bench_dir / "report.md").read_text()
    (bench_dir / "report.html").unlink()
    (bench_dir / "report.md").unlink()
    code, out, err = cli("report", bench_dir)
    assert code == 0, err
    assert (bench_dir / "report.html").exists()
    assert (bench_dir / "report.md").read_text() == before  # same results, same context: the same report


def test_bench_command_reports_config_errors_with_lines(tmp_path, cli):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: {name: digits}\nforget_sets:\n  - {kind: random, size: 10}\nmethods: [finetune]\nepochz: 3\n")
    code, out, err = cli("bench", cfg, "--out", tmp_path / "o")
    assert code == 2
    assert "epochz: unknown key (line 5)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.ray
def test_ray_executor_gives_the_same_results(bench_dir, tmp_path):
    out = tmp_path / "ray"
    run_bench(tiny_config(seeds=[1]), out, executor="ray", report=False)
    pd.testing.assert_frame_equal(comparable(read_results(out)), comparable(read_results(bench_dir), seed=1))
