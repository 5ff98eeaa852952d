"""unlearnkit: machine unlearning with per-example difficulty as a first-class measurement.

The public API (re-exports only; each lives in the subpackage named in its docstring):

- data and training: ``load_dataset``, ``TrainConfig``, ``train``, ``train_run``, ``load_run``, ``Run``
- forget sets: ``ForgetSet``, ``load_forget``, ``save_forget``
- difficulty: ``estimate_memorization``, ``compute_scores``, ``score_run``, ``entanglement_score``,
  ``analyze_instances``
- unlearning: ``unlearn``, ``unlearn_run``, ``tune``, ``rum``, ``rum_run``, ``train_sisa``
- evaluation: ``evaluate_model``, ``evaluate_runs``, ``tug_of_war``
- the benchmark: ``load_config``, ``run_bench``
"""

from unlearnkit._version import __version__

from unlearnkit.errors import UnlearnkitError  # noqa: E402
from unlearnkit.data import ForgetSet, load_dataset, load_forget, save_forget  # noqa: E402
from unlearnkit.runs import Run, load_run, train_run  # noqa: E402
from unlearnkit.training import TrainConfig, train  # noqa: E402
from unlearnkit.methods import unlearn, unlearn_run  # noqa: E402
from unlearnkit.methods.tune import tune  # noqa: E402
from unlearnkit.methods.sisa import train_sisa  # noqa: E402
from unlearnkit.metrics import tug_of_war  # noqa: E402
from unlearnkit.metrics.evaluate import evaluate_model, evaluate_runs  # noqa: E402
from unlearnkit.difficulty.memorization import estimate_memorization  # noqa: E402
from unlearnkit.difficulty.scores import compute_scores, score_run  # noqa: E402
from unlearnkit.difficulty.geometry import entanglement_score  # noqa: E402
from unlearnkit.meta.instance import analyze_instances  # noqa: E402
from unlearnkit.meta.rum import rum, rum_run  # noqa: E402
from unlearnkit.experiments import load_config, run_bench  # noqa: E402

__all__ = [
    "ForgetSet", "Run", "TrainConfig", "UnlearnkitError", "__version__", "analyze_instances",
    "compute_scores", "entanglement_score", "estimate_memorization", "evaluate_model", "evaluate_runs",
    "load_config", "load_dataset", "load_forget", "load_run", "rum", "rum_run", "run_bench",
    "save_forget", "score_run", "train", "train_run", "train_sisa", "tug_of_war", "tune",
    "unlearn", "unlearn_run",
]
