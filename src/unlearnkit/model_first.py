"""The model-first calls: any ``nn.Module``, data as a DataBundle, tensors or torch Datasets.

- :func:`unlearn`: unlearn forget rows from a model (:func:`unlearnkit.methods.api.unlearn`),
  evaluated against a retrained ``reference`` when one is given;
- :func:`evaluate`: accuracies, MIA and, against a retrained ``reference``, ToW;
- :func:`scores`: per-example difficulty scores of the model's training rows;
- :func:`memorization`: the subset-training memorization estimate from ``build_model``;
- :func:`rum`: refine the forget set by a score and unlearn it group by group.

``data`` is anything :func:`unlearnkit.data.as_bundle` accepts; forget indices are
training indices (for tensors and Datasets: row numbers). Each call is a thin layer
over the run-level function of the same concept (``evaluate_runs``, ``compute_scores``,
``rum``), which it gives an in-memory run (:func:`unlearnkit.task.memory_run`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from unlearnkit.data import as_bundle
from unlearnkit.difficulty.memorization import memorization_estimate, model_seed, subset_mask
from unlearnkit.difficulty.scores import compute_scores
from unlearnkit.errors import UnlearnkitError
from unlearnkit.meta.rum import RumOutcome
from unlearnkit.meta.rum import rum as rum_on_run
from unlearnkit.methods.api import ForgetLike, UnlearnOutcome, as_forget, check_output_width
from unlearnkit.methods.api import unlearn as unlearn_model
from unlearnkit.metrics.evaluate import EvalReport, evaluate_runs
from unlearnkit.metrics.mia import DEFAULT_MAX_PER_SIDE
from unlearnkit.progress import progress_bar
from unlearnkit.task import Task, as_task, memory_run
from unlearnkit.training import TrainConfig, predict_logits, resolve_device, seed_everything, train


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def evaluate(
    model: nn.Module,
    data: Any,
    forget: ForgetLike,
    *,
    reference: nn.Module | Sequence[nn.Module] | None = None,
    mia_max_per_side: int = DEFAULT_MAX_PER_SIDE,
    seed: int = 0,
) -> EvalReport:
    """Evaluate ``model`` on ``data`` with ``forget`` as the forget set.

    ``reference``: one or more models retrained without the forget rows (e.g.
    ``unlearn(original, data, forget, "retrain", task=...).model``); with it the report's
    ``comparisons`` hold ToW, ToW-MIA and the mean gap against the references' mean
    accuracies. Returns :func:`unlearnkit.metrics.evaluate.evaluate_runs`'s
    :class:`EvalReport`: ``metrics`` (accuracies in [0, 1], MIA-efficacy, MIA AUC; each a
    Summary with ``.mean``), ``sizes``, ``per_example`` (a DataFrame over the forget rows).
    """
    bundle = as_bundle(data)
    fs = as_forget(forget)
    fs.check(bundle)
    refs = [] if reference is None else [reference] if isinstance(reference, nn.Module) else list(reference)
    for m in [model, *refs]:
        check_output_width(m, bundle, _model_device(m))
    runs = [memory_run(Task(model), bundle)]
    ref_runs = [memory_run(Task(r), bundle, excluded=fs.indices) for r in refs]
    # In-memory models record no seed to pair by: compare with the references' mean.
    return evaluate_runs(runs, ref_runs, fs, pairing="mean", mia_max_per_side=mia_max_per_side, seed=seed)


def unlearn(
    model: nn.Module,
    data: Any,
    forget: ForgetLike,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    reference: nn.Module | Sequence[nn.Module] | None = None,
    task: Task | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> UnlearnOutcome:
    """:func:`unlearnkit.methods.api.unlearn` (any ``nn.Module``; ``data`` and ``forget`` as
    there), and, when ``reference`` (one or more models retrained without the forget rows) is
    given, :func:`evaluate` of the result against it in ``outcome.evaluation`` (ToW in
    ``outcome.evaluation.comparisons``)."""
    out = unlearn_model(model, data, forget, method, params, task=task, seed=seed, device=device, quiet=quiet)
    if reference is not None:
        out.evaluation = evaluate(out.model, data, forget, reference=reference, seed=seed)
    return out


def scores(
    model: nn.Module,
    data: Any,
    names: str | list[str] = "all",
    *,
    task: Task | None = None,
    memorization_dir: str | None = None,
    device: str = "auto",
    seed: int = 0,
    quiet: bool = True,
) -> pd.DataFrame:
    """Per-example difficulty scores of ``model``'s training rows (one row each: ``index``,
    ``label``, one column per score), as :func:`unlearnkit.difficulty.compute_scores`.

    ``names="all"`` computes every score an in-memory model supports; those that need
    what only a run directory records (training dynamics) are listed with the reason
    in ``df.attrs["skipped"]``. Feature-based scores use ``task``'s features.
    """
    bundle = as_bundle(data)
    task = as_task(model, task)
    check_output_width(model, bundle, _model_device(model))
    return compute_scores(memory_run(task, bundle), names, memorization_dir, quiet, device=device, seed=seed)


def memorization(
    build_model: Callable[[], nn.Module],
    data: Any,
    recipe: TrainConfig,
    *,
    k: int = 100,
    fraction: float = 0.7,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = True,
) -> pd.DataFrame:
    """Memorization of every training row: train ``k`` fresh ``build_model()`` models with
    ``recipe`` on random ``fraction``-subsets (the same subsets and seeds as
    :func:`unlearnkit.estimate_memorization`) and compare accuracy on rows in vs out.

    Returns ``index``, ``label``, ``memorization`` (in [-1, 1]; NaN where a row was never
    held out), ``memorization_se`` and ``memorization_n_out``. Models train one after
    another in this process; for stacked ensembles, Ray, resuming and the fit check,
    register the model and call :func:`unlearnkit.estimate_memorization`.
    """
    bundle = as_bundle(data)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise UnlearnkitError(f"k must be an integer >= 2 (models to train), got {k}")
    n = bundle.n_train
    if not 0 < round(fraction * n) < n:
        raise UnlearnkitError(f"fraction {fraction} of {n} training rows leaves an empty subset or none held out")
    dev = resolve_device(device)
    masks = np.stack([subset_mask(n, fraction, seed, j) for j in range(k)])
    correct = np.zeros((k, n), dtype=bool)
    with progress_bar(quiet) as bar:
        job = bar.add_task("memorization", total=k, info="")
        for j in range(k):
            s = model_seed(seed, j)
            seed_everything(s)
            model = build_model()
            rows = torch.as_tensor(np.nonzero(masks[j])[0])
            train(model, bundle.x_train[rows], bundle.y_train[rows], recipe.model_copy(update={"seed": s}),
                  device=dev, record_dynamics=False, measure_fit=False)
            correct[j] = (predict_logits(model, bundle.x_train, device=dev).argmax(1) == bundle.y_train).numpy()
            bar.update(job, advance=1)
    est = memorization_estimate(correct, masks)
    return pd.concat([pd.DataFrame({"index": bundle.index_train.numpy(), "label": bundle.y_train.numpy()}), est], axis=1)


def rum(
    model: nn.Module,
    data: Any,
    forget: ForgetLike,
    *,
    task: Task | None = None,
    scores: pd.DataFrame | None = None,
    refine_by: str = "centroid_distance",
    **kwargs: Any,
) -> RumOutcome:
    """RUM on an in-memory model: refine ``forget`` by ``refine_by`` (a column of ``scores``,
    e.g. from :func:`scores` or :func:`memorization`, or the on-the-fly
    ``"centroid_distance"``) and unlearn the groups in sequence. ``kwargs`` as
    :func:`unlearnkit.meta.rum.rum` (groups, order, methods, params, retain, variant, ...);
    the ``rum`` variant's search retrains references, so its ``task`` needs
    ``build_model`` and ``recipe``. Never modifies ``model``.
    """
    bundle = as_bundle(data)
    task = as_task(model, task)
    check_output_width(model, bundle, _model_device(model))
    return rum_on_run(memory_run(task, bundle), as_forget(forget), refine_by=refine_by, scores=scores, **kwargs)


__all__ = ["evaluate", "memorization", "rum", "scores", "unlearn"]
