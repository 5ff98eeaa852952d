"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed).

Every figure that compares methods shows the original model, the do-nothing baseline,
compares methods on the forget sets they all have, labels series directly (small multiples
rather than one panel of many colours) and states its n in the title. Each function returns
``None`` when the results hold nothing to plot, so the report leaves the figure out.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearnkit.metrics.stats import mean_ci  # noqa: E402
from unlearnkit.report.tables import LEVEL_ORDER, ORIGINAL, proxy_correlations, row_label  # noqa: E402

DPI = 110
BASELINE = "#8c8c8c"  # the original (do nothing), grey in every figure
FAMILY_STYLE = {"memorization": ("#c44e52", "-", "o"), "entanglement": ("#4c72b0", "--", "s")}
POSITIVE, NEGATIVE = "#55a868", "#c44e52"


def _png(fig, rect: tuple[float, float, float, float] | None = None) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout(rect=rect)
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _n_text(counts) -> str:
    """``n = 3`` or ``n = 2-3`` (seeds behind each point)."""
    c = sorted(set(int(v) for v in counts))
    if not c:
        return "n = 0"
    return f"n = {c[0]}" if len(c) == 1 else f"n = {c[0]}-{c[-1]}"


def common_kinds(df: pd.DataFrame, rows: list[str] | None = None) -> list[str]:
    """The forget-set kinds that every method row in ``rows`` (default: all but the RUM
    variants, which run on their own sets) has results on."""
    d = df.assign(row=row_label(df))
    if rows is None:
        rows = sorted(set(d.loc[d["variant"] == "vanilla", "row"]) | {ORIGINAL})
    d = d[d["row"].isin(rows)]
    per_row = [set(g["forget_kind"]) for _, g in d.groupby("row")]
    return sorted(set.intersection(*per_row)) if per_row else []


def _levels(df: pd.DataFrame, family: str) -> list[str]:
    present = set(df.loc[df["forget_kind"].str.startswith(f"{family}-"), "forget_kind"].str.removeprefix(f"{family}-"))
    return [lv for lv in LEVEL_ORDER if lv in present and lv != "mix"]


