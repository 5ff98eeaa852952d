"""The one training loop: original models, retrained references, SISA shards and
memorization ensembles all train through :func:`train`.

It also records per-example training dynamics (true-label probability,
correctness, loss of every training example at every epoch, taken from the
training forward pass itself so it costs almost nothing); the cheap
memorization proxies are computed from these.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from unlearnkit.errors import UnlearnkitError, validation_message
from unlearnkit.models.base import find_head, head_inputs
from unlearnkit.progress import progress_bar

if TYPE_CHECKING:
    from unlearnkit.data import DataBundle


class TrainConfig(BaseModel):
    """Hyperparameters of one training run (validated on construction)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1)
    lr: float = Field(0.05, gt=0)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    augment: bool = False
    seed: int = 0
    # Stop as soon as the accuracy on the training rows reaches this (``epochs`` is then the cap).
    until_fit: float | None = Field(None, gt=0, le=1)
    # Mixed precision: forward and loss under bfloat16 autocast (weights, gradients and the
    # optimizer stay float32, so no loss scaling is needed). Faster and lighter on a GPU; the
    # results differ from float32 in the last digits, so it is recorded with the recipe.
    amp: bool = False


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with ``n`` torch threads: float results depend on the thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_config(**kwargs) -> TrainConfig:
    """Build a TrainConfig, turning validation errors into one-line messages."""
    try:
        return TrainConfig(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as e:
        raise UnlearnkitError(f"invalid hyperparameters: {validation_message(e)}") from None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation happens after this)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` takes a GPU when there is one; ``cuda`` without one is an error (one line).
    A ``torch.device`` is returned as it is, so every layer can take either."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UnlearnkitError("--device cuda: no CUDA GPU is available on this machine")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UnlearnkitError(f"unknown device '{device}'; choose auto, cpu or cuda")
    return torch.device(device)


def make_optimizer(params, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer. ``fused``: torch's single-kernel update (CPU and CUDA; the same
    arithmetic, measured equal to 4e-9 over 200 AdamW steps), several times faster on large tensors."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           fused=fused or None)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Per-step schedule: cosine to 0, step (x0.1 at 50% and 75%), or constant."""
    total = max(1, total_steps)
    if cfg.schedule == "cosine":
        fn = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))  # noqa: E731
    elif cfg.schedule == "step":
        fn = lambda s: 0.1 ** ((s >= 0.5 * total) + (s >= 0.75 * total))  # noqa: E731
    else:
        fn = lambda s: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, on a [n, C, H, W] batch."""
    if x.dim() != 4:
        return x
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1).to(x.device), x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(x.device)  # [n, h]
    cols = (dx.view(n, 1) + torch.arange(w)).to(x.device)  # [n, w]
    ar = torch.arange(n, device=x.device).view(n, 1, 1)
    # Gather the crop window of every image at once: [n, C, h, w].
    return padded.permute(0, 2, 3, 1)[ar, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise UnlearnkitError(f"loss became {loss.item()} at {where}; stopped, nothing written")


def targets_for(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What ``model`` learns to predict from rows ``x``: the labels ``y [n]`` for a classifier;
    for a sequence model (``model.objective == "next_token"``) the token ids ``x [n, L]``
    themselves, every position predicting the next one."""
    return x if getattr(model, "objective", "classify") == "next_token" else y


def per_example_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example ``[b]`` (nats).

    ``logits [b, C]`` against labels ``[b]``; or, for a sequence model, ``logits [b, L, V]``
    against token ids ``[b, L]``: the mean over positions whose next token is not padding
    (id 0) of ``-log p(x_{t+1} | x_{<=t})``. A sequence with no next token gives NaN.
    """
    if logits.dim() == 2:
        return F.cross_entropy(logits, targets, reduction="none")
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets[:, 1:], reduction="none")  # [b, L-1]
    mask = (targets[:, 1:] != 0).to(nll.dtype)
    return (nll * mask).sum(1) / mask.sum(1)


def per_example_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of right argmax predictions per example ``[b]`` in [0, 1]: 0/1 for a classifier,
    the fraction of (non-padding) next tokens for a sequence model."""
    if logits.dim() == 2:
        return (logits.argmax(1) == targets).float()
    hit = (logits[:, :-1].argmax(2) == targets[:, 1:]).float()
    mask = (targets[:, 1:] != 0).float()
    return (hit * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def true_probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Probability of the targets per example ``[b]``: softmax of the true label for a
    classifier, the per-token geometric mean ``exp(-loss)`` for a sequence model."""
    if logits.dim() == 2:
        return torch.softmax(logits.float(), 1).gather(1, targets[:, None])[:, 0]
    return torch.exp(-per_example_loss(logits.float(), targets))


@dataclass
class TrainResult:
    """What :func:`train` returns. ``dynamics`` has columns index, epoch, p_true, correct, loss."""

    model: nn.Module
    dynamics: pd.DataFrame | None
    seconds: float
    examples_processed: int
    # Accuracy in [0, 1] on the rows trained on, in eval mode after training (NaN if not measured).
    train_accuracy: float = float("nan")
    epochs_run: int = 0


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    index: np.ndarray | None = None,
    device: torch.device | str = "auto",
    record_dynamics: bool = True,
    quiet: bool = True,
    desc: str = "train",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    measure_fit: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``x [n, ...]``, ``y [n]`` with ``cfg``.

    ``index`` (int64 ``[n]``) names each row in the dynamics table (defaults to
    ``0..n-1``). ``loss_fn(logits, targets) -> per-example losses [b]`` overrides
    cross-entropy (e.g. for label smoothing in a method); targets are
    :func:`targets_for` ``(model, x, y)``, so a sequence model trains on next-token
    loss through the same loop (``y`` is then ignored). With ``cfg.until_fit``,
    training stops after the first epoch at whose end the accuracy on ``x``
    reaches it (``cfg.epochs`` is the cap and the schedule spans the cap).
    ``measure_fit`` measures ``train_accuracy`` after training (one forward pass
    over ``x``). Raises :class:`UnlearnkitError` if the loss becomes NaN/inf.
    """
    device = resolve_device(device)
    n = int(x.shape[0])
    if n == 0:
        raise UnlearnkitError("cannot train on an empty set")
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train()
    # channels_last makes the small cnn ~1.5x faster on CPU; models opt in
    # because torch 2.13's CPU backward of a strided 1x1 conv in channels_last
    # corrupts the heap on tiny feature maps (ResNet shortcuts on 8x8 inputs).
    channels_last = prefers_channels_last(model, x)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model.parameters(), cfg)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = make_scheduler(opt, cfg, cfg.epochs * steps_per_epoch)
    loss_fn = loss_fn or per_example_loss
    y = targets_for(model, x, y)
    dyn = np.zeros((3, cfg.epochs, n), dtype=np.float32) if record_dynamics else None
    start = time.perf_counter()
    fit = float("nan")
    epochs_run = 0
    with progress_bar(quiet) as bar:
        task = bar.add_task(desc, total=cfg.epochs, info="")
        for epoch in range(cfg.epochs):
            epochs_run = epoch + 1
            perm = torch.randperm(n, generator=gen)
            # Sums and dynamics stay on the device until the epoch ends: on a GPU a step then
            # waits for the device only in the loss check, not for every number it records.
            tot_loss = torch.zeros((), dtype=torch.float64, device=device)
            tot_correct = torch.zeros((), dtype=torch.float64, device=device)
            epoch_dyn = torch.zeros((3, n), device=device) if dyn is not None else None
            for step, b in enumerate(perm.split(cfg.batch_size)):
                xb, yb = x[b].to(device, non_blocking=True), y[b].to(device, non_blocking=True)
                if cfg.augment:
                    xb = augment_batch(xb, gen)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    logits = model(xb)
                    losses = loss_fn(logits, yb)
                loss = losses.float().mean()
                check_finite(loss, f"epoch {epoch + 1}, step {step + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    correct = per_example_correct(logits, yb)
                    tot_loss += loss.detach().double() * len(b)
                    tot_correct += correct.sum().double()
                    if epoch_dyn is not None:
                        p_true = true_probability(logits, yb)
                        # A sequence counts as correct when most of its next tokens are.
                        epoch_dyn[:, b.to(device)] = torch.stack(
                            [p_true.float(), (correct >= 0.5).float(), losses.detach().float()])
            if epoch_dyn is not None:
                dyn[:, epoch] = epoch_dyn.cpu().numpy()
            tot_loss, tot_correct = float(tot_loss), float(tot_correct)
            bar.update(task, advance=1, info=f"loss {tot_loss / n:.4f} acc {tot_correct / n:.3f}")
            if cfg.until_fit is not None and fit_worth_checking(tot_correct / n, cfg.until_fit):
                fit = accuracy(model, x, y, device=device)
                model.train()
                if fit >= cfg.until_fit:
                    break
                fit = float("nan")
    seconds = time.perf_counter() - start
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    if measure_fit and not math.isfinite(fit):
        fit = accuracy(model, x, y, device=device)
    dynamics = None
    if dyn is not None:
        idx = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
        dyn = dyn[:, :epochs_run]
        dynamics = pd.DataFrame(
            {
                "index": np.tile(idx, epochs_run),
                "epoch": np.repeat(np.arange(epochs_run, dtype=np.int32), n),
                "p_true": dyn[0].ravel(),
                "correct": dyn[1].ravel().astype(bool),
                "loss": dyn[2].ravel(),
            }
        )
    return TrainResult(model, dynamics, seconds, epochs_run * n, fit, epochs_run)


# The running accuracy of an epoch's training passes lags the end-of-epoch accuracy
# (weights move during the epoch, augmentation), so the exact check runs once it is this close.
FIT_CHECK_SLACK = 0.05


def fit_worth_checking(running_accuracy: float, target: float) -> bool:
    """Whether an epoch's running training accuracy is close enough to ``target`` to measure
    the exact end-of-epoch accuracy (one forward pass) for ``until_fit``."""
    return running_accuracy >= target - FIT_CHECK_SLACK


@torch.no_grad()
def _in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor,
    batch_size: int, device: torch.device | str | None,
) -> torch.Tensor:
    """``fn`` over ``x`` in eval mode, batch by batch; float32 results concatenated on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    with _channels_last_while(model, x) as cl:
        out = [fn(xb.to(device).contiguous(memory_format=torch.channels_last) if cl else xb.to(device)).float().cpu()
               for xb in x.split(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def prefers_channels_last(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` runs on ``x`` in channels_last: ``x`` is a batch of images and the model
    opts in (``prefers_channels_last``)."""
    return x.dim() == 4 and getattr(model, "prefers_channels_last", False)


@contextlib.contextmanager
def _channels_last_while(model: nn.Module, x: torch.Tensor) -> Iterator[bool]:
    """Within the block, the 4-d weights of a model that opts in (``prefers_channels_last``) are
    channels_last when ``x`` is a batch of images; yields whether they are. For inference only:
    afterwards each tensor gets its own storage back, so updates made in the block would be lost.
    (The small cnn's forward pass over 1024 Fashion-MNIST images took 0.49-0.69 s against
    0.75-0.95 s in the default layout, 2 threads, Intel Xeon.)"""
    if not prefers_channels_last(model, x):
        yield False
        return
    saved = [(t, t.data) for t in (*model.parameters(), *model.buffers()) if t.dim() == 4]
    model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        for t, data in saved:
            t.data = data


def predict_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: torch.device | str | None = None
) -> torch.Tensor:
    """Logits ``[n, num_classes]`` (float32, on the CPU) in eval mode, in batches."""
    return _in_batches(model, model, x, batch_size, device)


def predict_embeddings(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: torch.device | str | None = None,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Penultimate features ``[n, d]`` (float32, CPU), in batches, in eval mode.

    ``features(xb)`` computes them for a batch (e.g. :meth:`unlearnkit.task.Task.features`);
    default: the input of ``model``'s head (``model.embed`` for the built-in models,
    else a hook on the last ``nn.Linear``: :func:`unlearnkit.models.base.head_inputs`).
    """
    if features is None:
        head = find_head(model)[1]
        features = lambda xb: head_inputs(model, head, xb)  # noqa: E731
    return _in_batches(features, model, x, batch_size, device)


