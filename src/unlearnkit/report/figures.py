"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed).

Each function returns ``None`` when the results hold nothing to plot (e.g. no
memorization forget sets), so the report simply leaves the figure out.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearnkit.metrics.stats import mean_ci  # noqa: E402
from unlearnkit.report.tables import LEVEL_ORDER, ORIGINAL, proxy_correlations, row_label  # noqa: E402

DPI = 110
# Up to 20 methods/variants share a plot: 20 distinct colours, and markers cycling alongside.
STYLE = (matplotlib.cycler(color=matplotlib.colormaps["tab20"].colors)
         + matplotlib.cycler(marker=["o", "s", "^", "D", "v"] * 4))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def tow_by_level(df: pd.DataFrame, family: str = "memorization", value: str = "tow") -> bytes | None:
    """Mean ToW (95% CI bars over seeds) per method against the ``family``'s levels."""
    d = df[df["forget_kind"].str.startswith(f"{family}-") & (df["method"] != ORIGINAL)]
    if d.empty:
        return None
    d = d.assign(level=d["forget_kind"].str.removeprefix(f"{family}-"), row=row_label(d))
    levels = [lv for lv in LEVEL_ORDER if lv in set(d["level"])]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(STYLE)
    x = np.arange(len(levels))
    for r, g in d.groupby("row"):
        stats = [mean_ci(g.loc[g["level"] == lv, value]) for lv in levels]
        mean = np.array([s[0] for s in stats])
        err = np.array([(s[2] - s[1]) / 2 if not np.isnan(s[1]) else 0.0 for s in stats])
        ax.errorbar(x, mean, yerr=err, capsize=3, label=r)
    ax.set_ylim(max(0.0, ax.get_ylim()[0]), 1.005)  # ToW lives in [0, 1]; wide CIs would stretch the axis
    ax.set_xticks(x, levels)
    ax.set_xlabel(f"{family} level of the forget set")
    ax.set_ylabel("ToW" if value == "tow" else value)
    ax.set_title(f"{'ToW' if value == 'tow' else value} against {family} level (mean ± 95% CI over seeds)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def tow_vs_es(df: pd.DataFrame) -> bytes | None:
    """ToW of every (forget set, method, seed) against the forget set's ES, one colour per method."""
    d = df[(df["method"] != ORIGINAL) & (df["variant"] == "vanilla") & np.isfinite(df["es"])]
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(STYLE)
    for m, g in d.groupby("method"):
        ax.scatter(g["es"], g["tow"], s=18, alpha=0.8, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("entanglement score (ES) of the forget set, log scale")
    ax.set_ylabel("ToW")
    ax.set_title("ToW against entanglement (each point: a forget set, method and seed)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def memorization_hist(mem: pd.DataFrame, split_half: float | None) -> bytes | None:
    """Histogram of the memorization estimate, titled with its split-half reliability."""
    if mem is None or "memorization" not in mem:
        return None
    v = mem["memorization"].dropna().to_numpy()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(v, bins=40, color="#4c72b0")
    ax.set_yscale("log")
    ax.set_xlabel("memorization estimate")
    ax.set_ylabel("examples (log scale)")
    rel = "n/a" if split_half is None else f"{split_half:.2f}"
    ax.set_title(f"memorization of {len(v)} training examples (split-half reliability {rel})")
    ax.grid(alpha=0.3)
    return _png(fig)


def proxies_vs_memorization(scores: pd.DataFrame) -> bytes | None:
    """Bar chart: Spearman correlation of every score with memorization."""
    if scores is None or "memorization" not in scores:
        return None
    corr = proxy_correlations(scores)
    if corr.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(corr) + 1.2))
    colors = ["#c44e52" if v < 0 else "#55a868" for v in corr["spearman"]]
    ax.barh(corr["score"], corr["spearman"], color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Spearman correlation with memorization")
    ax.set_title("proxies against memorization (first seed's original model)")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def cost_vs_tow(df: pd.DataFrame) -> bytes | None:
    """Mean ToW against mean cost ratio (seconds / retraining's) per method (/variant)."""
    d = df[df["method"] != ORIGINAL]
    if d.empty:
        return None
    d = d.assign(row=row_label(d)).groupby("row")[["cost_ratio", "tow"]].mean()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(d["cost_ratio"], d["tow"], color="#4c72b0")
    for name, r in d.iterrows():
        ax.annotate(name, (r["cost_ratio"], r["tow"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axvline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("wall time as a ratio of retraining (log scale; 1 = retraining)")
    ax.set_ylabel("mean ToW")
    ax.set_title("quality against cost")
    ax.grid(alpha=0.3)
    return _png(fig)
