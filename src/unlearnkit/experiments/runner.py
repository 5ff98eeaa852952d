"""The benchmark pipeline: config -> work units -> results.parquet -> report.

Protocol (one original model per seed, as in the RUM and IMU papers): for every
seed s, train the original θ_o(s) with the config's recipe and seed s; compute
its scores (memorization, estimated once for the config, joins them); build
every forget set from θ_o(s) with seed s (recording its ES on θ_o(s)); retrain
the reference θ_r(s, S) on D \\ S with seed s (the ``retrain`` method); run every
method, RUM variant and SISA with seed s; evaluate every model, the reference
and θ_o itself on S, D \\ S and the test set. Every step is a
:class:`~unlearnkit.experiments.units.WorkUnit`, so an interrupted bench
resumes where it stopped and gives the same table.

Rows of ``method == "original"`` are θ_o itself (no unlearning, 0 seconds):
the ToW a method must beat to have done anything.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from unlearnkit.data import DataBundle, ForgetSet, load_dataset, load_forget, save_forget
from unlearnkit.errors import UnlearnkitError
from unlearnkit.experiments.config import BenchConfig, ForgetSpec
from unlearnkit.experiments.lock import BenchLock
from unlearnkit.experiments.store import result_row, results_frame, write_results
from unlearnkit.experiments.units import DONE, WorkUnit, closure, execute_unit, handler
from unlearnkit.io import read_json, write_json, write_parquet
from unlearnkit.runs import Run, load_run
from unlearnkit.training import TrainConfig

ORIGINAL = "original"
RUN = "run"  # a unit's run directory lives at UNIT_DIR/run
FORGET = "forget.json"
MEM = "mem"
INSTANCES = "instances"


# --------------------------------------------------------------------------- unit handlers


@lru_cache(maxsize=4)
def _data(spec_json: str, data_root: str | None) -> DataBundle:
    spec = json.loads(spec_json)
    return load_dataset(
        spec["name"], data_root=data_root, val_fraction=spec["val_fraction"], split_seed=spec["split_seed"],
        **spec["options"],
    )


def data_for(inputs: Mapping[str, Any], opts: Mapping[str, Any]) -> DataBundle:
    """The dataset named by a unit's ``inputs["data"]`` (cached per process)."""
    return _data(json.dumps(inputs["data"], sort_keys=True), opts.get("data_root"))


def _run(unit_dir: Path, opts: Mapping[str, Any]) -> Run:
    meta = read_json(unit_dir / RUN / "run.json")
    spec = {k: meta["dataset"][k] for k in ("name", "val_fraction", "split_seed", "options")}
    return load_run(unit_dir / RUN, data=data_for({"data": spec}, opts))


def _forget(unit_dir: Path, data: DataBundle) -> ForgetSet:
    return load_forget(unit_dir / FORGET, data)


@handler("train")
def _do_train(inputs, deps, out, opts):
    from unlearnkit.runs import train_run

    run = train_run(
        data_for(inputs, opts), inputs["model"], TrainConfig(**inputs["training"]), out / RUN,
        model_kwargs=inputs["model_kwargs"], device=opts.get("device", "auto"),
    )
    return {**run.meta["results"], "examples_processed": run.meta["examples_processed"]}


@handler("sisa_train")
def _do_sisa_train(inputs, deps, out, opts):
    from unlearnkit.methods.sisa import train_sisa

    run = train_sisa(
        data_for(inputs, opts), inputs["model"], inputs["shards"], inputs["slices"],
        TrainConfig(**inputs["training"]), out / RUN, model_kwargs=inputs["model_kwargs"],
        aggregation=inputs["aggregate"], device=opts.get("device", "auto"),
    )
    return {**run.meta["results"], "examples_processed": run.meta["examples_processed"]}


