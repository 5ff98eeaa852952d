"""Tables from the results DataFrame: means with 95% CIs over seeds and cost. The
papers' findings (paired verdicts) live in :mod:`unlearnkit.report.findings`."""

from __future__ import annotations

import math
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
