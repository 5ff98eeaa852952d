"""The benchmark report: ``DIR/report.html`` (self-contained, figures embedded as
base64 PNG, opens from disk) and ``DIR/report.md`` (figures as PNG files in
``DIR/figures/``). Both are built from one list of blocks, so they always say
the same thing.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from unlearnkit.io import atomic_write
from unlearnkit.report import figures as figs
from unlearnkit.report.findings import findings, gain_by_kind, noise_warnings
from unlearnkit.report.tables import (
    ORIGINAL, ci_pivot, cost_table, kind_order, markdown_table, row_label, summary,
)


@dataclass
class Block:
    kind: str  # h2 | p | warn | table | fig
    text: str = ""
    table: pd.DataFrame | None = None
    png: bytes | None = None
    name: str = ""
    bold: set[tuple[int, str]] = field(default_factory=set)  # (row position, column) cells to highlight


def _words(params: Mapping[str, Any] | None) -> str:
    """``{"epochs": 1, "lr": 0.1}`` -> ``epochs 1, lr 0.1`` (no Python reprs in the report)."""
    return ", ".join(f"{k} {v}" for k, v in (params or {}).items())


def _best_cells(means: pd.DataFrame, higher: bool, skip: tuple[str, ...] = (ORIGINAL,)) -> set[tuple[int, str]]:
    """(row position, column) of the best mean in each column of a methods x columns table."""
    out = set()
    rows = [r for r in means.index if r not in skip]
    for c in means.columns:
        col = means.loc[rows, c].dropna()
        if not col.empty:
            out.add((list(means.index).index(col.idxmax() if higher else col.idxmin()), c))
    return out


def _verdict_table(items: list[Any]) -> pd.DataFrame:
    """Claims as one table: claim, verdict, difference [95% CI], n, detail, from
    :class:`unlearnkit.metrics.stats.Verdict` records (paired over seeds)."""
    recs = []
    for v in items:
        ci = "–" if math.isnan(v.diff) else (
            f"{v.diff:+.3f}" + ("" if math.isnan(v.lo) else f" [{v.lo:+.3f}, {v.hi:+.3f}]"))
        recs.append({"claim": v.claim, "verdict": v.status, "difference [95% CI]": ci, "n": v.n,
                     "detail": v.detail})
    return pd.DataFrame(recs, columns=["claim", "verdict", "difference [95% CI]", "n", "detail"])


def _reliability(ctx: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(warning about the memorization estimate, warning about the original's fit), or None each."""
    info = ctx.get("memorization_info") or {}
    split_half = info.get("split_half")
    if isinstance(split_half, Mapping):  # tolerate {"spearman": ...} layouts
        split_half = split_half.get("spearman")
    low = info.get("reliability_threshold")  # the memorization unit reports the threshold it judged by
    problems = list(info.get("warnings") or [])  # the estimator's own list, when it gives one
    if (not problems and isinstance(split_half, (int, float)) and low is not None and not math.isnan(split_half)
            and split_half < low):
        problems.append(f"split-half rank correlation {split_half:.2f} < {low} (K = {info.get('k', '?')} models)")
    mem = None
    if problems:
        mem = ("The memorization estimate is unreliable here: " + "; ".join(problems) + ". Forget sets by "
               "memorization level, the findings about them and the proxies' correlations inherit this; raise "
               "memorization.k for firmer results.")
    fit = (ctx.get("original_fit") or {}).get("warning")
    return mem, fit


