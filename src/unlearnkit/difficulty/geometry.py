"""Geometry and sensitivity scores of the final model θ_o, and the Entanglement Score.

Pure functions take tensors/arrays and return one value per example; the
registered scores at the bottom apply them to a run's training examples.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnkit.data import ForgetSet
from unlearnkit.difficulty.scores import ScoreContext, register_score, trained_positions
from unlearnkit.errors import UnlearnkitError
from unlearnkit.runs import Run
from unlearnkit.training import predict_embeddings, resolve_device
from unlearnkit.task import Task

# Per-example gradients of one chunk hold chunk x n_params floats; keep that under ~200 MB.
GRAD_CHUNK_FLOATS = 50_000_000


def margin(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """True-label logit minus the best other logit, ``[n]`` (logit units). Low => harder."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return (true - other).numpy()


def example_losses(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cross-entropy of each example, ``[n]`` (nats). High => harder."""
    return F.cross_entropy(logits, y, reduction="none").numpy()


def entropy(logits: torch.Tensor) -> np.ndarray:
    """Entropy of the predictive distribution, ``[n]`` (nats). High => harder."""
    logp = torch.log_softmax(logits, 1)
    return -(logp.exp() * logp).sum(1).numpy()


def max_confidence(logits: torch.Tensor) -> np.ndarray:
    """Largest predicted probability, ``[n]`` in [0, 1]. High => easier."""
    return torch.softmax(logits, 1).max(1).values.numpy()


def centroid_distance(embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    """Euclidean distance of each embedding ``[n, d]`` to their exact mean, ``[n]``. High => harder."""
    e = torch.as_tensor(embeddings).double()
    return (e - e.mean(0)).norm(dim=1).numpy()


def nearest_other_class_distance(embeddings: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> np.ndarray:
    """Distance of each embedding ``[n, d]`` to the nearest embedding with another label, ``[n]``.

    Low => harder (close to another class). Batched ``cdist`` over row chunks, so
    memory is ``chunk x n``. Infinite when only one class is present.
    """
    out = []
    for rows in torch.arange(len(y)).split(chunk):
        d = torch.cdist(embeddings[rows], embeddings)
        d.masked_fill_(y[rows][:, None] == y[None, :], float("inf"))
        out.append(d.min(1).values)
    return torch.cat(out).cpu().numpy().astype(np.float64)


def per_example_grad_sq_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device | str = "auto", chunk: int | None = None
) -> np.ndarray:
    """Squared norm of each example's cross-entropy gradient w.r.t. all parameters, ``[n]``.

    Batched over chunks of examples, never a loop over examples; the model is
    evaluated in eval mode (batch-norm uses running statistics). Models whose
    parameters all sit in ``nn.Linear`` layers on ``[b, d]`` inputs (the mlp) use
    the exact factorisation ||δ aᵀ||² = ||δ||²·||a||² from one ordinary backward
    pass; other models use ``torch.func.vmap(grad(...))``, which materialises
    every example's gradient.
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if _linear_only(model):
        fn, chunk = _linear_grad_sq_norms, chunk or 4096
    else:
        fn, chunk = _vmap_grad_sq_norms, chunk or max(1, min(512, GRAD_CHUNK_FLOATS // max(1, n_params)))
    return torch.cat([fn(model, xb.to(device), yb.to(device)).cpu()
                      for xb, yb in zip(x.split(chunk), y.split(chunk))]).numpy()


def _linear_only(model: nn.Module) -> bool:
    return all(isinstance(m, nn.Linear) for m in model.modules() if next(m.parameters(recurse=False), None) is not None)


def _linear_grad_sq_norms(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Per-example squared gradient norms of a Linear-only model from layer inputs a and output gradients δ."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    inputs: dict[nn.Module, torch.Tensor] = {}
    deltas: dict[nn.Module, torch.Tensor] = {}

    def capture(module, args, output):
        inputs[module] = args[0].detach()
        output.register_hook(lambda g: deltas.__setitem__(module, g.detach()))

    handles = [m.register_forward_hook(capture) for m in layers]
    try:
        # Summed (not averaged) loss: each example's δ is then its own loss gradient.
        loss = F.cross_entropy(model(xb), yb, reduction="sum")
        torch.autograd.grad(loss, [m.weight for m in layers])
    finally:
        for h in handles:
            h.remove()
    total = torch.zeros(len(yb), dtype=torch.float64, device=yb.device)
    for m in layers:
        a, d = inputs[m], deltas[m]
        if a.dim() != 2:  # a Linear applied along extra dims sums several outer products: no factorisation
            return _vmap_grad_sq_norms(model, xb, yb)
        d2 = d.double().pow(2).sum(1)
        total += d2 * a.double().pow(2).sum(1) + (d2 if m.bias is not None else 0)
    return total


def _vmap_grad_sq_norms(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Per-example squared gradient norms of any model: ``vmap(grad(loss of one example))``."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_one(p, b, xi, yi):
        out = functional_call(model, (p, b), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    g = vmap(grad(loss_one), in_dims=(None, None, 0, 0))(params, buffers, xb, yb)
    return sum(v.double().pow(2).flatten(1).sum(1) for v in g.values())


def entanglement_score(retain_embeddings: np.ndarray | torch.Tensor, forget_embeddings: np.ndarray | torch.Tensor) -> float:
    """Entanglement Score of a forget set with the retain set (docs/difficulty.md), a float >= 0.

    ``retain_embeddings`` ``[n_r, d]`` and ``forget_embeddings`` ``[n_f, d]`` are
    penultimate embeddings g(x) of θ_o. With exact means μ_r, μ_f and their
    midpoint μ = (μ_r + μ_f)/2:
    Intra = mean_r ||g − μ_r||² + mean_f ||g − μ_f||²,
    Inter = ½(||μ_r − μ||² + ||μ_f − μ||²) = ||μ_r − μ_f||²/4, ES = Intra / Inter.
    Higher = more entangled = harder to unlearn; ``inf`` when the two means coincide.
    """
    r = np.asarray(retain_embeddings, dtype=np.float64)
    f = np.asarray(forget_embeddings, dtype=np.float64)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise UnlearnkitError(f"entanglement_score needs [n, d] arrays with equal d, got {r.shape} and {f.shape}")
    if len(r) == 0 or len(f) == 0:
        raise UnlearnkitError("entanglement_score needs a non-empty retain set and forget set")
    mu_r, mu_f = r.mean(0), f.mean(0)
    mu = (mu_r + mu_f) / 2
    intra = ((r - mu_r) ** 2).sum(1).mean() + ((f - mu_f) ** 2).sum(1).mean()
    inter = 0.5 * (((mu_r - mu) ** 2).sum() + ((mu_f - mu) ** 2).sum())
    return float(intra / inter) if inter > 0 else float("inf")


def run_embeddings(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(row positions of the run's trained examples, their θ_o embeddings ``[n, d]``),
    computed on the device the run's model is on."""
    pos = trained_positions(run)
    task = Task.from_run(run)  # its features: the model's own, or a user Task's (model-first calls)
    return pos, predict_embeddings(run.model, run.data.x_train[pos], features=task.features).numpy()


def forget_entanglement(positions: np.ndarray, embeddings: np.ndarray, forget_positions: np.ndarray) -> float:
    """ES of the rows ``forget_positions`` against the other rows of ``positions`` (aligned with ``embeddings``)."""
    is_forget = np.isin(positions, forget_positions)
    return entanglement_score(embeddings[~is_forget], embeddings[is_forget])


def run_entanglement(run: Run, forget: ForgetSet) -> float:
    """ES of ``forget`` in ``run``: embeddings of the run's model on its retain set
    (trained examples minus ``forget``) and on ``forget``."""
    fpos = forget.check(run.data)
    pos, emb = run_embeddings(run)
    missing = np.setdiff1d(fpos, pos)
    if len(missing):
        idx = run.data.index_train[missing[:5]].tolist()
        raise UnlearnkitError(f"forget indices {idx} were never trained on by this run (they are excluded)")
    return forget_entanglement(pos, emb, fpos)


def context_grad_sq_norms(ctx: ScoreContext) -> np.ndarray:
    """Per-example squared parameter-gradient norms of the run's examples, computed once per context."""
    return ctx.cached("grad_sq", lambda: per_example_grad_sq_norms(ctx.model, ctx.x, ctx.y, ctx.device))


@register_score("margin", higher_is_harder=False, cost="one forward pass")
def _margin(ctx: ScoreContext) -> np.ndarray:
    """True-label logit minus best other logit on θ_o; low => harder."""
    return margin(ctx.logits(), ctx.y)


@register_score("loss", higher_is_harder=True, cost="one forward pass")
def _loss(ctx: ScoreContext) -> np.ndarray:
    """Cross-entropy on θ_o; high => harder."""
    return example_losses(ctx.logits(), ctx.y)


@register_score("grad_norm", higher_is_harder=True, cost="one batched per-example backward pass (torch.func)")
def _grad_norm(ctx: ScoreContext) -> np.ndarray:
    """Norm of the per-example parameter gradient of the loss on θ_o; high => harder."""
    return np.sqrt(context_grad_sq_norms(ctx))


@register_score("centroid_distance", higher_is_harder=True, cost="one forward pass")
def _centroid_distance(ctx: ScoreContext) -> np.ndarray:
    """Distance of the penultimate embedding to the training centroid; high => harder (atypical)."""
    return centroid_distance(ctx.embeddings())


@register_score("nearest_other_class_distance", higher_is_harder=False, cost="one forward pass + O(n²d) distances")
def _nearest_other(ctx: ScoreContext) -> np.ndarray:
    """Embedding distance to the nearest training example of another class; low => harder."""
    return nearest_other_class_distance(ctx.embeddings().to(ctx.device), ctx.y.to(ctx.device))
