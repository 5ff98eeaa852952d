"""``unlearnkit score``, ``es``, ``analyze-instances``, ``forget-set by-score`` and ``forget-set by-entanglement``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, DEVICE, FORGET, OVERWRITE, QUIET, RUN, app, console, examples, forget_app
from unlearnkit.cli.params import parse_assignments

SEED = typer.Option(0, "--seed", help="Seed (tie-breaking / sampling).")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


@app.command(epilog=examples(
    "unlearnkit score --run runs/orig --scores confidence,loss,margin",
    "unlearnkit score -r runs/orig --memorization runs/mem   (all scores, memorization from MEM_DIR)",
))
def score(
    run: Path = RUN,
    scores: str = typer.Option("all", "--scores", "-s", help="all, or a comma-separated list of score names."),
    memorization: Path = typer.Option(None, "--memorization", help="MEM_DIR written by `unlearnkit memorization`."),
    seed: int = SEED,
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Compute per-example difficulty scores into RUN_DIR/scores.parquet (merged with existing columns)."""
    from unlearnkit.difficulty import SCORES, score_run
    from unlearnkit.difficulty.scores import spearman
    from unlearnkit.runs import load_run

    names = [n.strip() for n in scores.split(",") if n.strip()]
    if memorization is not None and names != ["all"] and "memorization" not in names:
        # A memorization run given with a list that leaves it out is used, not silently dropped.
        names.append("memorization")
        console.print(f"adding the memorization score from {memorization} (given by --memorization)",
                      highlight=False)
    r = load_run(run, data_root=data_root)
    table = score_run(r, names if names != ["all"] else "all", memorization, quiet, device=device, seed=seed)
    seconds, skipped = table.attrs["seconds"], table.attrs["skipped"]
    corr = "memorization" in table.columns
    out = Table("score", "direction", "mean", "seconds", *(["Spearman vs memorization"] if corr else []))
    for name in seconds:
        row = [name, "high = harder" if SCORES.get(name).higher_is_harder else "low = harder",
               _fmt(float(table[name].mean())), f"{seconds[name]:.2f}"]
        if corr:
            row.append("-" if name == "memorization" else _fmt(spearman(table[name], table["memorization"])))
        out.add_row(*row)
    console.print(out)
    for name, reason in skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {reason}")
    console.print(f"{len(table)} examples -> {run / 'scores.parquet'}")


@app.command(epilog=examples("unlearnkit es --run runs/orig --forget f-high.json"))
def es(run: Path = RUN, forget: Path = FORGET, data_root: str = DATA_ROOT, device: str = DEVICE) -> None:
    """Entanglement Score of a forget set with the retain set in θ_o's embedding space (higher = harder)."""
    from unlearnkit.data import load_forget
    from unlearnkit.difficulty import run_entanglement
    from unlearnkit.runs import load_run

    r = load_run(run, data_root=data_root, device=device)
    fs = load_forget(forget, r.data)
    console.print(f"ES = {run_entanglement(r, fs):.6g}  ({len(fs)} forget examples)")


def _build_and_save(run: Path, data_root: str | None, out: Path, overwrite: bool, build) -> None:
    """Refuse an existing ``out`` (unless ``overwrite``) before any work, then build the forget set
    from the loaded run with ``build(run) -> ForgetSet`` and save it."""
    from unlearnkit.data import save_forget
    from unlearnkit.io import check_new_file
    from unlearnkit.runs import load_run

    check_new_file(out, overwrite)
    fs = build(load_run(run, data_root=data_root))
    save_forget(out, fs)
    m = fs.meta
    st = m["score_stats"]
    es_text = f"  ES {m['es']:.4g}" if m.get("es") is not None else ""
    console.print(
        f"{m['kind']}: {len(fs)} examples, {m['score']} mean {st['mean']:.4g} "
        f"[{st['min']:.4g}, {st['max']:.4g}]{es_text} -> {out}"
    )


