"""``unlearnkit evaluate``: accuracies, MIA, ToW against references, ε and KLoM over seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, DEVICE, FORGET, OVERWRITE, QUIET, app, console, examples
from unlearnkit.errors import UnlearnkitError

# metrics.mia.DEFAULT_MAX_PER_SIDE, repeated so that --help does not import scikit-learn
# (tests/test_cli_startup.py checks that the two agree).
MIA_MAX_DEFAULT = 2000


def _fmt(v: Any) -> str:
    """A number, or ``mean [lo, hi]`` for an aggregate over seeds."""
    if isinstance(v, dict):
        lo, hi = v["ci95"]
        ci = f" [{lo:.4f}, {hi:.4f}]" if not math.isnan(lo) else ""
        return f"{v['mean']:.4f}{ci}"
    return "-" if v is None or math.isnan(v) else f"{v:.4f}"


@app.command(epilog=examples(
    "unlearnkit evaluate --model runs/salun --reference runs/retrain --forget f.json --out metrics.json",
    "unlearnkit evaluate --model runs/salun-s0 --model runs/salun-s1 --reference runs/re-s0 "
    "--reference runs/re-s1 -f f.json -o metrics.json",
))
def evaluate(
    model: list[Path] = typer.Option(..., "--model", help="Run directory to evaluate (repeat for seeds)."),
    reference: list[Path] = typer.Option(
        None, "--reference", help="Retrained reference run directory (repeat for seeds)."
    ),
    forget: Path = FORGET,
    out: Path = typer.Option(..., "--out", "-o", help="metrics.json to write."),
    mia_max: int = typer.Option(
        MIA_MAX_DEFAULT, "--mia-max", min=1, help="MIA-efficacy SVC: at most this many examples per side."
    ),
    per_example: Path = typer.Option(None, "--per-example", help="Parquet file of per-example outputs on the forget set."),
    seed: int = typer.Option(0, "--seed", help="Seed of the MIA subsampling and folds."),
    pairing: str = typer.Option(
        "seed", "--pairing",
        help="seed: model of seed s vs reference of seed s (mean and CI over pairs); mean: every model vs the "
        "mean of the references.",
    ),
    epsilon_grid: str = typer.Option(
        "exact", "--epsilon-grid", help="Per-example ε thresholds: exact (every attack) or scorer (the "
        "challenge scorer's 0.01 grid).",
    ),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Evaluate runs on a forget set; with references, ToW / ToW-MIA / gap; with N of each, ε."""
    from unlearnkit.data import load_forget
    from unlearnkit.io import check_new_file, write_json, write_parquet
    from unlearnkit.metrics.evaluate import COMPARISONS, METRICS, evaluate_runs, load_runs, to_jsonable

    if per_example is not None and per_example.suffix != ".parquet":
        raise UnlearnkitError(f"--per-example {per_example}: expected a .parquet file")
    for path in (out, per_example):
        if path is not None:
            check_new_file(path, overwrite)
    models = load_runs(model, data_root=data_root, device=device, what="model")
    data = models[0].data
    refs = load_runs(reference or [], data=data, device=device, what="reference")
    fs = load_forget(forget, data)
    report = evaluate_runs(models, refs, fs, pairing=pairing, epsilon_grid=epsilon_grid,  # type: ignore[arg-type]
                           mia_max_per_side=mia_max, seed=seed, quiet=quiet)
    res, table_df = report.to_dict(), report.per_example

    table = Table(title=f"{data.spec['name']}: forget set {forget.name} ({len(fs)} examples)")
    table.add_column("metric")
    table.add_column(f"model (n={len(models)})", justify="right")
    if refs:
        table.add_column(f"reference (n={len(refs)})", justify="right")
    for m in METRICS:
        table.add_row(m, _fmt(res[m]), *([_fmt(res["reference"][m])] if refs else []))
    if refs:
        for c in COMPARISONS:
            table.add_row(c, _fmt(res[c]), "")
    eps = res.get("epsilon")
    if eps:
        for k in ("mean", "median", "forget_quality", "final_score"):
            table.add_row(f"epsilon {k}" if k in ("mean", "median") else k, _fmt(eps[k]), "")
    kl = res.get("klom")
    if kl:
        for split, v in kl["p95"].items():
            table.add_row(f"KLoM p95 {split}", _fmt(v), "")
    console.print(table)
    sides = f"{len(models)} model(s) of {report.method}" + (f", {len(refs)} reference(s), pairing {pairing}" if refs else "")
    console.print(f"used {sides}", style="dim")
    if not eps and refs:
        console.print("per-example ε and KLoM need at least 2 models and 2 references (seeds)", style="dim")
    console.print(
        f"MIA-efficacy: mean over {report.mia['repeats']} SVC fits on at most {mia_max} retain and {mia_max} "
        f"test examples (seeds {seed}..{seed + report.mia['repeats'] - 1})", style="dim"
    )
    for w in report.warnings:
        console.print(f"warning: {w}", style="yellow")

    write_json(out, to_jsonable(res))
    if per_example is not None:
        write_parquet(per_example, table_df)
    console.print(f"wrote {out}" + (f" and {per_example}" if per_example else ""))
