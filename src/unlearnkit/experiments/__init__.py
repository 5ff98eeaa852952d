"""The benchmark pipeline: a YAML config (:mod:`.config`), work units cached by
input hash (:mod:`.units`), the runner and the results store; the executors that run
units are in :mod:`unlearnkit.parallel`."""

from unlearnkit.experiments.config import BenchConfig, load_config, validate_config
from unlearnkit.experiments.runner import Outcome, build_plan, run_bench
from unlearnkit.experiments.store import COLUMNS, TIME_COLUMNS, read_results
from unlearnkit.experiments.units import WorkUnit

__all__ = [
    "COLUMNS",
    "TIME_COLUMNS",
    "BenchConfig",
    "Outcome",
    "WorkUnit",
    "build_plan",
    "load_config",
    "read_results",
    "run_bench",
    "validate_config",
]