def _summary_blocks(df: pd.DataFrame, ctx: Mapping[str, Any], verdicts: pd.DataFrame,
                    warnings: list[str]) -> list[Block]:
    cfg = ctx.get("config", {})
    seeds = sorted(df["seed"].unique()) if not df.empty else []
    kinds = kind_order(df["forget_kind"]) if not df.empty else []
    methods = sorted(set(row_label(df)) - {ORIGINAL}) if not df.empty else []
    ds = (cfg.get("dataset") or {}).get("name") or (df["dataset"].iloc[0] if not df.empty else "?")
    model = (cfg.get("model") or {}).get("name") or (df["model"].iloc[0] if not df.empty else "?")
    fit = (ctx.get("original_fit") or {}).get("train_accuracy") or {}
    lo_fit, hi_fit = (min(fit.values()), max(fit.values())) if fit else (None, None)
    fit_text = (f" (train accuracy of the original {lo_fit:.3f}" + (f"-{hi_fit:.3f}" if hi_fit != lo_fit else "")
                + (" in every seed" if len(fit) > 1 and hi_fit == lo_fit else "") + ")") if fit else ""
    out = [Block("h2", "Summary"),
           Block("p", f"**What was run:** {model} on {ds}{fit_text}; {len(seeds)} seeds; {len(kinds)} forget sets "
                      f"({', '.join(kinds)}); {len(methods)} methods and variants, each compared with a model "
                      f"retrained without the forget set (ToW 1 = indistinguishable from retraining), and with the "
                      f"original model (no unlearning at all) as the baseline to beat.")]
    if not verdicts.empty:
        counts = verdicts["verdict"].value_counts()
        out.append(Block("p", "**Verdicts:** " + ", ".join(f"{n} {s}" for s, n in counts.items())
                              + ". A claim is held when the 95% CI of its paired difference over seeds excludes 0 "
                                "in the claimed direction, contradicted when it excludes 0 the other way, and "
                                "inconclusive otherwise."))
        out.append(Block("table", "", table=verdicts))
    if warnings:
        out.append(Block("p", "**What is unreliable here, and why:**"))
        out += [Block("warn", w) for w in warnings]
    elif not df.empty:
        out.append(Block("p", "**Reliability:** no warning was raised (memorization reliability and the original's "
                              "fit passed their thresholds, every work unit finished)."))
    return out


def _setup_blocks(df: pd.DataFrame, ctx: Mapping[str, Any]) -> list[Block]:
    cfg = ctx.get("config", {})
    out = [Block("h2", "Set-up")]
    if cfg:
        ds, model, tr = cfg["dataset"], cfg["model"], cfg["training"]
        kw = {**model.get("kwargs", {}), **({"width": model["width"]} if model.get("width") else {})}
        out.append(Block("p", f"Dataset **{ds['name']}** (validation fraction {ds['val_fraction']}, split seed "
                              f"{ds['split_seed']}); model **{model['name']}**{' (' + _words(kw) + ')' if kw else ''}; "
                              f"training: {_words({k: v for k, v in tr.items() if k != 'seed'})}; seeds "
                              f"{', '.join(map(str, cfg['seeds']))}."))
        methods = "; ".join(f"{m} ({_words(p)})" if p else m for m, p in cfg["methods"].items())
        out.append(Block("p", f"Methods (hyperparameters set in the config; the rest from the presets or the "
                              f"defaults, see `unlearnkit methods NAME`): {methods or 'none'}."))
        if cfg.get("rum"):
            r = cfg["rum"]
            out.append(Block("p", f"RUM: variants {', '.join(r['variants'])} with {', '.join(r['methods']) or '-'}; "
                                  f"candidates for 'rum': {', '.join(r['candidates']) or '-'}; refined by "
                                  f"{r['refine_by']} into {r['groups']} groups; retain policy {r['retain']}."))
        if "sisa" in cfg["methods"]:
            s = cfg["sisa"]
            out.append(Block("p", f"SISA: {s['shards']} shards x {s['slices']} slices, {s['aggregate']} aggregation."))
        out.append(Block("p", f"MIA-efficacy: RBF SVC on true-label confidence, retain vs test, subsampled to at "
                              f"most {cfg['metrics']['mia_max_per_side']} per side."))
    out.append(Block("p", "Protocol: one original model per seed; every forget set is built from that seed's model "
                          "and its ES measured there; the reference is retrained from scratch on D minus the forget "
                          "set with the same recipe and seed; every row is compared with its own reference. "
                          "ToW = (1-Δforget)(1-Δretain)(1-Δtest), 1 = indistinguishable from retraining; "
                          "ToW-MIA uses the MIA-efficacy gap for the forget term. Rows 'original' are the model "
                          "before unlearning. CIs are 95% Student-t over seeds."))
    if not df.empty:
        fs = df.groupby("forget_kind").agg(size=("forget_size", "mean"), es=("es", "mean"))
        fs = fs.loc[kind_order(fs.index)].reset_index()
        fs["size"] = fs["size"].round().astype(int)
        fs["es"] = fs["es"].map(lambda v: f"{v:.2f}")
        out.append(Block("table", "Forget sets (size, mean ES over seeds)", table=fs))
    return out


