"""``unlearnkit results``: names whole at any width, formats that parse back, one-line bad input."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from test_report import synthetic

from unlearnkit.cli.results_cmd import short_kind, text_table
from unlearnkit.experiments.store import write_results
from unlearnkit.report.tables import row_label


@pytest.fixture
def results_dir(tmp_path):
    df = synthetic()
    write_results(tmp_path, df)
    return tmp_path, df


def _one_line_error(code: int, err: str, match: str) -> None:
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and match in err, err


def test_table_in_a_pipe_has_one_line_per_method_with_whole_names(results_dir, cli):
    path, df = results_dir
    code, out, err = cli("results", path)
    assert code == 0, err
    lines = out.splitlines()
    for name in set(row_label(df)):
        assert sum(line.split("  ")[0].strip() == name for line in lines) == 1, name
    for kind in set(df["forget_kind"]):
        assert short_kind(kind) in lines[0]  # the header, in one line
        assert kind in out  # spelled out in the key when shortened
    assert "n = 3 seeds per cell" in out


def test_best_per_column_is_marked(results_dir, cli):
    path, df = results_dir
    code, out, _ = cli("results", path, "--no-ci")
    assert code == 0 and "±" not in out
    approx = df[df["method"] != "original"].assign(row=lambda d: row_label(d))
    best = approx.groupby(["forget_kind", "row"])["tow"].mean().groupby("forget_kind").idxmax()
    header = out.splitlines()[0].split()
    for kind, (_, row) in best.items():
        line = next(x for x in out.splitlines() if x.split("  ")[0].strip() == row)
        cells = line[len(row):].split()
        col = header.index(short_kind(kind))
        marked = [c for c in " ".join(cells).replace(" *", "*").split()]
        assert marked[col - 1].endswith("*"), (kind, row, line)


def test_narrow_terminal_continues_columns_in_blocks_without_cutting():
    header = ["method", *(f"memorization-level-{i}" for i in range(6))]
    rows = [["neggrad_plus/shuffle", *(f"0.{i}12 ± 0.021" for i in range(6))], ["original", *["-"] * 6]]
    text = text_table(header, rows, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for cell in header + rows[0]:
        assert cell in text
    assert text.count("neggrad_plus/shuffle") > 1  # the row names repeat in each block
    assert "\n" not in text_table(header, rows[:1], width=None).split("\n", 2)[2]  # unbounded: one line a row


def test_csv_json_md_and_out_file(results_dir, cli, tmp_path):
    path, df = results_dir
    code, out, _ = cli("results", path, "--format", "csv", "--metric", "forget_acc")
    assert code == 0
    got = pd.read_csv(io.StringIO(out))
    want = df.assign(row=row_label(df)).groupby(["row", "forget_kind"])["forget_acc"].mean()
    for r in got.itertuples():
        assert r.mean == pytest.approx(want[(r.method, r.forget_kind)], rel=1e-5)
        assert r.lo <= r.mean <= r.hi
    code, out, _ = cli("results", path, "--format", "json", "--no-ci")
    data = json.loads(out)
    assert data["metric"] == "tow" and "lo" not in data["rows"][0]
    code, out, _ = cli("results", path, "--format", "md")
    assert out.startswith("| method |") and "memorization-high" in out
    target = tmp_path / "tow.csv"
    code, out, _ = cli("results", path, "--format", "csv", "--out", target)
    assert code == 0 and target.read_text().startswith("method,forget_kind,n,mean,lo,hi")


def test_group_by_summary(results_dir, cli):
    path, _ = results_dir
    code, out, err = cli("results", path, "--group-by", "method")
    assert code == 0, err
    assert "tow_mia" in out.splitlines()[0] and "imu_uniform" in out


def test_bad_input_is_one_line(results_dir, cli, tmp_path):
    path, df = results_dir
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("results", empty)
    _one_line_error(code, err, "no results")
    code, _, err = cli("results", path, "--metric", "nope")
    _one_line_error(code, err, "--metric nope")
    code, _, err = cli("results", path, "--format", "xml")
    _one_line_error(code, err, "--format xml")
    code, _, err = cli("results", path, "--group-by", "nonsense")
    _one_line_error(code, err, "nonsense")
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    df.drop(columns=["tow"]).to_parquet(lacking / "results.parquet")
    for command in ("results", "report"):
        code, _, err = cli(command, lacking)
        _one_line_error(code, err, "missing columns")
    code, _, err = cli("report", path)  # results without the bench's config.json
    _one_line_error(code, err, "config.json")