def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
    device: torch.device | str | None = None, logits: torch.Tensor | None = None,
) -> float:
    """Top-1 accuracy in [0, 1] (next-token accuracy for a sequence model); NaN for an empty set.
    ``logits``: ``model``'s logits on ``x``, when the caller has them already (no second pass)."""
    if len(y) == 0:
        return float("nan")
    if logits is None:
        logits = predict_logits(model, x, batch_size, device)
    return float(per_example_correct(logits, targets_for(model, x, y)).mean())


def split_accuracies(
    model: nn.Module,
    data: "DataBundle",
    rows: Mapping[str, np.ndarray] | None = None,
    splits: Sequence[str] = ("val", "test"),
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Accuracy in [0, 1] of ``model`` on named sets of training rows and on held-out splits.

    ``rows`` maps a name to positions into ``data.x_train`` (e.g. ``{"forget": fp, "retain": rp}``);
    ``splits`` names held-out splits of ``data`` (``"val"``, ``"test"``). An empty set gives NaN.
    The keys are those of ``rows``, then ``splits``. Every "accuracy on S / D_r / test" of the
    toolkit (run.json results, RUM's steps, the CLI's summary line) comes from here, or, where the
    caller also needs the logits (tuning's margins), from :func:`accuracy` on those logits.
    """
    out = {name: accuracy(model, data.x_train[pos], data.y_train[pos], batch_size, device)
           for name, pos in (rows or {}).items()}
    for split in splits:
        out[split] = accuracy(model, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"), batch_size, device)
    return out
