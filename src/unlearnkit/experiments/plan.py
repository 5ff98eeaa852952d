"""The bench plan: every :class:`~.units.WorkUnit` of a config and how they make the results rows.

Protocol (one original model per seed, as in the RUM and IMU papers): for every
seed s, train the original θ_o(s) with the config's recipe and seed s; compute
its scores (memorization, estimated once for the config, joins them); build
every forget set from θ_o(s) with seed s (recording its ES on θ_o(s)); retrain
the reference θ_r(s, S) on D \\ S with seed s (the ``retrain`` method); run every
method, RUM variant and SISA with seed s; evaluate every model, the reference
and θ_o itself on S, D \\ S and the test set. SISA is exact by design: its rows
are scored against its own exact reference, the SISA ensemble trained without S
(seed s), and the single-model retrain's test accuracy and time sit beside
them (``retrain_test_acc``, ``retrain_seconds``) for its accuracy loss and cost.

Rows of ``method == "original"`` are θ_o itself (no unlearning, 0 seconds):
the ToW a method must beat to have done anything.

A ``population:`` block adds the units of :mod:`.population` (N originals and N oracles on the
first seed's forget set of each kind listed, every method on each original), with the same
method settings as the vanilla rows of that kind.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from unlearnkit.experiments.config import BenchConfig, ForgetSpec
from unlearnkit.experiments.units import WorkUnit, closure

ORIGINAL = "original"
ANY_KIND = "*"  # the key of a tune unit shared by every forget kind (tuning per: none)


@dataclass
class Row:
    """One results row: which units hold its model, evaluation and reference."""

    setup: dict[str, Any]
    model: WorkUnit | None  # None for the original (its cost is 0)
    evaluation: WorkUnit
    reference: WorkUnit
    reference_eval: WorkUnit
    forget: WorkUnit
    # The single-model retrain when ``reference`` is another one (SISA's own).
    retrain: WorkUnit | None = None
    retrain_eval: WorkUnit | None = None


@dataclass
class Plan:
    rows: list[Row]
    units: list[WorkUnit]  # every unit, dependencies first
    memorization: WorkUnit | None = None
    scores: list[WorkUnit] = field(default_factory=list)
    instances: WorkUnit | None = None
    population: list[WorkUnit] = field(default_factory=list)  # the population block's units (population.py)


def forget_kind(spec: ForgetSpec) -> str:
    """The ``kind`` the forget set of ``spec`` will record (what presets are keyed by)."""
    if spec.kind == "score":
        return f"score:{spec.score}-{spec.one_level}"
    return spec.kind if spec.kind in ("random", "class") else f"{spec.kind}-{spec.one_level}"


def build_plan(cfg: BenchConfig, opts: Mapping[str, Any]) -> Plan:
    """Every work unit of ``cfg`` and how they make the results rows."""
    from unlearnkit.methods import METHODS, preset_for
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
    def train_of(seed: int) -> WorkUnit:
        return unit("train", {**base, "training": {**recipe, "seed": seed}}, label=f"seed {seed}")

    def scores_of(seed: int) -> WorkUnit:
        return unit("scores", {"names": cfg.score_names, "seed": seed},
                    {"run": train_of(seed), **({"memorization": mem} if mem else {})}, label=f"seed {seed}")

    reserve = cfg.tuning.reserve_input() if cfg.tuning is not None else None

    def forget_of(seed: int, spec: ForgetSpec) -> WorkUnit:
        needs_scores = spec.kind in ("memorization", "score")
        held_out = {"reserve": reserve} if reserve is not None and spec.kind != "class" else {}
        return unit("forget", {"spec": spec.model_dump(by_alias=True), "seed": seed, **held_out},
                    {"run": scores_of(seed) if needs_scores else train_of(seed)}, label=f"{spec.label} seed {seed}")

    tuned = tune_units(cfg, unit, scores_of, forget_of, train_of)

    def vanilla_setting(method: str, params: dict, spec: ForgetSpec) -> tuple[dict, WorkUnit | None]:
        """A method's vanilla inputs on forget sets of ``spec``'s kind (params, and the preset that will
        apply: part of the key, so a changed preset file reruns the unit) and its ``tuning`` unit."""
        # an ablation (imu_uniform) takes its method's tuned values, as it takes its presets
        own = (METHODS.get(method).presets_of or method) if method in METHODS else method
        tu = tuned.get((own, spec.label)) or tuned.get((own, ANY_KIND))
        preset = preset_for(cfg.dataset.name, method, cfg.model.name, forget_kind(spec)) if method in METHODS else {}
        return {"params": params, **({"preset": preset} if preset else {})}, tu

    @functools.lru_cache(maxsize=None)  # the same few method tuples for every seed and forget set
    def rum_presets(methods: tuple[str, ...]) -> str:
        """A digest of every preset the RUM steps of ``methods`` could apply (a step's forget set is a
        group of S, so any kind's): part of the key, so a changed preset file reruns RUM units."""
        from unlearnkit.methods.presets import KINDS

        table = {m: {str(k): preset_for(cfg.dataset.name, m, cfg.model.name, k) for k in (*KINDS, None)}
                 for m in methods if m in METHODS}
        return hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode()).hexdigest()[:16]

    rows: list[Row] = []
    scores_units = []
    instances = None
    for seed in cfg.seeds:
        train, scores = train_of(seed), scores_of(seed)
        scores_units.append(scores)
        sisa = None
        if "sisa" in cfg.methods:
            s = cfg.sisa
            sisa_in = {**base, "training": {**recipe, "seed": seed, "epochs": s.epochs or recipe["epochs"]},
                       "shards": s.shards, "slices": s.slices, "aggregate": s.aggregate}
            sisa = unit("sisa_train", sisa_in, label=f"seed {seed}")
        for spec in cfg.forget_specs():
            fu = forget_of(seed, spec)
            ins = cfg.instances
            if ins is not None and spec.label == ins.forget_set and seed == cfg.seeds[0]:
                params = {m: cfg.methods[m] for m in ins.methods if m in cfg.methods}
                instances = unit("instances", {"methods": ins.methods, "seeds": ins.seeds, "params": params},
                                 {"run": scores, "forget": fu}, label=f"{spec.label} seed {seed}")

            def evaluation(model_unit: WorkUnit, what: str) -> WorkUnit:
                return unit("evaluate", {"mia_max_per_side": cfg.metrics.mia_max_per_side,
                                         "mia_repeats": cfg.metrics.mia_repeats, "seed": seed},
                            {"model": model_unit, "forget": fu}, label=f"{what} {spec.label} seed {seed}")

            ref = unit("unlearn", {"method": "retrain", "params": {}, "seed": seed}, {"run": train, "forget": fu},
                       label=f"retrain {spec.label} seed {seed}")
            ref_eval = evaluation(ref, "retrain")

            def row(method: str, variant: str, model_unit: WorkUnit | None, eval_of: WorkUnit) -> None:
                setup = {"forget_kind": spec.label, "method": method, "variant": variant, "seed": seed}
                if method == "sisa" and variant == "vanilla" and sisa is not None:
                    exact = unit("sisa_train", sisa_in, {"forget": fu}, label=f"sisa without {spec.label} seed {seed}")
                    rows.append(Row(setup, model_unit, evaluation(eval_of, f"{method}/{variant}"), exact,
                                    evaluation(exact, "sisa retrain"), fu, ref, ref_eval))
                    return
                rows.append(Row(setup, model_unit, evaluation(eval_of, f"{method}/{variant}"), ref, ref_eval, fu))

            row(ORIGINAL, "vanilla", None, train)
            vanilla = dict(cfg.methods)
            if cfg.rum is not None and "vanilla" in cfg.rum.variants:
                for m in cfg.rum.methods:
                    vanilla.setdefault(m, {})
            for method, params in vanilla.items():
                parent = sisa if method == "sisa" else train
                setting, tu = vanilla_setting(method, params, spec)
                um = unit("unlearn", {"method": method, **setting, "seed": seed},
                          {"run": parent, "forget": fu, **({"tuning": tu} if tu else {})},
                          label=f"{method} {spec.label} seed {seed}")
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
                    search = {}
                    if cfg.tuning is not None and cfg.tuning.rum_grid != "none":
                        search = {"grid": {m: cfg.tuning.grid_of(m) if m in cfg.tuning.grids else cfg.tuning.rum_grid
                                           for m in r.candidates}, "max_cost": cfg.tuning.max_cost}
                    jobs = [("rum", {**common, "variant": "rum", "candidates": cands, **search}, None)]
                else:
                    jobs = [(m, {**common, "variant": variant, "methods": m, "params": cfg.methods.get(m, {})},
                             tuned.get((m, spec.label)) or tuned.get((m, ANY_KIND))) for m in r.methods]
                for method, kw, tu in jobs:
                    involved = tuple(r.candidates) if method == "rum" else (method,)
                    ru = unit("rum", {"rum": kw, "seed": seed, "presets": rum_presets(involved)},
                              {"run": scores, "forget": fu, **({"tuning": tu} if tu else {})},
                              label=f"{variant} {method} {spec.label} seed {seed}")
                    row(method, variant, ru, ru)
    roots = [r.evaluation for r in rows] + [r.reference_eval for r in rows] + scores_units
    roots += [r.retrain_eval for r in rows if r.retrain_eval is not None] + ([instances] if instances else [])
    from unlearnkit.experiments.population import population_units

    population = population_units(cfg, unit, base, forget_of,
                                  lambda method, spec: vanilla_setting(method, cfg.methods.get(method, {}), spec))
    return Plan(rows, closure(roots + population), mem, scores_units, instances, population)


