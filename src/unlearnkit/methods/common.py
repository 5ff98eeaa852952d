"""Pieces shared by the unlearning methods: optimiser hyperparameters, the
fit-on-a-labelled-set helper (through :func:`unlearnkit.training.train`),
batch iteration over row positions and one descent step with the NaN check.

Methods that are "train on some labelled set with some loss" (finetune,
neggrad, random_label, l1_sparse, salun, boundary_shrink) call :func:`fit`;
methods with their own loop (neggrad_plus, scrub) use :func:`epoch_batches`,
:func:`cycle_batches`, :func:`epoch_range` and :func:`descend`.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnkit.methods.base import MethodContext, Params
from unlearnkit.progress import progress_bar
from unlearnkit.training import TrainConfig, check_finite, make_optimizer, per_example_loss, train

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class OptimParams(Params):
    """SGD hyperparameters shared by the gradient-based methods (RUM's CIFAR-10 recipe:
    momentum 0.9, weight decay 5e-4; constant learning rate)."""

    lr: float = Field(0.01, gt=0, description="learning rate")
    epochs: int = Field(5, ge=1, description="passes over the method's training set")
    batch_size: int = Field(128, ge=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)


def train_config(p: OptimParams, seed: int) -> TrainConfig:
    """The :class:`TrainConfig` of a method's optimiser (constant schedule, no augmentation)."""
    return TrainConfig(
        epochs=p.epochs, lr=p.lr, batch_size=p.batch_size, momentum=p.momentum,
        weight_decay=p.weight_decay, schedule="constant", seed=seed,
    )


def optimizer(model: torch.nn.Module, p: OptimParams, seed: int) -> torch.optim.Optimizer:
    return make_optimizer(model.parameters(), train_config(p, seed))


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``[b]``: against labels for a classifier, next-token
    (``y`` = the token ids, see :func:`unlearnkit.training.targets_for`) for a sequence model."""
    return per_example_loss(logits, y)


def rows(ctx: MethodContext, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of training rows ``positions`` (CPU tensors)."""
    pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
    return ctx.data.x_train[pos], ctx.data.y_train[pos]


def fit(
    ctx: MethodContext,
    p: OptimParams,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: LossFn | None = None,
    grad_mask: dict[str, torch.Tensor] | None = None,
    desc: str = "unlearn",
) -> int:
    """Train ``ctx.model`` in place on ``x [n, ...]``, ``y [n]`` for ``p.epochs``.

    ``loss_fn(logits, y) -> [b]`` replaces cross-entropy (negated for gradient
    ascent, plus a penalty for l1_sparse). ``grad_mask`` maps parameter names to
    0/1 tensors multiplied into their gradients (SalUn). Returns the number of
    examples processed (``epochs * n``).
    """
    hooks = []
    if grad_mask:
        for name, param in ctx.model.named_parameters():
            if name in grad_mask:
                mask = grad_mask[name].to(param.device, param.dtype)
                hooks.append(param.register_hook(lambda g, m=mask: g * m))
    try:
        res = train(
            ctx.model, x, y, train_config(p, ctx.seed), device=ctx.device,
            record_dynamics=False, quiet=ctx.quiet, desc=desc, loss_fn=loss_fn, measure_fit=False,
        )
    finally:
        for h in hooks:
            h.remove()
    return res.examples_processed


def random_wrong_labels(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """A uniformly random label different from ``y`` for every row (any number of classes >= 2)."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, y.shape, generator=gen)
    return (y + shift) % num_classes


def epoch_batches(n: int, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One shuffled pass over ``range(n)`` in batches (index tensors)."""
    return torch.randperm(n, generator=gen).split(batch_size)


def cycle_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches over ``range(n)``, reshuffled at every pass (the retain
    side of paired forget/retain iteration)."""
    while True:
        yield from epoch_batches(n, batch_size, gen)


def epoch_range(ctx: MethodContext, epochs: int, desc: str) -> Iterator[int]:
    """``range(epochs)`` with the rich progress bar (hidden when ``ctx.quiet``)."""
    with progress_bar(ctx.quiet) as bar:
        task = bar.add_task(desc, total=epochs, info="")
        for epoch in range(epochs):
            yield epoch
            bar.update(task, advance=1)


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str) -> None:
    """One optimiser step on ``loss``; a NaN/inf loss stops the method naming ``where``."""
    check_finite(loss, where)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def kl_to_teacher(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of temperature-softened logits, batch mean, times T² (Hinton)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True, reduction="batchmean"
    ) * t * t