def _es_note(df: pd.DataFrame) -> str | None:
    """The entanglement levels name distance bins; say how their ES actually ran."""
    ent = df[df["forget_kind"].str.startswith("entanglement-")]
    if ent["forget_kind"].nunique() < 2:
        return None
    es = ent.groupby("forget_kind")["es"].mean()
    es = es.loc[kind_order(es.index)]
    order = ", ".join(f"{k.removeprefix('entanglement-')} {v:.2f}" for k, v in es.items())
    rising = bool(np.all(np.diff(es.to_numpy()) > 0))
    return ("How to read the entanglement levels: they name bins of distance to the training centroid in the "
            "original's embedding (low = near, high = far), not ES values. ES (higher = more entangled with the "
            f"retain set = harder) per level here: {order}"
            + (" - it rises with the level." if rising else " - so here the level names do NOT run with the ES: "
               "a 'high' entanglement level is not the most entangled set. Read the ES, not the level name."))


# population.parquet columns shown in the report, and their headers
POPULATION_SHOWN = {"forget_kind": "forget set", "method": "method", "forget_quality": "F",
                    "forget_quality_grid": "F (scorer grid)", "final_score": "final score",
                    "klom_forget": "KLoM p95 forget", "klom_retain": "KLoM p95 retain", "klom_val": "KLoM p95 val",
                    "epsilon_mean": "mean ε", "forget_acc": "forget acc", "test_acc": "test acc"}
NOISE_FLOOR = "retrain_noise_floor"


def _population_blocks(pop: pd.DataFrame | None) -> list[Block]:
    """The population table (one row per forget set and method, N models per side) and how to read it."""
    if pop is None or pop.empty:
        return []
    n = sorted(int(v) for v in pop["n"].unique())
    top = sorted(float(v) for v in pop["max_epsilon"].unique())
    cols = [c for c in POPULATION_SHOWN if c != "forget_quality_grid" or pop[c].notna().any()]
    t = pop[cols].copy()
    for c in cols[2:]:
        t[c] = t[c].map(lambda v: "–" if math.isnan(v) else f"{v:.3f}")
    t["method"] = t["method"].replace({NOISE_FLOOR: "retrain (noise floor)"})
    t = t.rename(columns=POPULATION_SHOWN)
    return [Block("h2", f"Challenge score and KLoM (N = {', '.join(map(str, n))} models per side)"),
            Block("p", "On the first seed's forget set of each kind listed, N originals and N oracles (retrained "
                       "without the forget set) come from the ensemble engine; each method unlearns "
                       "every original. **F** (forget quality, in [0, 1]) is the unlearning challenge's mean bucket "
                       "score of per-example ε, counting ε only below ceil(log(N − 1)) = "
                       f"{', '.join(f'{v:g}' for v in top)}: higher = closer to retraining. **Final score** = F x "
                       "(retain accuracy / the oracles') x (test accuracy / the oracles'). **KLoM p95** (nats) is "
                       "the 95th percentile over a split's examples of the KL divergence between the oracles' and "
                       "the method's distributions of margins: lower = closer to retraining, 0 = like it. The "
                       "'retrain (noise floor)' row is a second N oracles scored the same way: what retraining "
                       "itself scores at this N (its sampling noise): a method that scores like it cannot be told "
                       "apart from retraining at this N; 'original' is doing nothing."),
            Block("table", "per forget set and method; F, final score higher is better, KLoM lower is better",
                  table=t)]


