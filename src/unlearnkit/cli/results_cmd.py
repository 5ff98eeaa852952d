"""``unlearnkit results DIR`` (a metric as methods x forget sets) and ``unlearnkit report DIR``.

The tables are plain text, never cut: names are printed whole, and when a table is wider
than the terminal its columns continue in further blocks that repeat the row names. In a
pipe or a file nothing is wrapped at all (one line per row).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from unlearnkit.cli.app import app, console, examples, flag
from unlearnkit.errors import UnlearnkitError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "csv", "md", "json")
# Forget-set families shortened in column headers (the key under the table spells them out).
SHORT = {"memorization": "mem", "entanglement": "ent"}
# Which way is better, for marking the best value of each column.
HIGHER_IS_BETTER = {"tow", "tow_mia", "retain_acc", "test_acc"}
LOWER_IS_BETTER = {"seconds", "cost_ratio"}


def short_kind(kind: str) -> str:
    """``memorization-high`` -> ``mem-high``; other kinds unchanged."""
    family, sep, level = kind.partition("-")
    return f"{SHORT[family]}-{level}" if sep and family in SHORT else kind


def text_table(header: list[str], rows: list[list[str]], width: int | None, keep: int = 1) -> str:
    """Aligned plain-text columns (first ``keep`` left-aligned, the rest right-aligned).

    With ``width``, columns that do not fit continue in further blocks, each repeating
    the first ``keep`` columns, so no cell is ever cut. ``width=None``: one block.
    """
    cols = list(zip(header, *rows)) if rows else [(h,) for h in header]
    widths = [max(len(str(c)) for c in col) for col in cols]
    fixed = list(range(keep))
    blocks: list[list[int]] = []
    current: list[int] = []
    used = sum(widths[i] + 2 for i in fixed)
    for i in range(keep, len(header)):
        if width is not None and current and used + widths[i] + 2 > width:
            blocks.append(current)
            current, used = [], sum(widths[j] + 2 for j in fixed)
        current.append(i)
        used += widths[i] + 2
    blocks.append(current)

    def line(cells: list[str], idx: list[int]) -> str:
        parts = [str(cells[i]).ljust(widths[i]) if i < keep else str(cells[i]).rjust(widths[i]) for i in idx]
        return "  ".join(parts).rstrip()

    out: list[str] = []
    for b, idx in enumerate(blocks):
        idx = fixed + idx
        if b:
            out.append("")
        out.append(line(header, idx))
        out.append("  ".join("-" * widths[i] for i in idx))
        out += [line(r, idx) for r in rows]
    return "\n".join(out)


def terminal_width() -> int | None:
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def metric_cells(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One record per (method row, forget set): ``method``, ``forget_kind``, ``n``, ``mean``, ``lo``, ``hi``."""
    import pandas as pd

    from unlearnkit.metrics.stats import mean_ci
    from unlearnkit.report.tables import ORIGINAL, kind_order, row_label

    d = df.assign(row=row_label(df))
    recs = []
    for (r, k), g in d.groupby(["row", "forget_kind"]):
        m, lo, hi = mean_ci(g[metric].to_numpy(dtype="float64"))
        recs.append({"method": r, "forget_kind": k, "n": len(g), "mean": m, "lo": lo, "hi": hi})
    out = pd.DataFrame(recs, columns=["method", "forget_kind", "n", "mean", "lo", "hi"])
    order = {k: i for i, k in enumerate(kind_order(out["forget_kind"]))}
    return out.sort_values(["method", "forget_kind"], key=lambda s: s.map(order) if s.name == "forget_kind" else
                           s.map(lambda r: (r != ORIGINAL, r))).reset_index(drop=True)


def _best(cells: pd.DataFrame, metric: str) -> set[tuple[str, str]]:
    """(method, forget set) of the best mean per forget set (the original excluded)."""
    from unlearnkit.report.tables import ORIGINAL

    if metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        return set()
    c = cells[(cells["method"] != ORIGINAL) & cells["mean"].notna()]
    if c.empty:
        return set()
    pick = c.groupby("forget_kind")["mean"].idxmax() if metric in HIGHER_IS_BETTER else \
        c.groupby("forget_kind")["mean"].idxmin()
    return {(c.loc[i, "method"], c.loc[i, "forget_kind"]) for i in pick}