@handler("memorization")
def _do_memorization(inputs, deps, out, opts):
    from unlearnkit.difficulty.memorization import estimate_memorization

    with warnings.catch_warnings():  # its warnings are kept in the summary and shown by the runner
        warnings.simplefilter("ignore")
        res = estimate_memorization(
            data_for(inputs, opts), inputs["model"], k=inputs["k"], fraction=inputs["fraction"],
            epochs=inputs["epochs"], seed=inputs["seed"], out=out / MEM, cfg=TrainConfig(**inputs["training"]),
            model_kwargs=inputs["model_kwargs"], executor=opts.get("executor", "local"), address=opts.get("address"),
            threads=opts.get("threads", 1), device=opts.get("device", "auto"), quiet=opts.get("quiet", True),
        )
    return {"split_half": res.reliability.get("split_half_spearman"), "k": inputs["k"], "warnings": res.warnings}


@handler("scores")
def _do_scores(inputs, deps, out, opts):
    from unlearnkit.difficulty.scores import score_run

    # A copy of the original run with scores.parquet beside it, so that the
    # finished training unit is never modified.
    shutil.copytree(deps["run"] / RUN, out / RUN)
    run = _run(out, opts)
    mem = deps["memorization"] / MEM if "memorization" in deps else None
    score_run(run, list(inputs["names"]), memorization_dir=mem, device=opts.get("device", "auto"), seed=inputs["seed"])
    return read_json(out / RUN / "scores.json").get("scores", {})


def build_forget(run: Run, spec: Mapping[str, Any], seed: int) -> ForgetSet:
    """The forget set of one (level-expanded) :class:`ForgetSpec` on ``run``'s data, ES included."""
    from unlearnkit.data.forget import class_forget_set, random_forget_set
    from unlearnkit.difficulty.forget_sets import forget_by_entanglement, forget_by_score
    from unlearnkit.difficulty.geometry import run_entanglement

    fs_spec = ForgetSpec.model_validate(spec)
    data = run.data
    size = None
    if fs_spec.size is not None:
        size = int(round(fs_spec.size * data.n_train)) if fs_spec.size < 1 else int(fs_spec.size)
    kind, level = fs_spec.kind, fs_spec.one_level
    if kind == "random":
        fs = random_forget_set(data, size, seed, class_balanced=fs_spec.class_balanced)
    elif kind == "class":
        fs = class_forget_set(data, fs_spec.class_)
    elif kind == "entanglement":
        fs = forget_by_entanglement(run, fs_spec.bins, level, size, seed)
    else:
        fs = forget_by_score(run, fs_spec.score or "memorization", level, size, seed)
    if fs.meta.get("es") is None:
        fs.meta["es"] = run_entanglement(run, fs)
    fs.meta["label"] = fs_spec.label
    return fs


@handler("forget")
def _do_forget(inputs, deps, out, opts):
    run = _run(deps["run"], opts)
    fs = build_forget(run, inputs["spec"], inputs["seed"])
    save_forget(out / FORGET, fs)
    return {"size": len(fs), "es": float(fs.meta["es"]), "label": fs.meta["label"]}


@handler("unlearn")
def _do_unlearn(inputs, deps, out, opts):
    from unlearnkit.methods import unlearn_run

    run = _run(deps["run"], opts)
    res = unlearn_run(
        run, _forget(deps["forget"], run.data), inputs["method"], out / RUN, inputs["params"],
        seed=inputs["seed"], device=opts.get("device", "auto"),
    )
    info = res.extra["unlearn"]
    return {"seconds": info["seconds"], "examples_processed": info["examples_processed"]}


@handler("rum")
def _do_rum(inputs, deps, out, opts):
    from unlearnkit.meta.rum import rum_run

    run = _run(deps["run"], opts)
    kw = dict(inputs["rum"])
    res = rum_run(run, _forget(deps["forget"], run.data), out / RUN, seed=inputs["seed"],
                  device=opts.get("device", "auto"), **kw)
    info = res.extra["rum"]
    search = info.get("search", {}).get("seconds", 0.0)
    # The cost of the 'rum' variant includes its per-group method search.
    return {"seconds": info["seconds"] + search, "examples_processed": info["examples_processed"],
            "methods": info["methods"]}


@handler("evaluate")
def _do_evaluate(inputs, deps, out, opts):
    from unlearnkit.metrics.evaluate import evaluate_model

    run = _run(deps["model"], opts)
    res = evaluate_model(run, None, _forget(deps["forget"], run.data),
                         mia_max_per_side=inputs["mia_max_per_side"], seed=inputs["seed"])
    write_parquet(out / "per_example.parquet", res.per_example)
    return {**{k: float(v) for k, v in res.metrics.items()}, "sizes": res.sizes}


