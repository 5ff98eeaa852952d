"""Train K small models at once as one vectorised ensemble.

The K models' parameters are stacked into tensors ``[K, ...]`` and one
forward/backward pass serves all of them: hand-written batched matmuls
(``torch.baddbmm``) for the mlp, ``torch.func.functional_call`` + ``vmap``
for any other model without buffers. Each model still sees its own subset in
its own shuffled order, and the recipe is that of
:func:`unlearnkit.training.train` (same optimizer, schedule, batch size,
epochs, seeds), so model ``j`` of an ensemble matches a model trained alone
up to floating-point rounding.

Why it can pay: one small model cannot fill a GPU (or many cores); K of them
batched can. On a 2-core CPU a plain loop over models is already close to
the machine's limit (SPEC §10), so :func:`unlearnkit.difficulty.memorization`
uses the ensemble only where it is not slower.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from unlearnkit.errors import UnlearnkitError
from unlearnkit.models.mlp import MLP
from unlearnkit.training import (
    TrainConfig,
    augment_batch,
    check_finite,
    make_optimizer,
    make_scheduler,
    progress_bar,
)


def can_vectorise(model: nn.Module) -> bool:
    """True when ``model`` keeps no buffers (e.g. no BatchNorm), so its copies can be stacked."""
    return not any(True for _ in model.buffers())


class StackedEnsemble:
    """K models of one architecture with parameters stacked as leaf tensors ``[K, ...]``.

    ``forward(x)`` maps inputs ``[K, b, ...]`` (one batch per model) to logits
    ``[K, b, C]``; ``forward_shared(x)`` maps one batch ``[b, ...]`` seen by
    every model to ``[K, b, C]``.
    """

    def __init__(self, models: list[nn.Module], device: torch.device | str = "cpu") -> None:
        if not models:
            raise UnlearnkitError("an ensemble needs at least one model")
        if not all(can_vectorise(m) for m in models):
            name = type(models[0]).__name__
            raise UnlearnkitError(f"model {name} has buffers (BatchNorm); it cannot be vectorised, use the loop")
        self.k = len(models)
        self._template = copy.deepcopy(models[0]).to("meta")
        names = [n for n, _ in models[0].named_parameters()]
        self.names = names
        self.params = [
            torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device).requires_grad_()
            for n in names
        ]
        self._mlp = isinstance(models[0], MLP)

    def _mlp_forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        # Parameters alternate weight [K, out, in], bias [K, out] in layer order (body..., head).
        h = x.flatten(1) if shared else x.flatten(2)
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            if shared:  # [b, in] @ [K, in, out] broadcasts to [K, b, out]
                h = torch.matmul(h, w.transpose(1, 2)) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            if i < n_layers - 1:
                h = torch.relu(h)
        return h

    def _vmap_forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        def one(params: tuple[torch.Tensor, ...], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self._template, dict(zip(self.names, params)), (xb,))

        return vmap(one, in_dims=(0, None if shared else 0))(tuple(self.params), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp_forward(x, False) if self._mlp else self._vmap_forward(x, False)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp_forward(x, True) if self._mlp else self._vmap_forward(x, True)

    @torch.no_grad()
    def correct(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """Per-model, per-example correctness ``bool [K, n]`` of ``x [n, ...]``, in batches."""
        device = self.params[0].device
        out = [
            (self.forward_shared(xb.to(device)).argmax(2) == yb.to(device)).cpu()
            for xb, yb in zip(x.split(batch_size), y.split(batch_size))
        ]
        return torch.cat(out, 1).numpy() if out else np.zeros((self.k, 0), dtype=bool)

    def state_dict(self, j: int) -> dict[str, torch.Tensor]:
        """Model ``j``'s weights, as a state dict of the original architecture."""
        return {n: p[j].detach().cpu().clone() for n, p in zip(self.names, self.params)}


def train_ensemble(
    models: list[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    subsets: list[np.ndarray],
    cfg: TrainConfig,
    seeds: list[int],
    *,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "ensemble",
) -> StackedEnsemble:
    """Train ``models[j]`` on rows ``subsets[j]`` of ``x [n, ...]``, ``y [n]``, all at once.

    ``seeds[j]`` plays the role of ``cfg.seed`` in :func:`unlearnkit.training.train`
    (shuffling and augmentation of model j); the models' initial weights are
    the caller's. All subsets must have the same size, so that every model
    takes the same number of steps with the same schedule. Returns the
    trained ensemble (the ``models`` are left untouched).
    """
    k = len(models)
    if not (len(subsets) == len(seeds) == k):
        raise UnlearnkitError(f"ensemble: {k} models but {len(subsets)} subsets and {len(seeds)} seeds")
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1 or 0 in sizes:
        raise UnlearnkitError(f"ensemble: subsets must be non-empty and of one size, got sizes {sorted(sizes)}")
    m = sizes.pop()
    device = torch.device(device)
    ens = StackedEnsemble(models, device)
    rows = torch.as_tensor(np.stack(subsets), dtype=torch.int64)  # [K, m] row numbers into x
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    opt = make_optimizer(ens.params, cfg)
    steps_per_epoch = math.ceil(m / cfg.batch_size)
    sched = make_scheduler(opt, cfg, cfg.epochs * steps_per_epoch)
    with progress_bar(quiet) as bar:
        task = bar.add_task(desc, total=cfg.epochs, info=f"{k} models")
        for epoch in range(cfg.epochs):
            # Each model's own permutation of its own subset, drawn as train() draws it.
            order = torch.stack([rows[j, torch.randperm(m, generator=gens[j])] for j in range(k)])
            for step, idx in enumerate(order.split(cfg.batch_size, dim=1)):
                xb, yb = x[idx], y[idx]  # [K, b, ...], [K, b]
                if cfg.augment:
                    xb = torch.stack([augment_batch(xb[j], gens[j]) for j in range(k)])
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                logits = ens.forward(xb)
                b = yb.shape[1]
                losses = F.cross_entropy(logits.reshape(k * b, -1), yb.reshape(-1), reduction="none")
                per_model = losses.view(k, b).mean(1)
                check_finite(per_model.sum(), f"epoch {epoch + 1}, step {step + 1} of {desc}")
                opt.zero_grad(set_to_none=True)
                # Summing per-model mean losses gives each model exactly its own gradient.
                per_model.sum().backward()
                opt.step()
                sched.step()
            bar.advance(task)
    for p in ens.params:
        p.requires_grad_(False)
    return ens
