"""unlearnkit: machine unlearning with per-example difficulty as a first-class measurement."""

__version__ = "0.1.0"

from unlearnkit.errors import UnlearnkitError  # noqa: E402
from unlearnkit.data import load_dataset  # noqa: E402
from unlearnkit.runs import Run, load_run, train_run  # noqa: E402
from unlearnkit.training import TrainConfig, train  # noqa: E402

__all__ = ["Run", "TrainConfig", "UnlearnkitError", "__version__", "load_dataset", "load_run", "train", "train_run"]
