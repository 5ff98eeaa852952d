"""Tables from the results DataFrame: means with 95% CIs over seeds, cost, and the
papers' findings as checks (held / not held / not tested on this run)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from unlearnkit.metrics.stats import mean_ci

ORIGINAL = "original"
LEVEL_ORDER = ["low", "medium", "high", "mix"]
SUMMARY_METRICS = ["tow", "tow_mia", "forget_acc", "retain_acc", "test_acc", "mia_efficacy", "seconds", "cost_ratio"]


def row_label(df: pd.DataFrame) -> pd.Series:
    """``method`` for vanilla rows (and RUM's own ``rum`` rows), ``method/variant`` otherwise
    (e.g. ``finetune/rum_f``)."""
    plain = (df["variant"] == "vanilla") | (df["variant"] == df["method"])
    return np.where(plain, df["method"], df["method"] + "/" + df["variant"])


def _kind_key(kind: str) -> tuple:
    # random, class-*, then each family ordered low < medium < high < mix.
    family, _, level = kind.rpartition("-")
    if not family:
        return (0, kind, 0)
    return (1 if family == "class" else 2, family, LEVEL_ORDER.index(level) if level in LEVEL_ORDER else 9)


def kind_order(kinds: Sequence[str]) -> list[str]:
    return sorted(set(kinds), key=_kind_key)


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.912 ± 0.021`` (the 95% CI's half-width), or the mean alone for one seed."""
    if math.isnan(mean):
        return "–"
    if math.isnan(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def ci_pivot(df: pd.DataFrame, value: str = "tow", columns: str = "forget_kind") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows = method (/variant), columns = ``columns``; returns (numeric means, "mean ± ci" strings)."""
    d = df.assign(row=row_label(df))
    cols = kind_order(d[columns]) if columns == "forget_kind" else sorted(d[columns].unique())
    rows = sorted(d["row"].unique(), key=lambda r: (r != ORIGINAL, r))
    means = pd.DataFrame(np.nan, index=rows, columns=cols)
    text = pd.DataFrame("–", index=rows, columns=cols)
    for (r, c), g in d.groupby(["row", columns]):
        m, lo, hi = mean_ci(g[value].to_numpy())
        means.loc[r, c] = m
        text.loc[r, c] = fmt_ci(m, lo, hi)
    means.index.name = text.index.name = "method"
    return means, text


def summary(df: pd.DataFrame, group_by: Sequence[str] = ("forget_kind", "method", "variant"),
            metrics: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Mean ± 95% CI over the remaining rows (seeds) of each group, as strings; plus ``n``."""
    out = []
    for key, g in df.groupby(list(group_by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rec: dict[str, Any] = dict(zip(group_by, key))
        rec["n"] = len(g)
        for m in metrics:
            digits = 2 if m in ("seconds",) else 3
            rec[m] = fmt_ci(*mean_ci(g[m].to_numpy(dtype=np.float64)), digits=digits)
        out.append(rec)
    res = pd.DataFrame(out)
    if "forget_kind" in group_by and len(res):
        res = res.iloc[sorted(range(len(res)), key=lambda i: _kind_key(res["forget_kind"].iloc[i]))]
    return res.reset_index(drop=True)


def cost_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method (/variant): mean wall time (s), and as a ratio of retraining's (mean ± CI)."""
    d = df[df["method"] != ORIGINAL].assign(row=row_label(df[df["method"] != ORIGINAL]))
    out = []
    for r, g in d.groupby("row"):
        out.append({
            "method": r,
            "seconds": fmt_ci(*mean_ci(g["seconds"]), digits=2),
            "retrain seconds": fmt_ci(*mean_ci(g["ref_seconds"]), digits=2),
            "cost ratio": fmt_ci(*mean_ci(g["cost_ratio"])),
            "_sort": float(np.nanmean(g["cost_ratio"])),
        })
    return pd.DataFrame(out).sort_values("_sort").drop(columns="_sort").reset_index(drop=True) if out else pd.DataFrame()


# --------------------------------------------------------------------------- findings as checks


@dataclass
class Finding:
    claim: str
    status: str  # "held", "not held" or "not tested"
    evidence: str


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if x.size and not np.isnan(x).all() else math.nan


def _compare(claim: str, a: float, b: float, a_name: str, b_name: str, lower_wins: bool = False) -> Finding:
    if math.isnan(a) or math.isnan(b):
        return Finding(claim, "not tested", f"needs both {a_name} and {b_name} rows")
    held = a < b if lower_wins else a > b
    return Finding(claim, "held" if held else "not held", f"{a_name} {a:.3f} vs {b_name} {b:.3f}")


def findings(df: pd.DataFrame, scores: pd.DataFrame | None = None) -> list[Finding]:
    """The papers' claims, each checked on this run's results (approximate methods only)."""
    approx = df[(df["method"] != ORIGINAL) & (df["variant"] == "vanilla") & (df["method"] != "sisa")]
    out: list[Finding] = []

    ent = approx[approx["forget_kind"].str.startswith("entanglement-")]
    claim = "forget sets with higher ES are harder (lower ToW) [RUM]"
    if ent["forget_kind"].nunique() >= 2:
        per = ent.groupby("forget_kind")[["es", "tow"]].mean()
        rho = spearmanr(per["es"], per["tow"]).statistic
        out.append(Finding(claim, "held" if rho < 0 else "not held",
                           f"Spearman(ES, mean ToW) over {len(per)} entanglement sets = {rho:+.2f}"))
    else:
        out.append(Finding(claim, "not tested", "needs at least two entanglement forget sets"))

    lv = lambda k: _mean(approx.loc[approx["forget_kind"] == k, "tow"])  # noqa: E731
    out.append(_compare("high-memorization sets are harder than low ones (lower ToW) [RUM]",
                        lv("memorization-high"), lv("memorization-low"), "ToW high", "ToW low", lower_wins=True))

    van = df[(df["variant"] == "vanilla")]
    rumf = df[df["variant"] == "rum_f"]
    keys = ["forget_kind", "method", "seed"]
    paired = rumf.merge(van, on=keys, suffixes=("_rumf", "_van"))
    out.append(_compare("RUM^F beats vanilla on average (higher ToW) [RUM]",
                        _mean(paired["tow_rumf"]) if len(paired) else math.nan,
                        _mean(paired["tow_van"]) if len(paired) else math.nan, "RUM^F", "vanilla"))

    m = lambda name: _mean(approx.loc[approx["method"] == name, "tow"])  # noqa: E731
    out.append(_compare("IMU beats imu_uniform (higher ToW) [IMU]", m("imu"), m("imu_uniform"), "imu", "imu_uniform"))

    sisa = df[(df["method"] == "sisa") & (df["variant"] == "vanilla")]
    out.append(_compare("SISA unlearning is faster than retraining [SISA]",
                        _mean(sisa["seconds"]) if len(sisa) else math.nan,
                        _mean(sisa["ref_seconds"]) if len(sisa) else math.nan,
                        "SISA s", "retrain s", lower_wins=True))

    claim = "the C-proxy (mean confidence) correlates negatively with memorization [RUM]"
    if scores is not None and {"confidence", "memorization"} <= set(scores.columns):
        ok = scores[["confidence", "memorization"]].dropna()
        rho = spearmanr(ok["confidence"], ok["memorization"]).statistic
        out.append(Finding(claim, "held" if rho < 0 else "not held", f"Spearman = {rho:+.2f} over {len(ok)} examples"))
    else:
        out.append(Finding(claim, "not tested", "needs memorization and confidence scores"))
    return out


def proxy_correlations(scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman of every score column with memorization (``score``, ``spearman``, ``n``)."""
    skip = {"index", "label", "memorization", "memorization_se", "memorization_n_out"}
    out = []
    for col in scores.columns:
        if col in skip or not np.issubdtype(scores[col].dtype, np.number):
            continue
        ok = scores[[col, "memorization"]].dropna()
        if len(ok) >= 3 and ok[col].nunique() > 1:
            out.append({"score": col, "spearman": float(spearmanr(ok[col], ok["memorization"]).statistic), "n": len(ok)})
    return pd.DataFrame(out, columns=["score", "spearman", "n"]).sort_values("spearman").reset_index(drop=True)


def markdown_table(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    d = df.reset_index() if index else df
    head = "| " + " | ".join(str(c) for c in d.columns) + " |"
    sep = "|" + "|".join("---" for _ in d.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}"
    return str(v)