@handler("instances")
def _do_instances(inputs, deps, out, opts):
    from unlearnkit.meta.instance import analyze_instances

    run = _run(deps["run"], opts)
    analyze_instances(run, _forget(deps["forget"], run.data), list(inputs["methods"]), inputs["seeds"],
                      out=out / INSTANCES, params=inputs["params"], device=opts.get("device", "auto"))
    return {"methods": inputs["methods"]}


# --------------------------------------------------------------------------- the plan


@dataclass
class Row:
    """One results row: which units hold its model, evaluation and reference."""

    setup: dict[str, Any]
    model: WorkUnit | None  # None for the original (its cost is 0)
    evaluation: WorkUnit
    reference: WorkUnit
    reference_eval: WorkUnit
    forget: WorkUnit


@dataclass
class Plan:
    rows: list[Row]
    units: list[WorkUnit]  # every unit, dependencies first
    memorization: WorkUnit | None = None
    scores: list[WorkUnit] = field(default_factory=list)
    instances: WorkUnit | None = None


def build_plan(cfg: BenchConfig, opts: Mapping[str, Any]) -> Plan:
    """Every work unit of ``cfg`` and how they make the results rows."""
    data_in = cfg.dataset.model_dump(exclude={"data_root"})
    model_in = {"model": cfg.model.name, "model_kwargs": cfg.model.build_kwargs()}
    recipe = cfg.training.model_dump(exclude={"seed"})
    base = {"data": data_in, **model_in}

    def unit(kind: str, inputs: dict, deps: dict | None = None, label: str = "", driver: bool = False) -> WorkUnit:
        return WorkUnit(kind, inputs, tuple(sorted((deps or {}).items())), label, dict(opts), driver)

    mem = None
    if cfg.needs_memorization:
        m = cfg.memorization
        mem = unit("memorization", {**base, "training": recipe, "k": m.k, "fraction": m.fraction,
                                    "epochs": m.epochs or cfg.training.epochs, "seed": m.seed},
                   label=f"K={m.k}", driver=True)
    rows: list[Row] = []
    scores_units = []
    instances = None
    for seed in cfg.seeds:
        train = unit("train", {**base, "training": {**recipe, "seed": seed}}, label=f"seed {seed}")
        scores = unit("scores", {"names": cfg.score_names, "seed": seed},
                      {"run": train, **({"memorization": mem} if mem else {})}, label=f"seed {seed}")
        scores_units.append(scores)
        sisa = None
        if "sisa" in cfg.methods:
            s = cfg.sisa
            sisa = unit("sisa_train", {**base, "training": {**recipe, "seed": seed, "epochs": s.epochs or recipe["epochs"]},
                                       "shards": s.shards, "slices": s.slices, "aggregate": s.aggregate},
                        label=f"seed {seed}")
        for spec in cfg.forget_specs():
            needs_scores = spec.kind in ("memorization", "score")
            fu = unit("forget", {"spec": spec.model_dump(by_alias=True), "seed": seed},
                      {"run": scores if needs_scores else train}, label=f"{spec.label} seed {seed}")
            ins = cfg.instances
            if ins is not None and spec.label == ins.forget_set and seed == cfg.seeds[0]:
                params = {m: cfg.methods[m] for m in ins.methods if m in cfg.methods}
                instances = unit("instances", {"methods": ins.methods, "seeds": ins.seeds, "params": params},
                                 {"run": scores, "forget": fu}, label=f"{spec.label} seed {seed}")

            def evaluation(model_unit: WorkUnit, what: str) -> WorkUnit:
                return unit("evaluate", {"mia_max_per_side": cfg.metrics.mia_max_per_side, "seed": seed},
                            {"model": model_unit, "forget": fu}, label=f"{what} {spec.label} seed {seed}")

            ref = unit("unlearn", {"method": "retrain", "params": {}, "seed": seed}, {"run": train, "forget": fu},
                       label=f"retrain {spec.label} seed {seed}")
            ref_eval = evaluation(ref, "retrain")

            def row(method: str, variant: str, model_unit: WorkUnit | None, eval_of: WorkUnit) -> None:
                setup = {"forget_kind": spec.label, "method": method, "variant": variant, "seed": seed}
                rows.append(Row(setup, model_unit, evaluation(eval_of, f"{method}/{variant}"), ref, ref_eval, fu))

            row(ORIGINAL, "vanilla", None, train)
            vanilla = dict(cfg.methods)
            if cfg.rum is not None and "vanilla" in cfg.rum.variants:
                for m in cfg.rum.methods:
                    vanilla.setdefault(m, {})
            for method, params in vanilla.items():
                parent = sisa if method == "sisa" else train
                um = unit("unlearn", {"method": method, "params": params, "seed": seed},
                          {"run": parent, "forget": fu}, label=f"{method} {spec.label} seed {seed}")
                row(method, "vanilla", um, um)
            if cfg.rum is None or (cfg.rum.forget_sets is not None and spec.label not in cfg.rum.forget_sets):
                continue
            r = cfg.rum
            common = {"refine_by": r.refine_by, "groups": r.groups, "retain": r.retain}
            for variant in r.variants:
                if variant == "vanilla":
                    continue
                if variant == "rum":
                    cands = {m: cfg.methods.get(m, {}) for m in r.candidates}
                    jobs = [("rum", {**common, "variant": "rum", "candidates": cands})]
                else:
                    jobs = [(m, {**common, "variant": variant, "methods": m, "params": cfg.methods.get(m, {})})
                            for m in r.methods]
                for method, kw in jobs:
                    ru = unit("rum", {"rum": kw, "seed": seed}, {"run": scores, "forget": fu},
                              label=f"{variant} {method} {spec.label} seed {seed}")
                    row(method, variant, ru, ru)
    roots = [r.evaluation for r in rows] + [r.reference_eval for r in rows] + scores_units + ([instances] if instances else [])
    return Plan(rows, closure(roots), mem, scores_units, instances)


