"""The benchmark pipeline: a YAML config (:mod:`.config`), work units cached by input hash
(:mod:`.units`), the plan of a config's units (:mod:`.plan`), what each unit kind does
(:mod:`.handlers`), running them wave by wave (:mod:`.schedule`), the runner that ties them
together (:mod:`.runner`) and the results store (:mod:`.store`). The executors that run units
are in :mod:`unlearnkit.parallel`."""

from unlearnkit.experiments.config import BenchConfig, load_config, validate_config
from unlearnkit.experiments.plan import build_plan
from unlearnkit.experiments.runner import Outcome, run_bench
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
