"""Report tables, findings and the HTML/Markdown writer on a synthetic results table."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from unlearnkit.experiments.store import COLUMNS, result_row, results_frame
from unlearnkit.report import ci_pivot, findings, write_report
from unlearnkit.report import figures as figs
from unlearnkit.report.tables import fmt_ci, kind_order

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic(seeds=(0, 1, 2)) -> pd.DataFrame:
    """Rows where harder sets (higher ES, higher memorization) get a lower forget accuracy gap closure."""
    rng = np.random.default_rng(0)
    ref = {"forget_acc": 0.80, "retain_acc": 0.99, "test_acc": 0.95, "mia_efficacy": 0.30}
    rows = []
    kinds = {"memorization-low": (2.0, 0.02), "memorization-high": (5.0, 0.20),
             "entanglement-low": (1.0, 0.01), "entanglement-high": (8.0, 0.25), "random": (3.0, 0.05)}
    methods = [("original", "vanilla", 0.3), ("finetune", "vanilla", 1.0), ("finetune", "rum_f", 0.5),
               ("imu", "vanilla", 1.0), ("imu_uniform", "vanilla", 1.5), ("sisa", "vanilla", 0.1)]
    for kind, (es, gap) in kinds.items():
        for method, variant, scale in methods:
            for s in seeds:
                g = gap * scale + rng.uniform(0, 0.01)
                m = {**ref, "forget_acc": ref["forget_acc"] + g, "mia_efficacy": ref["mia_efficacy"] - g / 2}
                setup = {"dataset": "digits", "model": "mlp", "forget_kind": kind, "forget_size": 60, "es": es + s * 0.01,
                         "method": method, "variant": variant, "seed": s}
                rows.append(result_row(setup, m, ref, 0.0 if method == "original" else 0.5 * scale, 5.0, 100))
    return results_frame(rows)


def test_result_rows_compute_tow_and_cost():
    df = synthetic()
    assert list(df.columns) == COLUMNS
    r = df[(df["method"] == "finetune") & (df["variant"] == "vanilla")].iloc[0]
    assert r["tow"] == pytest.approx(1 - abs(r["forget_acc"] - r["ref_forget_acc"]))
    assert r["cost_ratio"] == pytest.approx(r["seconds"] / r["ref_seconds"])


def test_ci_pivot_means_and_intervals():
    df = synthetic()
    means, text = ci_pivot(df, "tow")
    assert list(means.columns) == kind_order(df["forget_kind"])
    assert list(means.columns)[0] == "random"
    assert means.index[0] == "original" and "finetune/rum_f" in means.index
    sel = df[(df["method"] == "imu") & (df["forget_kind"] == "random")]["tow"]
    assert means.loc["imu", "random"] == pytest.approx(sel.mean())
    assert "±" in text.loc["imu", "random"]
    assert fmt_ci(0.5, float("nan"), float("nan")) == "0.500"


def test_findings_follow_the_data():
    df = synthetic()
    got = {v.claim.split(" [")[0]: v for v in findings(df)}
    assert got["forget sets with higher ES are harder (ToW falls as ES rises, all forget sets)"].status == "held"
    assert got["high-memorization sets are harder than low ones (lower ToW)"].status == "held"
    assert got["high-entanglement sets are harder than low ones (lower ToW)"].status == "held"
    rumf = got["RUM^F beats vanilla (higher ToW)"]
    assert rumf.status == "held" and rumf.n == 5 * 3 and rumf.lo > 0
    assert got["IMU beats imu_uniform (higher ToW)"].status == "held"
    assert got["SISA unlearning is faster than retraining a single model"].status == "held"
    # In this table the original's gap (x0.3) is smaller than finetune's (x1.0): contradicted.
    assert got["finetune does better than doing nothing (higher ToW than the original)"].status == "contradicted"
    c = got["the C-proxy (mean confidence) correlates negatively with memorization"]
    assert c.status == "inconclusive" and c.n == 0 and "not tested" in c.detail
    shuffle = got["RUM^F beats shuffle: the memorization order matters (higher ToW)"]
    assert shuffle.n == 0 and "not tested" in shuffle.detail
    # Reverse IMU and imu_uniform: the verdict flips to contradicted.
    swapped = df.assign(method=df["method"].replace({"imu": "imu_uniform", "imu_uniform": "imu"}))
    got = {v.claim.split(" [")[0]: v.status for v in findings(swapped)}
    assert got["IMU beats imu_uniform (higher ToW)"] == "contradicted"
    scores = pd.DataFrame({"memorization": np.linspace(0, 1, 50), "confidence": np.linspace(1, 0, 50)})
    c = [v for v in findings(df, scores) if v.claim.startswith("the C-proxy")][0]
    assert c.status == "held" and c.diff == pytest.approx(-1.0) and c.n == 50


def test_report_files(tmp_path):
    df = synthetic()
    mem = pd.DataFrame({"index": np.arange(200), "memorization": np.random.default_rng(1).beta(1, 5, 200)})
    scores = mem.assign(confidence=1 - mem["memorization"], margin=np.random.default_rng(2).normal(size=200))
    ctx = {"memorization": mem, "memorization_info": {"split_half": 0.31, "k": 8, "reliability_threshold": 0.5},
           "scores": scores,
           "failures": {"unlearn scrub random seed 0": "loss became nan"}}
    html_path = write_report(tmp_path, df, context=ctx)
    html = html_path.read_text()
    md = (tmp_path / "report.md").read_text()
    # Figures: embedded in the HTML (decodable PNGs), files beside the Markdown.
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(embedded) >= 5
    assert all(base64.b64decode(e).startswith(PNG_MAGIC) for e in embedded)
    for name in ("tow_gain_over_original", "tow_by_level", "tow_vs_es", "memorization_histogram",
                 "proxies_vs_memorization", "cost_vs_tow"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"figures/{name}.png" in md
    # The low split-half reliability is flagged, and failures are listed.
    assert "WARNING" in html and "0.31" in html and "WARNING" in md
    assert "loss became nan" in md
    # Tables: ToW with CIs and the findings with their status.
    assert "held" in md and "±" in md and "finetune/rum_f" in md
    assert md.count("| method |") >= 2
    # The summary comes first, with the warnings that qualify it; set-up is last, without Python reprs.
    assert md.index("## Summary") < md.index("## Tug-of-War") < md.index("## Set-up")
    assert md.index("unreliable here") < md.index("## Tug-of-War")
    # The memorization warning also stands right above each figure it qualifies.
    for name in ("tow_by_level", "memorization_histogram", "proxies_vs_memorization"):
        before = md[: md.index(f"figures/{name}.png")].rstrip().rsplit("\n\n", 2)[-2]
        assert "WARNING" in before, name
    # Best per column in bold: sisa has the highest ToW everywhere in the synthetic data.
    tow_row = next(line for line in md.splitlines() if line.startswith("| sisa |"))
    assert tow_row.count("**") == 2 * 5


def test_gain_over_original_is_paired_on_common_forget_sets():
    df = synthetic()
    # Drop imu's rows on one forget set: every method is then compared on the other four only.
    df = df[~((df["method"] == "imu") & (df["forget_kind"] == "random"))]
    table, kinds = figs.gain_over_original(df)
    assert "random" not in kinds and len(kinds) == 4
    ft = df[(df["method"] == "finetune") & (df["variant"] == "vanilla") & df["forget_kind"].isin(kinds)]
    orig = df[(df["method"] == "original") & df["forget_kind"].isin(kinds)]
    want = (ft.set_index(["seed", "forget_kind"])["tow"] - orig.set_index(["seed", "forget_kind"])["tow"]).mean()
    got = table.set_index("method").loc["finetune"]
    assert got["gain"] == pytest.approx(want) and got["n"] == 4 * 3 and got["lo"] < got["gain"] < got["hi"]
    assert "finetune/rum_f" not in set(table["method"])  # RUM variants run on their own sets


def test_report_of_an_empty_table(tmp_path):
    write_report(tmp_path, results_frame([]))
    assert "No results yet" in (tmp_path / "report.md").read_text()