def tune_units(cfg: BenchConfig, unit: Callable[..., WorkUnit], scores_of: Callable[[int], WorkUnit],
               forget_of: Callable[[int, ForgetSpec], WorkUnit],
               train_of: Callable[[int], WorkUnit]) -> dict[tuple[str, str], WorkUnit]:
    """The ``tune`` units of ``cfg.tuning``: ``{(method, forget_kind): unit}`` (forget_kind
    :data:`ANY_KIND` for ``per: none``). Each tunes on the first seed's original, on the
    validation set of its kind's ``tune_validation`` unit (the kind's construction on the tuning
    reserve, or matched to that kind's forget set with ``validation: match``; random for
    ``per: none``), disjoint from the forget sets of every kind and seed, with the reference
    retrained on D minus it once for all the kind's methods. With ``confirm`` and >= 2 seeds, the
    other seeds' originals (deps ``confirm``, ``confirm2``, ...) confirm the best settings (their
    references retrained by the same unit)."""
    t = cfg.tuning
    if t is None:
        return {}
    methods = t.tuned_methods(list(cfg.methods))
    first = cfg.seeds[0]
    confirm = {f"confirm{i if i > 1 else ''}": train_of(s)
               for i, s in enumerate(t.confirm_seeds(list(cfg.seeds)), start=1)}
    avoid = {f"avoid{i}": forget_of(seed, spec) for i, (seed, spec) in
             enumerate((s, sp) for s in cfg.seeds for sp in cfg.forget_specs())}
    kinds = [(spec.label, spec) for spec in cfg.forget_specs()] if t.per == "forget_kind" else [(ANY_KIND, None)]
    out = {}
    for label, spec in kinds:
        like = {"like": forget_of(first, spec)} if spec is not None else {}
        own = {}  # validation: reserve rebuilds the kind's construction on the reserve
        if t.reserve_input() is not None:
            own = {"reserve": t.reserve_input()}
            if spec is not None and spec.kind != "class":
                own.update(spec=spec.model_dump(by_alias=True), spec_label=label)
        val = unit("tune_validation", {"val_seed": t.val_seed, "seed": first, **own},
                   {"run": scores_of(first), **like, **avoid, **confirm}, label=label)
        for m in methods:
            inputs = {"method": m, "grid": t.grid_of(m), "max_cost": t.max_cost, "seed": first}
            out[(m, label)] = unit("tune", inputs, {"run": scores_of(first), "validation": val, **confirm},
                                   label=f"{m} {label}")
    return out
