"""``unlearnkit bench`` and ``unlearnkit demo`` (``results`` and ``report`` read what they write)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import typer
from rich.text import Text

from unlearnkit.cli.app import DEVICE, QUIET, app, console, examples
from unlearnkit.errors import UnlearnkitError

EXECUTOR = typer.Option(None, "--executor", help="local | ray (default: the config's executor, else local).")
ADDRESS = typer.Option(None, "--address", help="Ray cluster address (with --executor ray); default: a local Ray.")


def _print_tow(df) -> None:
    from unlearnkit.cli.results_cmd import metric_cells, render, terminal_width

    console.print("ToW: methods x forget sets (1 = indistinguishable from retraining)")
    console.print(render(metric_cells(df, "tow"), "tow", "table", True, terminal_width()), highlight=False,
                  markup=False)


def _print_population(out: Path) -> None:
    """The population table (when the config has a population block): F, final score, KLoM p95."""
    from unlearnkit.experiments.population import POPULATION

    path = out / POPULATION
    if not path.exists():
        return
    import pandas as pd

    df = pd.read_parquet(path)
    if df.empty:
        return
    from unlearnkit.report.writer import POPULATION_SHOWN

    cols = ("forget_kind", "method", "forget_quality", "final_score", "klom_forget", "klom_retain", "klom_val")
    t = df[list(cols)].rename(columns=POPULATION_SHOWN)
    n = ", ".join(str(v) for v in sorted(df["n"].unique()))
    console.print(f"Challenge score and KLoM, N = {n} models per side (F, final: higher = closer to retraining; "
                  "KLoM p95: lower; retrain_noise_floor = what retraining itself scores)")
    console.print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"), highlight=False, markup=False)


def _bench(config_path: Path, out: Path, executor: str | None, address: str | None, device: str | None, quiet: bool) -> None:
    from unlearnkit.experiments import load_config, run_bench

    cfg = load_config(config_path)
    start = time.perf_counter()
    res = run_bench(cfg, out, executor=executor, address=address, device=device, quiet=quiet,
                    log=lambda msg: console.print(Text(msg, style="dim"), highlight=False))
    wall = time.perf_counter() - start
    if not res.results.empty:
        _print_tow(res.results)
    _print_population(out)
    console.print(f"{len(res.results)} result rows -> {out / 'results.parquet'}  ({res.units_run} of "
                  f"{res.units_total} work units run now, {wall:.1f} s)")
    if res.report is not None:
        console.print(f"report: {res.report}  (and {out / 'report.md'})")
    if res.failures:
        roots = {k: v for k, v in res.failures.items() if not v.startswith("skipped: ")}
        for name, msg in roots.items():
            console.print(Text.assemble(("failed", "red"), f" {name}: {msg}"), highlight=False)  # plain text
        raise UnlearnkitError(
            f"{len(roots)} work units failed and {len(res.failures) - len(roots)} depending on them were skipped "
            f"(all listed in {out / 'failures.json'}); their rows are missing; fix the cause and re-run the "
            "same command: finished units are kept"
        )


@app.command(epilog=examples(
    "unlearnkit bench configs/fashion-mnist.yaml --out bench-fm",
    "unlearnkit bench configs/fashion-mnist.yaml --out bench-fm --executor ray --address HOST:6379",
))
def bench(
    config: Path = typer.Argument(..., help="YAML benchmark config (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Benchmark directory (created; re-use it to resume)."),
    executor: str = EXECUTOR,
    address: str = ADDRESS,
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda (default: the config's)."),
    quiet: bool = QUIET,
) -> None:
    """Run a benchmark: train, score, build forget sets, unlearn, evaluate, write results.parquet and a report.

    Every step is cached under a hash of its inputs in OUT/units: running the same
    command again after an interruption redoes only what was unfinished.
    """
    _bench(config, out, executor, address, device, quiet)


@app.command(epilog=examples("unlearnkit demo", "unlearnkit demo --out /tmp/demo --quiet"))
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Where to write the demo benchmark."),
    executor: str = EXECUTOR,
    address: str = ADDRESS,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Run the packaged demo benchmark (digits + mlp, the whole pipeline; measured times in docs/timings.md)."""
    with resources.as_file(resources.files("unlearnkit").joinpath("configs", "demo.yaml")) as path:
        _bench(Path(path), out, executor, address, device, quiet)
