"""unlearnkit: machine unlearning with per-example difficulty as a first-class measurement.

The public API (re-exports only; each lives in the subpackage named in its docstring):

- model-first (any ``nn.Module``; data as a DataBundle, tensors or torch Datasets): ``unlearn``,
  ``evaluate``, ``scores``, ``memorization``, ``rum``; ``Task`` (head, features, build_model,
  recipe); ``make_bundle``; plugin checks in :mod:`unlearnkit.testing`
- data and training: ``load_dataset``, ``TrainConfig``, ``train``, ``train_run``, ``load_run``, ``Run``
- forget sets: ``ForgetSet``, ``load_forget``, ``save_forget``
- difficulty: ``estimate_memorization``, ``compute_scores``, ``score_run``, ``entanglement_score``,
  ``analyze_instances``
- run directories: ``unlearn_from_run``, ``unlearn_run``, ``tune``, ``rum_run``, ``train_sisa``
- evaluation: ``evaluate_model``, ``evaluate_runs``, ``tug_of_war``
- the benchmark: ``load_config``, ``run_bench``

The names are resolved on first use (PEP 562 ``__getattr__``), so that ``import unlearnkit``
and the CLI's ``--help`` do not pay for importing torch, scikit-learn or Ray.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from unlearnkit._version import __version__

# public name -> module that defines it; add new exports here.
_EXPORTS: dict[str, str] = {
    "UnlearnkitError": "unlearnkit.errors",
    "Task": "unlearnkit.task",
    "make_bundle": "unlearnkit.data",
    "evaluate": "unlearnkit.model_first",
    "scores": "unlearnkit.model_first",
    "memorization": "unlearnkit.model_first",
    "ForgetSet": "unlearnkit.data",
    "load_dataset": "unlearnkit.data",
    "load_forget": "unlearnkit.data",
    "save_forget": "unlearnkit.data",
    "Run": "unlearnkit.runs",
    "load_run": "unlearnkit.runs",
    "train_run": "unlearnkit.runs",
    "TrainConfig": "unlearnkit.training",
    "train": "unlearnkit.training",
    "unlearn": "unlearnkit.model_first",
    "unlearn_from_run": "unlearnkit.methods",
    "unlearn_run": "unlearnkit.methods",
    "tune": "unlearnkit.meta.tune",
    "train_sisa": "unlearnkit.methods.sisa",
    "tug_of_war": "unlearnkit.metrics",
    "evaluate_model": "unlearnkit.metrics.evaluate",
    "evaluate_runs": "unlearnkit.metrics.evaluate",
    "estimate_memorization": "unlearnkit.difficulty.memorization",
    "compute_scores": "unlearnkit.difficulty.scores",
    "score_run": "unlearnkit.difficulty.scores",
    "entanglement_score": "unlearnkit.difficulty.geometry",
    "analyze_instances": "unlearnkit.meta.instance",
    "rum": "unlearnkit.model_first",
    "rum_run": "unlearnkit.meta.rum",
    "load_config": "unlearnkit.experiments",
    "run_bench": "unlearnkit.experiments",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # ``unlearnkit.metrics`` etc. after a bare ``import unlearnkit``, as when everything was eager.
        if importlib.util.find_spec(f"unlearnkit.{name}") is None:
            raise AttributeError(f"module 'unlearnkit' has no attribute {name!r}")
        return importlib.import_module(f"unlearnkit.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # static analysers and IDEs see the real objects
    from unlearnkit.data import ForgetSet, load_dataset, load_forget, make_bundle, save_forget
    from unlearnkit.difficulty.geometry import entanglement_score
    from unlearnkit.meta.instance import analyze_instances
    from unlearnkit.difficulty.memorization import estimate_memorization
    from unlearnkit.difficulty.scores import compute_scores, score_run
    from unlearnkit.errors import UnlearnkitError
    from unlearnkit.experiments import load_config, run_bench
    from unlearnkit.meta.rum import rum_run
    from unlearnkit.model_first import evaluate, memorization, rum, scores, unlearn
    from unlearnkit.task import Task
    from unlearnkit.methods import unlearn_from_run, unlearn_run
    from unlearnkit.methods.sisa import train_sisa
    from unlearnkit.meta.tune import tune
    from unlearnkit.metrics import tug_of_war
    from unlearnkit.metrics.evaluate import evaluate_model, evaluate_runs
    from unlearnkit.runs import Run, load_run, train_run
    from unlearnkit.training import TrainConfig, train

__all__ = ["__version__", *_EXPORTS]
