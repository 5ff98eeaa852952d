"""The benchmark report: ``DIR/report.html`` (self-contained, figures embedded as
base64 PNG, opens from disk) and ``DIR/report.md`` (figures as PNG files in
``DIR/figures/``). Both are built from one list of blocks, so they always say
the same thing.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from unlearnkit.io import atomic_write
from unlearnkit.report import figures as figs
from unlearnkit.report.tables import ci_pivot, cost_table, findings, kind_order, markdown_table, summary



@dataclass
class Block:
    kind: str  # h2 | p | warn | table | fig
    text: str = ""
    table: pd.DataFrame | None = None
    png: bytes | None = None
    name: str = ""


def _setup_blocks(df: pd.DataFrame, ctx: Mapping[str, Any]) -> list[Block]:
    cfg = ctx.get("config", {})
    out = [Block("h2", "Set-up")]
    if cfg:
        ds, model, tr = cfg["dataset"], cfg["model"], cfg["training"]
        kw = {**model.get("kwargs", {}), **({"width": model["width"]} if model.get("width") else {})}
        out.append(Block("p", f"Dataset **{ds['name']}** (validation fraction {ds['val_fraction']}, split seed "
                              f"{ds['split_seed']}); model **{model['name']}** {kw or ''}; training: "
                         + ", ".join(f"{k} {v}" for k, v in tr.items() if k != "seed") + f"; seeds {cfg['seeds']}."))
        methods = ", ".join(f"{m} {p}" if p else m for m, p in cfg["methods"].items())
        out.append(Block("p", f"Methods: {methods or 'none'}."))
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


def build_blocks(df: pd.DataFrame, ctx: Mapping[str, Any]) -> list[Block]:
    """Everything the report says, in order."""
    blocks = _setup_blocks(df, ctx)
    failures = ctx.get("failures") or {}
    if failures:
        roots = {k: v for k, v in failures.items() if not v.startswith("skipped: ")}
        shown = "; ".join(f"{k}: {v}" for k, v in list(roots.items())[:10])
        more = f" (and {len(roots) - 10} more)" if len(roots) > 10 else ""
        blocks.append(Block("warn", f"{len(roots)} work units failed and {len(failures) - len(roots)} depending on "
                                    f"them were skipped; their rows are missing (see failures.json): {shown}{more}"))
    if df.empty:
        blocks.append(Block("p", "No results yet."))
        return blocks
    scores = ctx.get("scores")
    blocks.append(Block("h2", "Findings of the papers, checked on this run"))
    f = pd.DataFrame([{"claim": x.claim, "status": x.status, "evidence": x.evidence} for x in findings(df, scores)])
    blocks.append(Block("table", "", table=f))

    blocks.append(Block("h2", "Tug-of-War (mean ± 95% CI over seeds)"))
    blocks.append(Block("table", "ToW: methods x forget sets (higher is better)", table=ci_pivot(df, "tow")[1]))
    blocks.append(Block("table", "ToW-MIA", table=ci_pivot(df, "tow_mia")[1]))

    blocks.append(Block("h2", "Figures"))
    info = ctx.get("memorization_info") or {}
    split_half = info.get("split_half")
    if isinstance(split_half, Mapping):  # tolerate {"spearman": ...} layouts
        split_half = split_half.get("spearman")
    candidates = [
        ("tow_vs_memorization", figs.tow_by_level(df, "memorization"), "ToW against memorization level."),
        ("tow_vs_entanglement_level", figs.tow_by_level(df, "entanglement"), "ToW against entanglement level."),
        ("tow_vs_es", figs.tow_vs_es(df), "ToW against the forget set's ES."),
        ("memorization_histogram", figs.memorization_hist(ctx.get("memorization"), split_half),
         "Memorization estimate and its split-half reliability."),
        ("proxies_vs_memorization", figs.proxies_vs_memorization(scores), "Proxies against memorization."),
        ("cost_vs_tow", figs.cost_vs_tow(df), "Quality against cost."),
    ]
    # The memorization unit reports the threshold it judged by (its one home is the estimator).
    low = info.get("reliability_threshold")
    if (split_half is not None and low is not None and not (isinstance(split_half, float) and math.isnan(split_half))
            and split_half < low):
        blocks.append(Block("warn", f"WARNING: the memorization estimate is unreliable here: split-half rank "
                                    f"correlation {split_half:.2f} < {low} (K={info.get('k', '?')} models). "
                                    f"Memorization levels are noisy; raise memorization.k for firmer results."))
    # extra_figures: {name: (png bytes, caption)}, e.g. the per-instance analysis's plots.
    extra = [(n, p, c) for n, (p, c) in (ctx.get("extra_figures") or {}).items()]
    for name, png, caption in candidates + extra:
        if png is not None:
            blocks.append(Block("fig", caption, png=png, name=name))

    blocks.append(Block("h2", "Cost as a ratio of retraining"))
    blocks.append(Block("table", "wall time of the unlearning call (mean ± 95% CI); retraining = the reference",
                        table=cost_table(df)))
    blocks.append(Block("h2", "All results"))
    blocks.append(Block("table", "per forget set, method and variant (mean ± 95% CI over seeds)", table=summary(df)))
    return blocks


# --------------------------------------------------------------------------- rendering


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
.held{color:#1a7f37;font-weight:bold}.nothold{color:#b42318;font-weight:bold}.nottested{color:#777}
figure{margin:1em 0}figcaption{font-size:13px;color:#555}img{max-width:100%}"""


def _md_inline(text: str) -> str:
    # The only markup in block text is **bold**.
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _status_html(table: pd.DataFrame) -> str:
    t = table.copy()
    if "status" in t:
        cls = {"held": "held", "not held": "nothold", "not tested": "nottested"}
        t["status"] = [f'<span class="{cls.get(s, "")}">{html.escape(s)}</span>' for s in t["status"]]
        escaped = {c: t[c].map(lambda v: html.escape(str(v))) for c in t.columns if c != "status"}
        t = t.assign(**escaped)
        return t.to_html(index=False, escape=False, border=0)
    return t.to_html(index=t.index.name is not None, escape=True, border=0, na_rep="–")


def render_html(blocks: list[Block], title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            body.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            body.append(f"<p>{_md_inline(b.text)}</p>")
        elif b.kind == "warn":
            body.append(f'<p class="warn">{html.escape(b.text)}</p>')
        elif b.kind == "table":
            if b.text:
                body.append(f"<p><i>{html.escape(b.text)}</i></p>")
            body.append(_status_html(b.table))
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
            out += [markdown_table(b.table, index=b.table.index.name is not None), ""]
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
