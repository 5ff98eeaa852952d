"""``unlearnkit score --scores LIST --memorization DIR`` uses the memorization run it is given."""

from __future__ import annotations

import shutil

import pandas as pd


def test_memorization_dir_given_with_a_score_list_is_used(digits_run, tmp_path, cli):
    mem = tmp_path / "mem"
    code, _, err = cli("memorization", "-d", "digits", "-m", "mlp", "--k", "4", "--epochs", "1", "--width", "16",
                       "-q", "--out", mem)
    assert code == 0, err
    run = tmp_path / "orig"
    shutil.copytree(digits_run.path, run)
    code, out, err = cli("score", "--run", run, "--scores", "confidence", "--memorization", mem, "-q")
    assert code == 0, err
    assert "adding the memorization score" in out
    table = pd.read_parquet(run / "scores.parquet")
    assert {"confidence", "memorization"} <= set(table.columns)
    assert table["memorization"].notna().any()
