"""The benchmark, end to end: config -> plan -> units run -> results.parquet -> report.

The pieces: :mod:`.plan` (which units, which rows), :mod:`.handlers` (what each unit kind
does), :mod:`.schedule` (running units wave by wave through an executor) and
:mod:`.store` (the results table). Every step is a :class:`~unlearnkit.experiments.units.WorkUnit`,
so an interrupted bench resumes where it stopped and gives the same table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from unlearnkit.experiments.config import BenchConfig
from unlearnkit.experiments.handlers import INSTANCES, MEM, RUN
from unlearnkit.experiments.lock import BenchLock
from unlearnkit.experiments.plan import Plan, build_plan
from unlearnkit.experiments.population import population_frame, write_population
from unlearnkit.experiments.schedule import execute
from unlearnkit.experiments.store import result_row, results_frame, write_results
from unlearnkit.io import write_json
from unlearnkit.training import resolve_device


@dataclass
class Outcome:
    """What :func:`run_bench` returns."""

    out: Path
    results: pd.DataFrame
    failures: dict[str, str]
    units_total: int
    units_run: int
    report: Path | None = None


def collect_results(plan: Plan, root: Path, cfg: BenchConfig) -> pd.DataFrame:
    """The results table from the finished units (rows whose units failed are left out).

    With ``metrics.pairing: mean`` every row is scored against the mean of its
    kind of reference (single retrain or SISA's own) over all seeds of its forget kind.
    """
    rows = []
    done = []
    for r in plan.rows:
        needed = [r.evaluation, r.reference, r.reference_eval, r.forget] + ([r.model] if r.model else [])
        needed += [u for u in (r.retrain, r.retrain_eval) if u is not None]
        if all(u.done(root) for u in needed):
            done.append(r)
    ref_of = {id(r): r.reference_eval.record(root)["summary"] for r in done}
    if cfg.metrics.pairing == "mean":
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in done:
            groups.setdefault((r.setup["forget_kind"], r.reference.kind), []).append(ref_of[id(r)])
        means = {k: {m: float(np.mean([g[m] for g in v])) for m in ("forget_acc", "retain_acc", "test_acc",
                                                                      "mia_efficacy", "mia_auc")}
                 for k, v in groups.items()}
        ref_of = {id(r): means[(r.setup["forget_kind"], r.reference.kind)] for r in done}
    for r in done:
        fs = r.forget.record(root)["summary"]
        ref = r.reference.record(root)["summary"]
        model = r.model.record(root)["summary"] if r.model else {"seconds": 0.0, "examples_processed": 0}
        setup = {"dataset": cfg.dataset.name, "model": cfg.model.name, "forget_size": fs["size"], "es": fs["es"], **r.setup}
        retrain = retrain_s = None
        if r.retrain is not None and r.retrain_eval is not None:
            retrain, retrain_s = r.retrain_eval.record(root)["summary"], r.retrain.record(root)["summary"]["seconds"]
        row = result_row(setup, r.evaluation.record(root)["summary"], ref_of[id(r)],
                         model["seconds"], ref["seconds"], model.get("examples_processed"), retrain, retrain_s)
        rows.append({**row, "params": json.dumps(model.get("params", {}), sort_keys=True)})
    return results_frame(rows)


def run_bench(
    cfg: BenchConfig,
    out: str | Path,
    *,
    executor: str | None = None,
    address: str | None = None,
    device: str | None = None,
    quiet: bool = True,
    report: bool = True,
    log: Callable[[str], None] = lambda msg: None,
) -> Outcome:
    """Run (or resume) the benchmark ``cfg`` in directory ``out``.

    Writes ``out/config.json``, ``out/units/...``, ``out/results.parquet``, ``out/population.parquet``
    (with a ``population:`` block),
    ``out/failures.json`` (when units failed) and, with ``report``,
    ``out/report.html`` and ``out/report.md``. ``executor``/``address``/``device``
    override the config's. Holds ``out/bench.lock`` while running.
    """
    out = Path(out)
    ex = executor or cfg.executor.kind
    addr = address if address is not None else cfg.executor.address
    opts = {"device": device or cfg.device, "data_root": cfg.dataset.data_root, "executor": ex, "address": addr,
            "quiet": quiet, "threads": cfg.executor.threads}
    resolve_device(opts["device"])  # --device cuda without a GPU: one line now, not one per unit
    with BenchLock(out, notify=log):
        write_json(out / "config.json", cfg.model_dump(by_alias=True))
        plan = build_plan(cfg, opts)
        pending = sum(not u.done(out) for u in plan.units)
        log(f"{len(plan.units)} work units, {len(plan.units) - pending} already done")
        failures, ran = execute(plan.units, out, ex, addr, quiet, log, cfg.executor.threads, cfg.executor.workers)
        df = collect_results(plan, out, cfg)
        write_results(out, df)
        write_population(out, plan.population)
        fail_path = out / "failures.json"
        if failures:
            write_json(fail_path, failures)
        elif fail_path.exists():
            fail_path.unlink()
        outcome = Outcome(out, df, failures, len(plan.units), ran)
        if report:
            from unlearnkit.report import write_report  # matplotlib: only when a report is wanted

            outcome.report = write_report(out, df, context=report_context(plan, out, cfg, failures))
    return outcome


def report_context(plan: Plan, root: Path, cfg: BenchConfig, failures: Mapping[str, str]) -> dict[str, Any]:
    """What the report needs beyond the results table: the config, the memorization
    estimate and its reliability, the first seed's scores, failures, the population table."""
    ctx: dict[str, Any] = {"config": cfg.model_dump(by_alias=True), "failures": dict(failures)}
    if plan.memorization is not None and plan.memorization.done(root):
        mdir = plan.memorization.path(root) / MEM
        ctx["memorization"] = pd.read_parquet(mdir / "memorization.parquet")
        ctx["memorization_info"] = plan.memorization.record(root)["summary"]
    if plan.instances is not None and plan.instances.done(root):
        ctx["extra_figures"] = {
            f"instances_{p.stem}": (p.read_bytes(), f"Per-instance difficulty ({p.stem.replace('_', ' ')}).")
            for p in sorted((plan.instances.path(root) / INSTANCES).glob("*.png"))
        }
    done_scores = [u for u in plan.scores if u.done(root)]
    if done_scores:
        ctx["scores"] = pd.read_parquet(done_scores[0].path(root) / RUN / "scores.parquet")
    ctx["original_fit"] = original_fit(plan, root, cfg)
    if plan.population:
        ctx["population"] = population_frame(plan.population, root)
    return ctx


def original_fit(plan: Plan, root: Path, cfg: BenchConfig) -> dict[str, Any]:
    """The original models' train accuracy per seed (memorization-based difficulty needs a model
    that fits its data), the threshold and the one-line warning when the lowest is under it."""
    from unlearnkit.difficulty.fit import check_fit

    threshold = cfg.memorization.fit_threshold
    trains = [dict(u.deps)["run"] for u in plan.scores]
    acc = {int(u.inputs["training"]["seed"]): float(u.record(root)["summary"]["train_acc"])
           for u in trains if u.done(root)}
    low = min(acc.values()) if acc else float("nan")
    return {"train_accuracy": acc, "threshold": threshold,
            "warning": check_fit(low, threshold, what="the lowest train accuracy of the original models")}
