"""Feldman memorization estimated with K models trained on random subsets (docs/memorization.md).

mem(i) = P[f(x_i) = y_i | i in training] - P[f(x_i) = y_i | i held out], estimated
from K models, model j trained on a uniformly random subset of a fraction p of
the training rows. Model j's subset, initial weights and shuffling depend only
on ``(seed, j)``, so the result is the same whichever executor runs the
trainings and however often the job is interrupted and resumed.

``MEM_DIR`` layout::

    manifest.json            the configuration (and its sha256) the blocks belong to
    models/block_0003.npz    per finished block: model ids, subset masks [B, n],
                             per-example correctness on all training rows [B, n],
                             epochs each model trained [B]
    memorization.parquet     index, memorization, memorization_se, memorization_n_out
    memorization.json        configuration, fit of the subset models, split-half
                             reliability, warnings, timings

The estimate assumes models that (nearly) interpolate their training subsets:
memorization.json records every model's accuracy on its own subset (``fit``) and
the run warns when the median is below ``fit_threshold`` (default 0.99). Without a
``cfg``, the model family's default recipe (:mod:`unlearnkit.difficulty.fit`)
trains until each model fits.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from unlearnkit.data import DataBundle
from unlearnkit.difficulty.fit import FIT_THRESHOLD, check_fit, memorization_recipe
from unlearnkit.ensembles import EnsembleMode, auto_mode, can_stack, train_ensemble
from unlearnkit.errors import UnlearnkitError
from unlearnkit.parallel import Executor, get_executor
from unlearnkit.io import atomic_write, read_json, write_json, write_parquet
from unlearnkit.models import build_model
from unlearnkit.models.base import require_classifier
from unlearnkit.runs import model_kwargs_for, versions
from unlearnkit.training import TrainConfig, make_config, resolve_device, seed_everything, torch_threads

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLE = "memorization.parquet"
META = "memorization.json"
MIN_HELD_OUT = 5  # warn when an example was held out of fewer models
MIN_HELD_OUT_PER_HALF = 3  # examples used by the split-half correlation
LOW_RELIABILITY = 0.5
DEFAULT_BLOCK = 16  # models per stacked block (16-32 on a CPU; all at once is memory-bound)


class MemorizationWarning(UserWarning):
    """The estimate will be (or is) noisy: few models, few held-out models, low reliability."""


def subset_mask(n: int, fraction: float, seed: int, j: int) -> np.ndarray:
    """Model ``j``'s training subset: ``bool [n]`` with ``round(fraction * n)`` True, from ``(seed, j)`` only."""
    m = int(round(fraction * n))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng([seed, j]).permutation(n)[:m]] = True
    return mask


def model_seed(seed: int, j: int) -> int:
    """Seed of model ``j``'s initial weights and shuffling (a 32-bit hash of ``(seed, j)``)."""
    return int(np.random.SeedSequence([seed, j]).generate_state(1)[0])