# --------------------------------------------------------------------------- execution


@dataclass
class Outcome:
    """What :func:`run_bench` returns."""

    out: Path
    results: pd.DataFrame
    failures: dict[str, str]
    units_total: int
    units_run: int
    report: Path | None = None


def execute(
    units: list[WorkUnit],
    root: Path,
    executor: str = "local",
    address: str | None = None,
    quiet: bool = True,
    log: Callable[[str], None] = lambda msg: None,
    threads: int = 1,
) -> tuple[dict[str, str], int]:
    """Run every unit not yet done, wave by wave (a wave = units whose dependencies are done).

    Independent units of a wave go through the executor; ``driver`` units run
    here. A unit that fails is recorded and its dependents are skipped; a
    wave interrupted by a lost worker is retried once (finished units are
    kept), then what is still missing is reported. Returns
    (failures {unit label: message}, number of units run).
    """
    from unlearnkit.parallel import get_executor

    todo = [u for u in units if not u.done(root)]
    failed: dict[str, str] = {}  # unit key -> message
    labels: dict[str, str] = {}
    attempts: Counter[str] = Counter()
    ran = 0
    wave = 0
    fn = partial(execute_unit, root=str(root))
    try:
        ex = get_executor(executor, address, task_cpus=threads)
    except UnlearnkitError:
        raise
    except Exception as e:  # e.g. Ray's own start-up timeouts raise a bare Exception
        raise UnlearnkitError(f"cannot start the {executor} executor: {str(e).splitlines()[0]}") from None
    with ex:
        while todo:
            for u in todo:
                bad = [d for _, d in u.deps if d.key in failed]
                if bad:
                    failed[u.key] = f"skipped: {bad[0].kind} '{bad[0].label}' failed"
                    labels[u.key] = f"{u.kind} {u.label}"
            todo = [u for u in todo if u.key not in failed]
            ready = [u for u in todo if all(d.done(root) for _, d in u.deps)]
            if not ready:
                break
            wave += 1
            kinds = ", ".join(f"{n} {k}" for k, n in Counter(u.kind for u in ready).items())
            log(f"wave {wave}: {len(ready)} units ({kinds})")

            def record(u: WorkUnit, res: Mapping[str, Any]) -> None:
                if "error" in res:
                    failed[u.key] = res["error"]
                    labels[u.key] = f"{u.kind} {u.label}"
                    log(f"  failed: {u.kind} {u.label}: {res['error']}")
                for w in res.get("summary", {}).get("warnings", []):
                    log(f"  warning ({u.kind}): {w}")

            for u in [u for u in ready if u.driver]:
                record(u, execute_unit(u, root))
            remote = [u for u in ready if not u.driver]
            try:
                for u, res in ex.map(fn, remote, desc=f"wave {wave}", quiet=quiet):
                    record(u, res)
            except UnlearnkitError as e:
                # A lost worker: whatever finished is on disk; retry the rest once.
                for u in remote:
                    if not u.done(root) and u.key not in failed:
                        attempts[u.key] += 1
                        if attempts[u.key] > 1:
                            failed[u.key] = str(e)
                            labels[u.key] = f"{u.kind} {u.label}"
                log(f"  wave {wave} interrupted ({e}); retrying what is unfinished")
            ran += sum(u.done(root) for u in ready)
            todo = [u for u in todo if not u.done(root)]
    skipped = sum(v.startswith("skipped: ") for v in failed.values())
    if skipped:
        log(f"{skipped} units skipped because a unit they depend on failed")
    return {labels[k]: v for k, v in failed.items()}, ran