def build_blocks(df: pd.DataFrame, ctx: Mapping[str, Any]) -> list[Block]:
    """Everything the report says, in order: summary first, set-up last."""
    failures = ctx.get("failures") or {}
    warnings: list[str] = []
    if failures:
        roots = {k: v for k, v in failures.items() if not v.startswith("skipped: ")}
        shown = "; ".join(f"{k}: {v}" for k, v in list(roots.items())[:10])
        more = f" (and {len(roots) - 10} more)" if len(roots) > 10 else ""
        warnings.append(f"{len(roots)} work units failed and {len(failures) - len(roots)} depending on them were "
                        f"skipped; their rows are missing (see failures.json): {shown}{more}")
    mem_warn, fit_warn = _reliability(ctx)
    warnings += [w for w in (fit_warn, mem_warn) if w]
    seeds = df["seed"].nunique() if not df.empty else 0
    if 0 < seeds < 3:
        warnings.append(f"Only {seeds} seed(s): the 95% CIs are wide or undefined, so most verdicts can only be "
                        "inconclusive.")
    noise = noise_warnings(df) if not df.empty else []
    warnings += noise
    scores = ctx.get("scores")
    verdicts = _verdict_table(findings(df, scores)) if not df.empty else pd.DataFrame()
    blocks = _summary_blocks(df, ctx, verdicts, warnings)
    if df.empty:
        blocks.append(Block("p", "No results yet."))
        return blocks

    blocks.append(Block("h2", "Tug-of-War (mean ± 95% CI over seeds)"))
    for metric, caption in (("tow", "ToW: methods x forget sets (higher is better; bold = best in its column, "
                                    "the original excluded; the original row is doing nothing)"),
                            ("tow_mia", "ToW-MIA (the forget term from the MIA-efficacy gap)")):
        means, text = ci_pivot(df, metric)
        if metric == "tow_mia":  # the MIA noise warnings stand above the table they qualify
            blocks += [Block("warn", "WARNING: " + w) for w in noise]
        blocks.append(Block("table", caption, table=text, bold=_best_cells(means, higher=True)))
    gains = gain_by_kind(df)
    if not gains.empty:
        blocks.append(Block("table", "Each method against doing nothing, per forget set: ToW difference to the "
                                     "original, paired over seeds, with its 95% t CI and verdict (held = the CI "
                                     "excludes 0 upwards)", table=gains))
    es_note = _es_note(df)
    if es_note:
        blocks.append(Block("p", es_note))
    blocks += _population_blocks(ctx.get("population"))

    blocks.append(Block("h2", "Figures"))
    info = ctx.get("memorization_info") or {}
    split_half = info.get("split_half")
    if isinstance(split_half, Mapping):
        split_half = split_half.get("spearman")
    gain, kinds = figs.gain_over_original(df)
    # What qualifies every memorization-based figure: the estimate's reliability and the original's fit.
    mem_fig_warn = " ".join(w for w in (mem_warn, fit_warn) if w) or None
    candidates = [
        ("tow_gain_over_original", figs.tow_gain(df),
         f"ToW gain of each method over the original, paired by seed and forget set, on the {len(kinds)} forget "
         f"sets every method ran on ({', '.join(kinds)}).", None),
        ("tow_by_level", figs.tow_by_level(df),
         "ToW per method against the difficulty level of the forget set; memorization solid, entanglement dashed "
         "(levels name distance bins, see the ES note above); the grey lines are the original.", mem_fig_warn),
        ("tow_vs_es", figs.tow_vs_es(df), "ToW of each forget set against its ES, mean over methods (coloured) and "
                                          "the original (grey).", None),
        ("memorization_histogram", figs.memorization_hist(ctx.get("memorization"), split_half),
         "Memorization estimate and its split-half reliability.", mem_fig_warn),
        ("proxies_vs_memorization", figs.proxies_vs_memorization(scores), "Proxies against memorization.",
         mem_fig_warn),
        ("cost_vs_tow", figs.cost_vs_tow(df), "Quality against cost, on the common forget sets; the dashed line is "
                                              "the original (cost 0).", None),
    ]
    # extra_figures: {name: (png bytes, caption)}, e.g. the per-instance analysis's plots.
    extra = [(n, p, c, None) for n, (p, c) in (ctx.get("extra_figures") or {}).items()]
    for name, png, caption, warn in candidates + extra:
        if png is not None:
            if warn:  # the warning stands right above the figure it qualifies
                blocks.append(Block("warn", "WARNING: " + warn))
            blocks.append(Block("fig", caption, png=png, name=name))

    blocks.append(Block("h2", "Cost as a ratio of retraining"))
    cost = cost_table(df)
    bold = set()
    if not cost.empty:
        ratio = cost["cost ratio"].map(lambda t: float(str(t).split(" ")[0]) if str(t)[0].isdigit() else math.nan)
        bold = {(int(ratio.idxmin()), "cost ratio")} if ratio.notna().any() else set()
    blocks.append(Block("table", "wall time of the unlearning call (mean ± 95% CI); retraining = the reference; "
                                 "bold = cheapest", table=cost, bold=bold))
    blocks.append(Block("h2", "All results"))
    blocks.append(Block("table", "per forget set, method and variant (mean ± 95% CI over seeds)", table=summary(df)))
    return blocks + _setup_blocks(df, ctx)