def memorization_estimate(correct: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """mem, its standard error and the held-out count from ``correct``/``masks`` ``bool [K, n]``.

    Returns columns memorization (in [-1, 1]; NaN where an example was never
    held out or never trained on), memorization_se (sqrt of the two groups'
    sample variances over their sizes) and memorization_n_out (int).
    """
    c, m = correct.astype(np.float64), masks.astype(bool)
    n_in, n_out = m.sum(0), (~m).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = (c * m).sum(0) / n_in
        p_out = (c * ~m).sum(0) / n_out
        # Sample variance of a Bernoulli group: p(1-p) n/(n-1); NaN for groups of one.
        var_in = p_in * (1 - p_in) * n_in / (n_in - 1)
        var_out = p_out * (1 - p_out) * n_out / (n_out - 1)
        se = np.sqrt(var_in / n_in + var_out / n_out)
    return pd.DataFrame(
        {"memorization": p_in - p_out, "memorization_se": se, "memorization_n_out": n_out.astype(np.int64)}
    )


def split_half_reliability(correct: np.ndarray, masks: np.ndarray, min_out: int = MIN_HELD_OUT_PER_HALF) -> dict:
    """Spearman correlation between the estimates of models ``[0, K/2)`` and ``[K/2, K)``.

    Only examples held out of at least ``min_out`` models in each half (and seen
    by at least one) count. Also gives the Spearman-Brown prediction for the
    full K, 2r / (1 + r). Both are None when they cannot be computed.
    """
    h = correct.shape[0] // 2
    a = memorization_estimate(correct[:h], masks[:h])
    b = memorization_estimate(correct[h:], masks[h:])
    ok = (
        (a["memorization_n_out"] >= min_out).to_numpy()
        & (b["memorization_n_out"] >= min_out).to_numpy()
        & a["memorization"].notna().to_numpy()
        & b["memorization"].notna().to_numpy()
    )
    r = None
    if ok.sum() >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input gives NaN, reported as None
            rho = float(spearmanr(a["memorization"][ok], b["memorization"][ok]).statistic)
        r = rho if np.isfinite(rho) else None
    return {
        "split_half_spearman": r,
        "spearman_brown": 2 * r / (1 + r) if r is not None and r > -1 else None,
        "n_examples": int(ok.sum()),
        "min_held_out_per_half": min_out,
        "halves": [h, correct.shape[0] - h],
    }


@dataclass(frozen=True)
class Block:
    """A work unit: train models ``models`` (ids j) of block number ``block``."""

    block: int
    models: tuple[int, ...]


@dataclass
class BlockContext:
    """What every block needs (shared by all units; Ray stores it once)."""

    x: torch.Tensor
    y: torch.Tensor
    model_name: str
    model_kwargs: dict[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int
    cfg: dict[str, Any]
    seed: int
    fraction: float
    mode: str
    device: str
    threads: int


def train_block(block: Block, ctx: BlockContext) -> dict[str, Any]:
    """Train the block's models (one :func:`unlearnkit.ensembles.train_ensemble`) and
    evaluate them on all training rows.

    Returns ``models`` (int [B]), ``masks`` and ``correct`` (bool [B, n]),
    ``epochs_run`` (int [B]) and ``seconds`` (training + evaluation wall time).
    """
    start = time.perf_counter()
    n = int(ctx.y.shape[0])
    cfg = TrainConfig(**ctx.cfg)
    masks = np.stack([subset_mask(n, ctx.fraction, ctx.seed, j) for j in block.models])
    seeds = [model_seed(ctx.seed, j) for j in block.models]

    def fresh() -> torch.nn.Module:
        return build_model(ctx.model_name, ctx.input_shape, ctx.num_classes, **ctx.model_kwargs)

    with torch_threads(ctx.threads):
        ens = train_ensemble(
            fresh, ctx.x, ctx.y, [np.nonzero(mk)[0] for mk in masks], cfg, seeds, mode=ctx.mode,  # type: ignore[arg-type]
            device=ctx.device, measure_fit=False,  # the fit follows from ``correct`` and the masks
        )
        correct = ens.correct(ctx.x, ctx.y)
    return {
        "models": np.asarray(block.models, dtype=np.int64),
        "masks": masks,
        "correct": correct.astype(bool),
        "epochs_run": ens.epochs_run.astype(np.int64),
        "seconds": time.perf_counter() - start,
    }


def in_subset_accuracy(correct: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Each model's accuracy on its own training subset, ``[K]`` in [0, 1], from ``correct``
    and ``masks`` ``bool [K, n]`` (correctness measured in eval mode after training)."""
    return (correct & masks).sum(1) / np.maximum(masks.sum(1), 1)


@dataclass
class MemorizationResult:
    """``table``: index, memorization, memorization_se, memorization_n_out; ``meta``: memorization.json."""

    path: Path
    table: pd.DataFrame
    reliability: dict[str, Any]
    meta: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def resolve_mode(ensemble: str, model: torch.nn.Module, probe: torch.Tensor, device: torch.device,
                 amp: bool = False) -> str:
    """``auto``: :func:`unlearnkit.ensembles.auto_mode` (stacked for the mlp and the cnn; on a CPU the
    loop for conv chains not in channels_last; the loop for an amp recipe)."""
    if ensemble not in ("auto", "loop", "stacked"):
        raise UnlearnkitError(f"unknown ensemble mode '{ensemble}'; choose auto, loop or stacked")
    if ensemble == "stacked" and not can_stack(model, probe):
        raise UnlearnkitError(
            f"--ensemble stacked: {type(model).__name__} has BatchNorm buffers outside a plain chain of "
            "layers; use --ensemble loop"
        )
    if ensemble == "auto":
        return "loop" if amp else auto_mode(model, probe, device)
    return ensemble


def _data_sha256(data: DataBundle) -> str:
    h = hashlib.sha256()
    for t in (data.index_train, data.x_train, data.y_train):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _config_sha256(config: dict[str, Any]) -> str:
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _prepare_dir(out: Path, config: dict[str, Any], sha: str) -> None:
    """Create ``out`` with a manifest, or check that its manifest is this configuration's."""
    manifest = out / MANIFEST
    if manifest.exists():
        old = read_json(manifest)
        if old.get("config_sha256") != sha:
            prev = old.get("config", {})
            diff = sorted(k for k in set(prev) | set(config) if prev.get(k) != config.get(k))
            raise UnlearnkitError(
                f"{out}: holds memorization models of another configuration (differs in: "
                f"{', '.join(diff) or 'format'}); use another --out or delete that directory"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UnlearnkitError(f"{out}: exists and is not a memorization directory (no {MANIFEST})")
    write_json(manifest, {"format_version": FORMAT_VERSION, "config": config, "config_sha256": sha})


def _block_path(out: Path, b: int) -> Path:
    return out / "models" / f"block_{b:04d}.npz"


def _save_block(out: Path, b: int, result: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **result)

    atomic_write(_block_path(out, b), write)


def _load_block(out: Path, block: Block, n: int, fraction: float, seed: int) -> dict[str, Any] | None:
    """A finished block's arrays, or None if not finished; refuses a file that does not fit."""
    path = _block_path(out, block.block)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            res = {k: z[k] for k in ("models", "masks", "correct", "epochs_run", "seconds")}
    except (OSError, KeyError, ValueError) as e:
        raise UnlearnkitError(f"{path}: unreadable block file ({e}); delete it to retrain that block") from None
    expect_masks = np.stack([subset_mask(n, fraction, seed, j) for j in block.models])
    if (
        res["models"].tolist() != list(block.models)
        or res["correct"].shape != expect_masks.shape
        or not np.array_equal(res["masks"], expect_masks)
    ):
        raise UnlearnkitError(f"{path}: does not belong to this configuration; delete it to retrain that block")
    return res


def estimate_memorization(
    data: DataBundle,
    model_name: str,
    *,
    k: int = 100,
    fraction: float = 0.7,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path,
    cfg: TrainConfig | None = None,
    until_fit: float | None = None,
    fit_threshold: float = FIT_THRESHOLD,
    model_kwargs: dict[str, Any] | None = None,
    executor: str | Executor = "local",
    address: str | None = None,
    ensemble: EnsembleMode = "auto",
    block_size: int | None = None,
    threads: int = 1,
    device: str = "auto",
    quiet: bool = True,
) -> MemorizationResult:
    """Train ``k`` models on random ``fraction``-subsets and estimate every training example's memorization.

    ``cfg`` gives the recipe; without one, the model family's default
    memorization recipe (:func:`unlearnkit.difficulty.fit.memorization_recipe`;
    an error for a family without one). ``epochs`` (the cap when the recipe
    trains ``until_fit``) and ``until_fit`` (stop each model once its accuracy
    on its own subset reaches it) override the recipe's; the seed is per model.
    Each model's in-subset accuracy is recorded (``meta["fit"]``), with a
    warning when its median is below ``fit_threshold``. ``ensemble``:
    ``stacked`` trains blocks of ``block_size`` models (default 16) as one
    network (:mod:`unlearnkit.ensembles`), ``loop`` trains them one by one
    through :func:`unlearnkit.training.train`, ``auto`` stacks the models it
    can (mlp, cnn) and loops over the others. Every model
    trains with ``threads`` torch threads whichever ``executor`` (``local``,
    ``ray`` or an :class:`Executor`) runs it, so results are bitwise
    reproducible across executors. Finished blocks are saved in ``out/models``;
    calling again with the same arguments resumes, with other arguments it
    refuses. Emits :class:`MemorizationWarning` when the estimate is noisy.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise UnlearnkitError(f"k must be an integer >= 2 (models to train), got {k}")
    if not 0.0 < fraction < 1.0:
        raise UnlearnkitError(f"fraction must be in (0, 1), got {fraction}")
    if threads < 1 or (block_size is not None and block_size < 1):
        raise UnlearnkitError("threads and block_size must be >= 1")
    n = data.n_train
    m = int(round(fraction * n))
    if not 0 < m < n:
        raise UnlearnkitError(f"fraction {fraction} of {n} training examples leaves an empty subset or none held out")
    if not 0 < fit_threshold <= 1:
        raise UnlearnkitError(f"fit threshold must be in (0, 1], got {fit_threshold}")
    overrides = {"epochs": epochs, "until_fit": until_fit, "seed": seed}
    if cfg is None:
        cfg = memorization_recipe(model_name, **overrides)
    else:
        cfg = make_config(**{**cfg.model_dump(), **{key: v for key, v in overrides.items() if v is not None}})
    kwargs = model_kwargs_for(data, model_kwargs or {})
    probe = build_model(model_name, data.input_shape, data.num_classes, **kwargs)
    require_classifier(probe, "memorization estimates")
    dev = resolve_device(device)
    mode = resolve_mode(ensemble, probe, data.x_train[:2], dev, amp=bool(getattr(cfg, "amp", False)))
    block_size = block_size or (DEFAULT_BLOCK if mode == "stacked" else 1)
    out = Path(out)
    spec = {key: v for key, v in data.spec.items() if key != "data_root"}
    config = {
        "dataset": spec,
        "n_train": n,
        "data_sha256": _data_sha256(data),
        "model": {"name": model_name, "kwargs": kwargs},
        "k": int(k),
        "fraction": float(fraction),
        "epochs": int(cfg.epochs),
        "seed": int(seed),
        "train": cfg.model_dump(),
        "ensemble": mode,
        "block_size": int(block_size),
        "threads": int(threads),
        "device": dev.type,
    }
    sha = _config_sha256(config)
    _prepare_dir(out, config, sha)

    notes: list[str] = []

    def warn(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, MemorizationWarning, stacklevel=3)

    if k * (1 - fraction) < MIN_HELD_OUT:
        warn(
            f"k={k} with fraction {fraction} holds each example out of only {k * (1 - fraction):.1f} models "
            f"on average (< {MIN_HELD_OUT}); the estimate will be very noisy (RUM uses k=400)"
        )
    start = time.perf_counter()
    blocks = [Block(b, tuple(range(s, min(s + block_size, k)))) for b, s in enumerate(range(0, k, block_size))]
    results = {b.block: r for b in blocks if (r := _load_block(out, b, n, fraction, seed)) is not None}
    resumed = len(results)
    todo = [b for b in blocks if b.block not in results]
    if todo:
        ctx = BlockContext(
            x=data.x_train, y=data.y_train, model_name=model_name, model_kwargs=kwargs,
            input_shape=data.input_shape, num_classes=data.num_classes, cfg=cfg.model_dump(),
            seed=int(seed), fraction=float(fraction), mode=mode, device=str(dev), threads=int(threads),
        )
        ex = executor if isinstance(executor, Executor) else get_executor(
            executor, address, task_cpus=threads, task_gpus=1 if dev.type == "cuda" else 0
        )
        try:
            units = ex.map(train_block, todo, context=ctx, desc=f"memorization {model_name}", quiet=quiet)
            for block, result in units:
                _save_block(out, block.block, result)  # the unit is safe on disk before the next one
                results[block.block] = result
        finally:
            if not isinstance(executor, Executor):
                ex.close()
    correct = np.concatenate([results[b.block]["correct"] for b in blocks])
    masks = np.concatenate([results[b.block]["masks"] for b in blocks])
    table = memorization_estimate(correct, masks)
    table.insert(0, "index", data.index_train.numpy().astype(np.int64))
    reliability = split_half_reliability(correct, masks)
    fit = in_subset_accuracy(correct, masks)
    epochs_run = np.concatenate([results[b.block]["epochs_run"] for b in blocks])
    fit_note = check_fit(
        float(np.median(fit)), fit_threshold, what=f"the median in-subset accuracy of the {k} subset models"
    )
    if fit_note:
        warn(fit_note)
    few = int((table["memorization_n_out"] < MIN_HELD_OUT).sum())
    if few:
        warn(
            f"{few} of {n} examples were held out of fewer than {MIN_HELD_OUT} models "
            f"(min {int(table['memorization_n_out'].min())}); their estimates are unreliable, raise --k"
        )
    r = reliability["split_half_spearman"]
    if r is None:
        warn(
            f"split-half reliability cannot be computed: too few examples were held out of >= "
            f"{MIN_HELD_OUT_PER_HALF} models in each half of the {k} models; raise --k"
        )
    elif r < LOW_RELIABILITY:
        warn(
            f"split-half reliability {r:.3f} is low (< {LOW_RELIABILITY}): two halves of the {k} models "
            f"rank the examples differently; raise --k for a stable estimate"
        )
    model_seconds = float(sum(float(res["seconds"]) for res in results.values()))
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "memorization",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        **config,
        "dataset": data.spec,
        "config_sha256": sha,
        "executor": ex.name if todo else "none (all blocks resumed)",
        "reliability": reliability,
        "fit": {
            "in_subset_accuracy": {"min": float(fit.min()), "median": float(np.median(fit)),
                                   "mean": float(fit.mean()), "per_model": [float(a) for a in fit]},
            "threshold": float(fit_threshold),
            "fits": fit_note is None,
            "epochs_run": {"min": int(epochs_run.min()), "median": float(np.median(epochs_run)),
                           "max": int(epochs_run.max()), "cap": int(cfg.epochs)},
        },
        "summary": {
            "mean": float(table["memorization"].mean()),
            "median": float(table["memorization"].median()),
            "n_out_min": int(table["memorization_n_out"].min()),
            "n_out_mean": float(table["memorization_n_out"].mean()),
            "n_few_held_out": few,
        },
        "warnings": notes,
        "timings": {
            "wall_seconds": time.perf_counter() - start,
            "model_seconds_total": model_seconds,
            "seconds_per_model": model_seconds / k,
            "blocks": len(blocks),
            "blocks_resumed": resumed,
        },
    }
    write_parquet(out / TABLE, table)
    write_json(out / META, meta)
    return MemorizationResult(path=out, table=table, reliability=reliability, meta=meta, warnings=notes)


def _mismatch(meta: dict[str, Any], key: str, want: Any) -> str | None:
    """Describe how ``meta`` differs from the expectation ``want`` for ``key`` (None if it agrees)."""
    have = meta.get(key)
    if key == "dataset":
        want = {"name": want} if isinstance(want, str) else want
        have = have or {}
        fields = [f for f in ("name", "val_fraction", "split_seed", "options") if f in want]
        bad = [f for f in fields if (have.get(f) or None) != (want.get(f) or None)]
        return f"dataset {', '.join(f'{f}={have.get(f)!r}' for f in bad)}" if bad else None
    if key == "model":
        want = {"name": want} if isinstance(want, str) else want
        have = have or {}
        bad = [f for f in ("name", "kwargs") if f in want and have.get(f) != want.get(f)]
        return f"model {', '.join(f'{f}={have.get(f)!r}' for f in bad)}" if bad else None
    return None if have == want else f"{key}={have!r}"


def load_memorization(mem_dir: str | Path, expect: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read ``memorization.parquet`` and ``memorization.json`` from ``mem_dir``.

    ``expect`` (e.g. ``{"dataset": run.meta["dataset"], "seed": 0}``; keys
    ``dataset`` (name or spec dict: name, val_fraction, split_seed, options),
    ``model`` (name or {"name", "kwargs"}), or any top-level field such as
    ``seed``, ``k``, ``n_train``) makes it refuse a directory from another run
    configuration with a one-line :class:`UnlearnkitError`.
    """
    mem_dir = Path(mem_dir)
    if not (mem_dir / META).exists() or not (mem_dir / TABLE).exists():
        hint = " (unfinished: re-run the same `unlearnkit memorization` command to resume)" if (
            mem_dir / MANIFEST
        ).exists() else ""
        raise UnlearnkitError(f"{mem_dir}: no finished memorization estimate{hint}")
    meta = read_json(mem_dir / META)
    if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != "memorization":
        raise UnlearnkitError(f"{mem_dir}: {META} is not a memorization estimate of format {FORMAT_VERSION}")
    bad = [msg for key, want in (expect or {}).items() if (msg := _mismatch(meta, key, want))]
    if bad:
        want_text = ", ".join(f"{k}={v!r}" for k, v in (expect or {}).items())
        raise UnlearnkitError(f"{mem_dir}: memorization of another configuration ({'; '.join(bad)}; expected {want_text})")
    return pd.read_parquet(mem_dir / TABLE), meta