def tow_by_level(df: pd.DataFrame, value: str = "tow") -> bytes | None:
    """Small multiples: one panel per method, ToW (mean ± 95% CI over seeds) against the forget
    set's memorization level (solid) and entanglement level (dashed); the original in grey."""
    d = df[df["variant"] == "vanilla"]
    families = [f for f in FAMILY_STYLE if _levels(d, f)]
    if not families:
        return None
    methods = [m for m in sorted(d["method"].unique()) if m != ORIGINAL]
    if not methods:
        return None
    levels = {f: _levels(d, f) for f in families}
    axis = [lv for lv in LEVEL_ORDER if any(lv in v for v in levels.values())]  # shared x: level names
    cols = min(4, len(methods))
    nrows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols + 0.4, 2.2 * nrows + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    counts = []

    def line(ax, rows: pd.DataFrame, family: str, color: str, style: str, marker: str, label: str | None) -> None:
        stats = [mean_ci(rows.loc[rows["forget_kind"] == f"{family}-{lv}", value]) for lv in levels[family]]
        counts.extend(int((rows["forget_kind"] == f"{family}-{lv}").sum()) for lv in levels[family])
        mean = np.array([s[0] for s in stats])
        err = np.array([(s[2] - s[1]) / 2 if not np.isnan(s[1]) else 0.0 for s in stats])
        ax.errorbar([axis.index(lv) for lv in levels[family]], mean, yerr=err, color=color, ls=style, marker=marker, ms=4, capsize=2,
                    lw=1.4, label=label)

    orig = d[d["method"] == ORIGINAL]
    for i, m in enumerate(methods):
        ax = axes[i // cols][i % cols]
        for f in families:
            color, style, marker = FAMILY_STYLE[f]
            if not orig.empty:
                line(ax, orig, f, BASELINE, style, marker, f"original, {f}" if i == 0 else None)
            line(ax, d[d["method"] == m], f, color, style, marker, f"method, {f}" if i == 0 else None)
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3)
    for j in range(len(methods), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xticks(range(len(axis)), axis)
    lo = max(0.0, float(np.nanmin(d[value])) - 0.02) if d[value].notna().any() else 0.0
    axes[0][0].set_ylim(lo, 1.005)
    fig.supxlabel("difficulty level of the forget set (low -> high)", fontsize=9)
    fig.supylabel("ToW (1 = as retraining)" if value == "tow" else value, fontsize=9)
    fig.legend(loc="upper center", ncol=2 * len(families), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"ToW by difficulty level, per method; grey = the original (do nothing); mean ± 95% CI, "
                 f"{_n_text(counts)} seeds per point", fontsize=9, y=0.93 if nrows > 1 else 0.9)
    return _png(fig, rect=(0, 0, 1, 0.9))


def gain_over_original(df: pd.DataFrame, value: str = "tow") -> tuple[pd.DataFrame, list[str]]:
    """Per method (/variant): mean paired ``value`` gain over the original on the same (seed,
    forget set), its 95% CI and n pairs, on the forget sets every compared row has.

    Returns (table with ``method``, ``gain``, ``lo``, ``hi``, ``n``; the forget kinds used).
    """
    kinds = common_kinds(df)
    d = df[df["forget_kind"].isin(kinds)].assign(row=lambda x: row_label(x))
    base = d[d["row"] == ORIGINAL].set_index(["seed", "forget_kind"])[value]
    out = []
    for r, g in d[(d["row"] != ORIGINAL) & (d["variant"] == "vanilla")].groupby("row"):
        g = g.set_index(["seed", "forget_kind"])[value]
        keys = g.index.intersection(base.index)
        diffs = (g.loc[keys] - base.loc[keys]).to_numpy(dtype=np.float64)
        m, lo, hi = mean_ci(diffs)
        out.append({"method": r, "gain": m, "lo": lo, "hi": hi, "n": int(np.isfinite(diffs).sum())})
    return pd.DataFrame(out, columns=["method", "gain", "lo", "hi", "n"]).sort_values("gain"), kinds


def tow_gain(df: pd.DataFrame) -> bytes | None:
    """Horizontal bars: each method's ToW gain over doing nothing (paired by seed and forget
    set, mean ± 95% CI); zero is the original."""
    table, kinds = gain_over_original(df)
    if table.empty or not kinds:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(table) + 1.4))
    y = np.arange(len(table))
    err = np.nan_to_num(np.vstack([table["gain"] - table["lo"], table["hi"] - table["gain"]]))
    colors = [POSITIVE if lo > 0 else NEGATIVE if hi < 0 else BASELINE for lo, hi in zip(table["lo"], table["hi"])]
    ax.barh(y, table["gain"], xerr=err, color=colors, capsize=2)
    ax.set_yticks(y, table["method"], fontsize=8)
    ax.axvline(0, color="black", lw=0.9)
    ax.text(0, -0.75, " 0 = the original (do nothing)", fontsize=7, va="top")
    ax.set_ylim(-1.1, len(table) - 0.4)
    ax.set_xlabel("ToW gain over the original, paired by seed and forget set\n"
                  "(green: 95% CI above 0, red: below 0, grey: includes 0)", fontsize=9)
    ax.set_title(f"What unlearning buys over doing nothing ({len(kinds)} common forget sets, "
                 f"{_n_text(table['n'])} pairs per bar)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def tow_vs_es(df: pd.DataFrame) -> bytes | None:
    """Mean ToW per forget set (over seeds) against its mean ES, for the method rows and the
    original; one marker per forget-set family."""
    d = df[(df["variant"] == "vanilla") & np.isfinite(df["es"]) & df["forget_kind"].isin(common_kinds(df))]
    if d.empty or d["es"].nunique() < 2:
        return None
    per = d.groupby(["forget_kind", d["method"] == ORIGINAL]).agg(es=("es", "mean"), tow=("tow", "mean"),
                                                                    n=("seed", "nunique"))
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in per.index.get_level_values(0).unique():  # a thin line from the original to the methods
        if (kind, True) in per.index and (kind, False) in per.index:
            a, b = per.loc[(kind, True)], per.loc[(kind, False)]
            ax.plot([a["es"], b["es"]], [a["tow"], b["tow"]], color=BASELINE, lw=0.8, zorder=1)
    for (kind, is_orig), r in per.iterrows():
        family = kind.split("-")[0]
        color, _, marker = FAMILY_STYLE.get(family, ("#333333", "-", "D"))
        ax.scatter(r["es"], r["tow"], color=BASELINE if is_orig else color, marker=marker, s=36,
                   edgecolor="black" if not is_orig else "none", lw=0.5)
        if not is_orig:
            ax.annotate(kind, (r["es"], r["tow"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("entanglement score (ES) of the forget set, log scale (higher = more entangled)")
    ax.set_ylabel("mean ToW")
    ax.set_title(f"ToW against ES; coloured: mean over methods, grey: the original; "
                 f"{_n_text(per['n'])} seeds per point", fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def memorization_hist(mem: pd.DataFrame | None, split_half: float | None) -> bytes | None:
    """Histogram of the memorization estimate, titled with its split-half reliability."""
    if mem is None or "memorization" not in mem:
        return None
    v = mem["memorization"].dropna().to_numpy()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(v, bins=40, color="#4c72b0")
    ax.set_yscale("log")
    ax.set_xlabel("memorization estimate (0 = predicted as well without the example)")
    ax.set_ylabel("examples (log scale)")
    rel = "n/a" if split_half is None else f"{split_half:.2f}"
    ax.set_title(f"memorization of n = {len(v)} training examples (split-half reliability {rel})", fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def proxies_vs_memorization(scores: pd.DataFrame | None) -> bytes | None:
    """Bar chart: Spearman correlation of every score with memorization."""
    if scores is None or "memorization" not in scores:
        return None
    corr = proxy_correlations(scores)
    if corr.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(corr) + 1.2))
    colors = [NEGATIVE if v < 0 else POSITIVE for v in corr["spearman"]]
    ax.barh(corr["score"], corr["spearman"], color=colors)
    for y, v in enumerate(corr["spearman"]):
        ax.text(v, y, f" {v:+.2f} ", va="center", ha="left" if v >= 0 else "right", fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1.15, 1.15)
    ax.set_xlabel("Spearman correlation with memorization")
    ax.set_title(f"proxies against memorization (first seed's original model, n = {int(corr['n'].max())} examples)",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def cost_vs_tow(df: pd.DataFrame) -> bytes | None:
    """Mean ToW against mean cost ratio (seconds / retraining's) per method, on the common
    forget sets; the original's ToW (cost 0) is the dashed line."""
    kinds = common_kinds(df)
    d = df[df["forget_kind"].isin(kinds) & (df["variant"] == "vanilla")]
    methods = d[d["method"] != ORIGINAL]
    if methods.empty:
        return None
    per = methods.groupby("method").agg(cost=("cost_ratio", "mean"), tow=("tow", "mean"), n=("tow", "size"))
    per = per[per["cost"] > 0]
    if per.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(per["cost"], per["tow"], color="#4c72b0", s=24)
    # Points crowd where methods cost little and change little: stagger their labels, with leaders.
    for i, (name, r) in enumerate(per.sort_values("cost").iterrows()):
        ax.annotate(name, (r["cost"], r["tow"]), fontsize=7, xytext=(4, 6 + 9 * (i % 4)), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5})
    orig = d.loc[d["method"] == ORIGINAL, "tow"]
    if not orig.empty:
        ax.axhline(orig.mean(), color=BASELINE, ls="--", lw=1)
        ax.annotate("original (do nothing, cost 0)", (per["cost"].min(), orig.mean()), fontsize=7, color="#555555",
                    xytext=(0, -10), textcoords="offset points")
    ax.axvline(1.0, color=BASELINE, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.margins(x=0.1, y=0.3)  # room for the staggered labels
    ax.set_xlabel("wall time as a ratio of retraining (log scale; 1 = retraining)")
    ax.set_ylabel("mean ToW")
    ax.set_title(f"quality against cost on the {len(kinds)} common forget sets ({_n_text(per['n'])} rows per method)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)
