"""The bench's population block: N models per side, scored as the unlearning challenge and KLoM do.

The per-seed rows of ``results.parquet`` hold one model per seed, on forget sets that differ
per seed, so they cannot give per-example ε or KLoM, which compare two *populations* of
models on one forget set. With a ``population:`` block (:class:`~.config.PopulationConfig`),
for each forget kind listed, on the first seed's forget set S of that kind:

- one ``population_models`` unit trains, with the ensemble engine
  (:func:`unlearnkit.ensembles.train_ensemble`, ``mode="auto"``), N originals on all
  training rows and N oracles on D \\ S (both seeds ``seed``..``seed+N-1``, the config's
  recipe) and a second N oracles on D \\ S (seeds ``seed+N``..``seed+2N-1``). It keeps the
  originals' weights (one safetensors file) and the oracles' margins and accuracies, and
  scores the originals (the ``original`` row: no unlearning) and the second oracles (the
  ``retrain_noise_floor`` row: what retraining itself scores at this N) against the oracles;
- one ``population_unlearn`` unit per method unlearns original j with seed ``seed+j`` and the
  hyperparameters of the bench's vanilla rows of that kind (the config's, the preset, the
  ``tuning`` dependency's chosen values), then scores the N results against the oracles.

No unlearned model is written to disk. The rows are collected into ``DIR/population.parquet``,
one row per (forget set, method), columns :data:`POPULATION_COLUMNS`:

- forget_kind, forget_size, n (models per side), method (a method, ``original`` or
  ``retrain_noise_floor``), params (JSON, as the method ran; ``{}`` for the other two)
- epsilon_mean, epsilon_median: per-example ε over S (exact attack families, the challenge's
  δ = 1e-5, cap 50); epsilon_at_cap: the fraction of S at the cap; max_epsilon: the truncation point ceil(log(N − 1)); forget_quality:
  F, mean bucket points over S (higher = closer to retraining, in [0, 1]);
  forget_quality_grid: F with the scorer's threshold grid (NaN unless ``scorer_grid``)
- final_score: F · (RA_u / RA_r) · (TA_u / TA_r), accuracies averaged over the N models
- klom_forget, klom_retain, klom_val: KLoM's 95th percentile over each split (nats; lower
  = closer to retraining, 0 = like it)
- forget_acc, retain_acc, test_acc: mean over the row's N models; ref_forget_acc,
  ref_retain_acc, ref_test_acc: mean over the N oracles
- seconds: wall time to make the row's N models (N unlearning calls; the ensemble training of
  the second oracles for the noise floor; 0 for the original)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from unlearnkit.experiments.config import BenchConfig
from unlearnkit.experiments.units import DONE, WorkUnit, handler
from unlearnkit.io import read_json, write_parquet

POPULATION = "population.parquet"
ORIGINAL = "original"
NOISE_FLOOR = "retrain_noise_floor"
ORIGINALS = "originals.safetensors"  # the N originals' weights, keys "<member>.<parameter>"
ORACLES = "oracles.safetensors"  # the oracles' margins and accuracies (Outputs.save)
MARGIN_SPLITS = ("forget", "retain", "val")
ACC_SPLITS = ("forget", "retain", "test")
POPULATION_COLUMNS = [
    "forget_kind", "forget_size", "n", "method", "epsilon_mean", "epsilon_median", "epsilon_at_cap", "max_epsilon", "forget_quality",
    "forget_quality_grid", "final_score", "klom_forget", "klom_retain", "klom_val", "forget_acc", "retain_acc",
    "test_acc", "ref_forget_acc", "ref_retain_acc", "ref_test_acc", "seconds", "params",
]


@dataclass
class Outputs:
    """What a population of N models gives: ``margins[split]`` ``[n_examples, N]`` (correct logit
    minus logsumexp of the others) on forget / retain / val, ``accuracy[split]`` ``[N]`` on
    forget / retain / test."""

    margins: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return int(self.accuracy["forget"].shape[0])

    @classmethod
    def of(cls, logits: Callable[[torch.Tensor], torch.Tensor], parts: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
           n: int) -> "Outputs":
        """From ``logits(x) -> [N, len(x), C]`` on each split of ``parts`` (split -> (x, y))."""
        from unlearnkit.metrics import logit_confidence

        margins, acc = {}, {}
        for split, (x, y) in parts.items():
            if len(y) == 0:  # e.g. no validation split: that split's KLoM is NaN
                margins[split], acc[split] = np.zeros((0, n)), np.full(n, np.nan)
                continue
            z = logits(x).double().numpy()  # [N, n, C]
            yy = y.numpy()
            margins[split] = np.stack([logit_confidence(z[j], yy) for j in range(n)], axis=1)
            acc[split] = (z.argmax(2) == yy[None]).mean(1)
        return cls({s: margins[s] for s in MARGIN_SPLITS}, {s: acc[s] for s in ACC_SPLITS})

    def save(self, path: Path) -> None:
        from unlearnkit.runs import save_weights

        save_weights(path, {f"{kind}.{s}": torch.from_numpy(np.ascontiguousarray(v))
                            for kind, d in (("margin", self.margins), ("acc", self.accuracy)) for s, v in d.items()})

    @classmethod
    def load(cls, path: Path) -> "Outputs":
        from safetensors.torch import load_file

        t = {k: v.numpy() for k, v in load_file(str(path)).items()}
        return cls({s: t[f"margin.{s}"] for s in MARGIN_SPLITS}, {s: t[f"acc.{s}"] for s in ACC_SPLITS})


def population_scores(unl: Outputs, ora: Outputs, scorer_grid: bool = False) -> dict[str, float]:
    """ε, F, the final score and KLoM p95 of ``unl`` against the oracles ``ora`` (N >= 2 each)."""
    from unlearnkit.metrics import (challenge_max_epsilon, final_score, forget_quality, klom, klom_percentile,
                                    per_example_epsilon)
    from unlearnkit.metrics.epsilon import EPSILON_CAP

    top = challenge_max_epsilon(unl.n)
    eps = per_example_epsilon(unl.margins["forget"], ora.margins["forget"])
    fq = forget_quality(eps, max_epsilon=top)
    grid = float("nan")
    if scorer_grid:
        grid = forget_quality(per_example_epsilon(unl.margins["forget"], ora.margins["forget"], grid="scorer"),
                              max_epsilon=top)
    mean = {k: float(np.mean(v)) for k, v in unl.accuracy.items()}
    ref = {k: float(np.mean(v)) for k, v in ora.accuracy.items()}
    kl = {s: klom_percentile(klom(unl.margins[s], ora.margins[s])) for s in MARGIN_SPLITS}
    return {
        "n": unl.n, "epsilon_mean": float(eps.mean()), "epsilon_median": float(np.median(eps)),
        "epsilon_at_cap": float((eps >= EPSILON_CAP).mean()), "max_epsilon": top,
        "forget_quality": fq, "forget_quality_grid": grid,
        "final_score": final_score(fq, mean["retain"], ref["retain"], mean["test"], ref["test"]),
        **{f"klom_{s}": v for s, v in kl.items()},
        **{f"{s}_acc": mean[s] for s in ACC_SPLITS}, **{f"ref_{s}_acc": ref[s] for s in ACC_SPLITS},
    }


# --------------------------------------------------------------------------- plan


def population_units(cfg: BenchConfig, unit: Callable[..., WorkUnit], base: Mapping[str, Any],
                     forget_of: Callable[[int, Any], WorkUnit],
                     setting_of: Callable[[str, Any], tuple[dict[str, Any], WorkUnit | None]]) -> list[WorkUnit]:
    """The units of ``cfg.population`` (models first, then one per method), none without the block.

    ``setting_of(method, spec)``: the inputs (params, preset) and the ``tuning`` unit of that
    method's vanilla rows on forget sets of ``spec``'s kind, so the population runs what they run."""
    p = cfg.population
    if p is None:
        return []
    specs = {s.label: s for s in cfg.forget_specs()}
    recipe = cfg.training.model_dump(exclude={"seed"})
    out = []
    for label in p.forget_sets:
        spec = specs[label]
        fu = forget_of(cfg.seeds[0], spec)
        models = unit("population_models", {**base, "training": recipe, "n": p.n, "seed": p.seed,
                                            "scorer_grid": p.scorer_grid}, {"forget": fu}, label=f"{label} N={p.n}")
        out.append(models)
        for method in p.methods_of(list(cfg.methods)):
            inputs, tu = setting_of(method, spec)
            out.append(unit("population_unlearn", {**inputs, "method": method},
                            {"models": models, "forget": fu, **({"tuning": tu} if tu else {})},
                            label=f"{method} {label} N={p.n}"))
    return out


# --------------------------------------------------------------------------- handlers


def _setting(inputs: Mapping[str, Any], deps: Mapping[str, Path], opts: Mapping[str, Any]):
    """(data, forget set, its positions, the retain positions, the splits scored)."""
    from unlearnkit.data import load_forget
    from unlearnkit.experiments.handlers import FORGET, data_for

    data = data_for(inputs, opts)
    fs = load_forget(deps["forget"] / FORGET, data)
    f_pos = fs.check(data)
    retain = data.complement(f_pos)
    rows = {"forget": torch.as_tensor(f_pos), "retain": torch.as_tensor(retain)}
    parts = {s: (data.x_train[r], data.y_train[r]) for s, r in rows.items()}
    parts |= {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
    return data, fs, f_pos, retain, parts


def _row(fs_size: int, method: str, scores: Mapping[str, float], seconds: float,
         params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {**scores, "forget_size": fs_size, "method": method, "seconds": float(seconds),
            "params": json.dumps(dict(params or {}), sort_keys=True)}


@handler("population_models")
def _do_population_models(inputs, deps, out, opts):
    from unlearnkit.ensembles import train_ensemble
    from unlearnkit.runs import new_model, save_weights
    from unlearnkit.training import TrainConfig

    data, fs, _, retain, parts = _setting(inputs, deps, opts)
    n, first = inputs["n"], inputs["seed"]
    seeds = list(range(first, first + n))
    recipe = TrainConfig(**inputs["training"])
    device = opts.get("device", "auto")

    def build():
        return new_model(inputs["model"], data, inputs["model_kwargs"])

    def ensemble(rows: np.ndarray, member_seeds: list[int], what: str):
        return train_ensemble(build, data.x_train, data.y_train, [rows] * n, recipe, member_seeds, device=device,
                              measure_fit=False, quiet=opts.get("quiet", True), desc=what)

    originals = ensemble(np.arange(data.n_train), seeds, "originals")
    oracles = ensemble(retain, seeds, "oracles")
    floor = ensemble(retain, [first + n + j for j in range(n)], "second oracles")
    save_weights(out / ORIGINALS, {f"{j}.{k}": v for j, m in enumerate(originals.members())
                                   for k, v in m.state_dict().items()})
    ora = Outputs.of(oracles.logits, parts, n)
    ora.save(out / ORACLES)
    grid = inputs["scorer_grid"]
    rows = [_row(len(fs), ORIGINAL, population_scores(Outputs.of(originals.logits, parts, n), ora, grid), 0.0),
            _row(len(fs), NOISE_FLOOR, population_scores(Outputs.of(floor.logits, parts, n), ora, grid),
                 floor.seconds)]
    return {"rows": rows, "mode": oracles.mode, "seconds": {"originals": originals.seconds, "oracles": oracles.seconds,
                                                            "second_oracles": floor.seconds}}


@handler("population_unlearn")
def _do_population_unlearn(inputs, deps, out, opts):
    from safetensors.torch import load_file

    from unlearnkit.experiments.handlers import tuned_params
    from unlearnkit.methods.api import run_method
    from unlearnkit.runs import new_model
    from unlearnkit.task import Task
    from unlearnkit.training import TrainConfig, predict_logits

    models_unit = read_json(deps["models"] / DONE)["inputs"]
    data, fs, f_pos, retain, parts = _setting(models_unit, deps, opts)
    n, first = models_unit["n"], models_unit["seed"]
    weights = load_file(str(deps["models"] / ORIGINALS))
    params = tuned_params(inputs["params"], deps)

    def build():
        return new_model(models_unit["model"], data, models_unit["model_kwargs"])

    recipe = TrainConfig(**models_unit["training"])
    unlearned, seconds, used = [], 0.0, {}
    for j in range(n):
        model = build()
        model.load_state_dict({k.split(".", 1)[1]: v for k, v in weights.items() if k.split(".", 1)[0] == str(j)})
        res = run_method(Task(model.eval(), build_model=build, recipe=recipe), data, f_pos, retain, inputs["method"],
                         params, seed=first + j, device=opts.get("device", "auto"), quiet=True,
                         family=models_unit["model"], kind=fs.kind)
        unlearned.append(res.model)
        seconds += res.seconds
        used = res.params

    def logits(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([predict_logits(m, x) for m in unlearned])

    scores = population_scores(Outputs.of(logits, parts, n), Outputs.load(deps["models"] / ORACLES),
                               models_unit["scorer_grid"])
    return {"rows": [_row(len(fs), inputs["method"], scores, seconds, used)]}


# --------------------------------------------------------------------------- the table


def population_frame(units: list[WorkUnit], root: Path) -> pd.DataFrame:
    """``population.parquet`` from the finished population units (unfinished ones left out)."""
    rows = []
    for u in units:
        if u.done(root):
            label = dict(u.deps)["forget"].record(root)["summary"]["label"]
            rows += [{**r, "forget_kind": label} for r in u.record(root)["summary"]["rows"]]
    order = {ORIGINAL: 0, NOISE_FLOOR: 2}
    df = pd.DataFrame(rows, columns=POPULATION_COLUMNS)
    if df.empty:
        return df
    df["rank"] = df["method"].map(lambda m: order.get(m, 1))
    return df.sort_values(["forget_kind", "rank", "method"], kind="stable").drop(columns="rank").reset_index(drop=True)


def write_population(root: Path, units: list[WorkUnit]) -> pd.DataFrame | None:
    """Write ``root/population.parquet`` when the plan has population units; returns the table."""
    if not units:
        return None
    df = population_frame(units, root)
    write_parquet(root / POPULATION, df)
    return df