@forget_app.command("by-score", epilog=examples(
    "unlearnkit forget-set by-score --run runs/orig --score memorization --level high --size 100 --out f-high.json",
    "unlearnkit forget-set by-score -r runs/orig --score confidence --level low -n 100 -o f-easy.json",
))
def by_score(
    run: Path = RUN,
    score: str = typer.Option(..., "--score", help="A column of RUN_DIR/scores.parquet (e.g. memorization, confidence)."),
    level: str = typer.Option(..., "--level", help="low | medium | high | mix (high = hardest)."),
    size: int = typer.Option(..., "--size", "-n", help="Number of examples."),
    out: Path = typer.Option(..., "--out", "-o", help="Forget file to write (.json keeps provenance)."),
    seed: int = SEED,
    data_root: str = DATA_ROOT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Forget set of the SIZE examples at LEVEL of a score (docs/difficulty.md: the levels)."""
    from unlearnkit.difficulty import forget_by_score

    _build_and_save(run, data_root, out, overwrite, lambda r: forget_by_score(r, score, level, size, seed))


@forget_app.command("by-entanglement", epilog=examples(
    "unlearnkit forget-set by-entanglement --run runs/orig --level low --size 100 --out f-es-low.json",
    "unlearnkit forget-set by-entanglement -r runs/orig --level high -n 100 --construction rum-bins --out f-rum.json",
))
def by_entanglement(
    run: Path = RUN,
    level: str = typer.Option(..., "--level", help="low | medium | high | mix (ordered by measured ES)."),
    size: int = typer.Option(..., "--size", "-n", help="Number of examples."),
    construction: str = typer.Option(
        "es-quantiles", "--construction",
        help="es-quantiles (built to target ES) | rum-bins (RUM: first n of bin 3/12/14 of --bins).",
    ),
    bins: int = typer.Option(15, "--bins", help="rum-bins: equal bins of distance to the training centroid."),
    out: Path = typer.Option(..., "--out", "-o", help="Forget file to write (.json keeps provenance)."),
    seed: int = SEED,
    data_root: str = DATA_ROOT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Forget set at an entanglement level: its Entanglement Score with the rest, low < medium < high."""
    from unlearnkit.difficulty import forget_by_entanglement

    _build_and_save(run, data_root, out, overwrite,
                    lambda r: forget_by_entanglement(r, bins, level, size, seed, construction=construction))


@app.command("analyze-instances", epilog=examples(
    "unlearnkit analyze-instances --run runs/orig --forget f.json --methods retrain,finetune --seeds 3 --out inst",
))
def analyze_instances_cmd(
    run: Path = RUN,
    forget: Path = FORGET,
    methods: str = typer.Option("retrain,finetune,neggrad_plus", "--methods", help="Comma-separated method names."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per method (and retrained references)."),
    sets: list[str] = typer.Option(None, "--set", help="Hyperparameter METHOD.KEY=VALUE (repeatable), e.g. finetune.epochs=5."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for instances.parquet, analysis.json, PNGs."),
    hard_threshold: float = typer.Option(0.1, "--hard-threshold", help="Difficulty above which an example counts as hard."),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Per-example unlearning difficulty across methods and seeds (docs/difficulty.md)."""
    from unlearnkit.data import load_forget
    from unlearnkit.meta import analyze_instances
    from unlearnkit.runs import load_run

    r = load_run(run, data_root=data_root)
    fs = load_forget(forget, r.data)
    params = parse_assignments(sets, "--set", scope="required", scope_name="METHOD", hint=lambda: "e.g. finetune.epochs=5")
    res = analyze_instances(r, fs, methods.split(","), seeds, out, params, quiet=quiet, device=device,
                            hard_threshold=hard_threshold, overwrite=overwrite)
    s = res.summary
    t = Table("method", "mean difficulty", f"fraction > {hard_threshold}")
    for m in s["methods"]:
        t.add_row(m, f"{s['mean_difficulty'][m]:.4f}", f"{s['hard_fraction'][m]:.3f}")
    console.print(t)
    for pair, rho in s["method_correlations"].items():
        console.print(f"Spearman {pair}: {_fmt(rho)}")
    top = sorted(((abs(v), k, v) for k, v in s["score_correlations"].items() if v is not None), reverse=True)[:5]
    console.print("scores most correlated with difficulty: " + ", ".join(f"{k} {v:+.3f}" for _, k, v in top))
    console.print(f"hard-vs-rest classifier AUC (cross-validated): {_fmt(s['classifier']['auc'])}")
    for m, reason in s["skipped"].items():
        console.print(f"[yellow]skipped {m}[/]: {reason}")
    console.print(f"-> {out}")
