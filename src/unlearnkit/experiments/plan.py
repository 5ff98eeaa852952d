"""The bench plan: every :class:`~.units.WorkUnit` of a config and how they make the results rows.

Protocol (one original model per seed, as in the RUM and IMU papers): for every
seed s, train the original θ_o(s) with the config's recipe and seed s; compute
its scores (memorization, estimated once for the config, joins them); build
every forget set from θ_o(s) with seed s (recording its ES on θ_o(s)); retrain
the reference θ_r(s, S) on D \\ S with seed s (the ``retrain`` method); run every
method, RUM variant and SISA with seed s; evaluate every model, the reference
and θ_o itself on S, D \\ S and the test set.

Rows of ``method == "original"`` are θ_o itself (no unlearning, 0 seconds):
the ToW a method must beat to have done anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from unlearnkit.experiments.config import BenchConfig
from unlearnkit.experiments.units import WorkUnit, closure

ORIGINAL = "original"


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
        mem_recipe = m.training.model_dump(exclude={"seed"}) if m.training is not None else None
        mem = unit("memorization", {**base, "training": mem_recipe, "k": m.k, "fraction": m.fraction,
                                    "epochs": m.epochs, "until_fit": m.until_fit,
                                    "fit_threshold": m.fit_threshold, "seed": m.seed},
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