def render(cells: pd.DataFrame, metric: str, fmt: str, ci: bool, width: int | None) -> str:
    """The methods x forget sets table of ``metric`` in ``fmt`` (see :data:`FORMATS`)."""
    from unlearnkit.report.tables import fmt_ci
    if fmt == "csv":
        cols = ["method", "forget_kind", "n", "mean", *(["lo", "hi"] if ci else [])]
        return cells[cols].to_csv(index=False, float_format="%.6g").rstrip("\n")
    if fmt == "json":
        recs = cells.to_dict(orient="records")
        for r in recs:
            for k in ("mean", "lo", "hi"):
                r[k] = None if math.isnan(r[k]) else r[k]
            if not ci:
                r.pop("lo"), r.pop("hi")
        return json.dumps({"metric": metric, "rows": recs}, indent=1)
    kinds = list(dict.fromkeys(cells["forget_kind"]))
    methods = list(dict.fromkeys(cells["method"]))
    best = _best(cells, metric)
    by = {(r.method, r.forget_kind): r for r in cells.itertuples(index=False)}
    rows = []
    for m in methods:
        row = [m]
        for k in kinds:
            r = by.get((m, k))
            text = "-" if r is None or math.isnan(r.mean) else fmt_ci(r.mean, r.lo if ci else math.nan, r.hi)
            row.append(text + (" *" if (m, k) in best else ("  " if best else "")))
        rows.append(row)
    n = sorted(set(cells["n"]))
    n_text = f"n = {n[0]} seeds per cell" if len(n) == 1 else f"n = {n[0]}..{n[-1]} seeds per cell"
    notes = [f"{metric}: mean{' ± 95% CI half-width' if ci else ''} over seeds; {n_text}"]
    if best:
        notes.append(f"* best in its column ({'highest' if metric in HIGHER_IS_BETTER else 'lowest'}; "
                     "the original excluded)")
    if fmt == "md":
        from unlearnkit.report.tables import markdown_table
        import pandas as pd

        table = markdown_table(pd.DataFrame(rows, columns=["method", *kinds]))
        return table + "\n\n" + "; ".join(notes)
    header = ["method", *(short_kind(k) for k in kinds)]
    key = [f"{short_kind(k)} = {k}" for k in kinds if short_kind(k) != k]
    if key:
        notes.append("key: " + ", ".join(key))
    if width is not None:  # in a terminal, break the notes between words, not inside them
        notes = [textwrap.fill(n, width, break_long_words=False, break_on_hyphens=False) for n in notes]
    return text_table(header, rows, width) + "\n" + "\n".join(notes)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text)
        return
    from unlearnkit.io import write_bytes

    write_bytes(out, (text + "\n").encode())
    console.print(f"-> {out}", highlight=False)


@app.command(epilog=examples(
    "unlearnkit results demo-out",
    "unlearnkit results demo-out --metric forget_acc --no-ci",
    "unlearnkit results demo-out --format csv --out tow.csv",
    "unlearnkit results demo-out --group-by forget_kind,method",
))
def results(
    directory: Path = typer.Argument(..., help="A bench directory (or its results.parquet)."),
    metric: str = typer.Option("tow", "--metric", help="Column to tabulate: tow, tow_mia, forget_acc, seconds, ..."),
    no_ci: bool = flag("--no-ci", help="Means only, without the 95% confidence intervals."),
    fmt: str = typer.Option("table", "--format", help="table | csv | md | json."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of the terminal."),
    group_by: str = typer.Option(None, "--group-by",
                                 help="Instead: every summary metric per group of these comma-separated columns."),
) -> None:
    """Print one metric as methods x forget sets (mean ± 95% CI over seeds) from results.parquet."""
    from unlearnkit.experiments import read_results

    if fmt not in FORMATS:
        raise UnlearnkitError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    df = read_results(directory)
    numeric = [c for c in df.columns if df[c].dtype.kind in "fiu" and c != "seed"]
    if metric not in numeric:
        raise UnlearnkitError(f"--metric {metric}: not a numeric column of the results; choose from: "
                              f"{', '.join(numeric)}")
    if df.empty:
        raise UnlearnkitError(f"{directory}: the results table has no rows yet")
    if group_by is not None:
        _emit(_summary_text(df, group_by, fmt), out)
        return
    width = terminal_width() if out is None else None
    _emit(render(metric_cells(df, metric), metric, fmt, not no_ci, width), out)


def _summary_text(df: pd.DataFrame, group_by: str, fmt: str) -> str:
    from unlearnkit.report.tables import markdown_table, summary

    cols = [c.strip() for c in group_by.split(",") if c.strip()]
    bad = [c for c in cols if c not in df.columns]
    if bad or not cols:
        raise UnlearnkitError(f"--group-by: unknown columns {bad}; choose from: {', '.join(df.columns)}")
    table = summary(df, cols)
    if fmt == "csv":
        return table.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return table.to_json(orient="records", indent=1, force_ascii=False)
    if fmt == "md":
        return markdown_table(table)
    rows = [[str(v) for v in r] for r in table.itertuples(index=False)]
    return text_table(list(table.columns), rows, terminal_width(), keep=len(cols))


@app.command(epilog=examples("unlearnkit report demo-out", "unlearnkit report bench-fm"))
def report(
    directory: Path = typer.Argument(..., help="A bench directory (with results.parquet and config.json)."),
) -> None:
    """Write DIR/report.html and DIR/report.md again from DIR/results.parquet (nothing is re-run)."""
    from unlearnkit.experiments import build_plan, read_results, validate_config
    from unlearnkit.experiments.runner import report_context
    from unlearnkit.io import read_json
    from unlearnkit.report import write_report

    df = read_results(directory)
    root = directory if directory.is_dir() else directory.parent
    if not (root / "config.json").exists():
        raise UnlearnkitError(f"{root}: no config.json; `unlearnkit report` needs a directory written by `unlearnkit bench`")
    data = read_json(root / "config.json", what="bench config")
    # config.json is the dump of the validated config, so it spells out the training seed that
    # the config itself must leave to the top-level `seeds`.
    (data.get("training") or {}).pop("seed", None)
    cfg = validate_config(data, source=str(root / "config.json"))
    failures = read_json(root / "failures.json") if (root / "failures.json").exists() else {}
    # The plan only locates the finished units (opts are not part of a unit's identity).
    plan = build_plan(cfg, {"device": "cpu", "data_root": cfg.dataset.data_root, "executor": "local",
                            "address": None, "quiet": True, "threads": cfg.executor.threads})
    path = write_report(root, df, context=report_context(plan, root, cfg, failures))
    console.print(f"report: {path}  (and {path.with_suffix('.md')})", highlight=False)