# --------------------------------------------------------------------------- rendering


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
.scroll{overflow-x:auto;margin:.3em 0 1.5em}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}td.text{text-align:left;white-space:normal;min-width:14em}
td.best{font-weight:bold;background:#e8f3ea}.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
.held{color:#1a7f37;font-weight:bold}.contradicted,.nothold{color:#b42318;font-weight:bold}
.inconclusive,.nottested{color:#777}figure{margin:1em 0 2em}figcaption{font-size:13px;color:#555}img{max-width:100%}"""
STATUS_CLASS = {"held": "held", "contradicted": "contradicted", "inconclusive": "inconclusive",
                "not held": "nothold", "not tested": "nottested"}
TEXT_COLUMNS = {"claim", "detail"}  # free text: wraps; every other cell stays on one line


def _md_inline(text: str) -> str:
    # The only markup in block text is **bold** and `code`.
    parts = html.escape(text).split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table_html(b: Block) -> str:
    t = b.table.reset_index() if b.table.index.name is not None else b.table
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
    rows = []
    for i, rec in enumerate(t.itertuples(index=False)):
        cells = []
        for c, v in zip(t.columns, rec):
            text = "–" if isinstance(v, float) and math.isnan(v) else str(v)
            cls = ["best"] if (i, c) in b.bold else []
            if c in TEXT_COLUMNS:
                cls.append("text")
            inner = html.escape(text)
            if c in ("status", "verdict") and text in STATUS_CLASS:
                inner = f'<span class="{STATUS_CLASS[text]}">{inner}</span>'
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{inner}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def render_html(blocks: list[Block], title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            body.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            body.append(f"<p>{_md_inline(b.text)}</p>")
        elif b.kind == "warn":
            body.append(f'<p class="warn">{_md_inline(b.text)}</p>')
        elif b.kind == "table":
            if b.text:
                body.append(f"<p><i>{html.escape(b.text)}</i></p>")
            body.append(_table_html(b))
        elif b.kind == "fig":
            data = base64.b64encode(b.png).decode()
            body.append(f'<figure><img alt="{b.name}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def render_markdown(blocks: list[Block], title: str, figure_dir: str = "figures") -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            out += [f"## {b.text}", ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "warn":
            out += [f"> **{b.text}**", ""]
        elif b.kind == "table":
            if b.text:
                out += [f"*{b.text}*", ""]
            t = b.table.reset_index() if b.table.index.name is not None else b.table.copy()
            t = t.astype(object)
            for i, c in b.bold:
                t.iloc[i, list(t.columns).index(c)] = f"**{t.iloc[i, list(t.columns).index(c)]}**"
            out += [markdown_table(t), ""]
        elif b.kind == "fig":
            out += [f"![{b.text}]({figure_dir}/{b.name}.png)", ""]
    return "\n".join(out)


def write_report(out: str | Path, df: pd.DataFrame, context: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/report.html``, ``out/report.md`` and ``out/figures/*.png``; returns the HTML path."""
    out = Path(out)
    ctx = dict(context or {})
    blocks = build_blocks(df, ctx)
    title = f"unlearnkit benchmark: {ctx.get('config', {}).get('name', out.name)}"
    for b in blocks:
        if b.kind == "fig":
            atomic_write(out / "figures" / f"{b.name}.png", lambda tmp, png=b.png: Path(tmp).write_bytes(png))
    text_md = render_markdown(blocks, title)
    text_html = render_html(blocks, title)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(text_md))
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(text_html))
    return out / "report.html"