def collect_results(plan: Plan, root: Path, cfg: BenchConfig) -> pd.DataFrame:
    """The results table from the finished units (rows whose units failed are left out)."""
    rows = []
    for r in plan.rows:
        needed = [r.evaluation, r.reference, r.reference_eval, r.forget] + ([r.model] if r.model else [])
        if not all(u.done(root) for u in needed):
            continue
        fs = r.forget.record(root)["summary"]
        ref = r.reference.record(root)["summary"]
        model = r.model.record(root)["summary"] if r.model else {"seconds": 0.0, "examples_processed": 0}
        setup = {"dataset": cfg.dataset.name, "model": cfg.model.name, "forget_size": fs["size"], "es": fs["es"], **r.setup}
        rows.append(result_row(setup, r.evaluation.record(root)["summary"], r.reference_eval.record(root)["summary"],
                               model["seconds"], ref["seconds"], model.get("examples_processed")))
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

    Writes ``out/config.json``, ``out/units/...``, ``out/results.parquet``,
    ``out/failures.json`` (when units failed) and, with ``report``,
    ``out/report.html`` and ``out/report.md``. ``executor``/``address``/``device``
    override the config's. Holds ``out/bench.lock`` while running.
    """
    out = Path(out)
    ex = executor or cfg.executor.kind
    addr = address if address is not None else cfg.executor.address
    opts = {"device": device or cfg.device, "data_root": cfg.dataset.data_root, "executor": ex, "address": addr,
            "quiet": quiet, "threads": cfg.executor.threads}
    with BenchLock(out, notify=log):
        write_json(out / "config.json", cfg.model_dump(by_alias=True))
        plan = build_plan(cfg, opts)
        pending = sum(not u.done(out) for u in plan.units)
        log(f"{len(plan.units)} work units, {len(plan.units) - pending} already done")
        failures, ran = execute(plan.units, out, ex, addr, quiet, log, cfg.executor.threads)
        df = collect_results(plan, out, cfg)
        write_results(out, df)
        fail_path = out / "failures.json"
        if failures:
            write_json(fail_path, failures)
        elif fail_path.exists():
            fail_path.unlink()
        outcome = Outcome(out, df, failures, len(plan.units), ran)
        if report:
            from unlearnkit.report import write_report

            outcome.report = write_report(out, df, context=report_context(plan, out, cfg, failures))
    return outcome


def report_context(plan: Plan, root: Path, cfg: BenchConfig, failures: Mapping[str, str]) -> dict[str, Any]:
    """What the report needs beyond the results table: the config, the memorization
    estimate and its reliability, the first seed's scores, failures."""
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
    return ctx
