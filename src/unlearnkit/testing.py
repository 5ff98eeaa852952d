"""The contract kit: check a third-party method or model against what the toolkit expects.

In a plugin's own test suite::

    from unlearnkit.testing import check_method, check_model

    def test_my_method_keeps_the_contract():
        check_method(MyMethod)                      # tiny synthetic data, a few seconds

    def test_my_net_keeps_the_contract():
        check_model(MyNet(), (x[:16], y[:16]))      # any batch of real inputs

Both raise :class:`ContractError` (an ``AssertionError``, so pytest shows it as a
failure) naming the first broken rule and how to fix it, and return what they found.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from pydantic import ValidationError
from safetensors.torch import load, save
from torch import nn

from unlearnkit.data import as_bundle
from unlearnkit.errors import UnlearnkitError, validation_message
from unlearnkit.methods.api import run_method
from unlearnkit.methods.base import Method, Params
from unlearnkit.task import REQUIREMENTS, Task
from unlearnkit.training import TrainConfig, seed_everything, train


class ContractError(AssertionError):
    """A plugin breaks the toolkit's contract (the message says which rule and how to fix it)."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@dataclass
class ModelReport:
    """What :func:`check_model` found: logits width, head (name, in/out features), feature size."""

    num_classes: int
    head: str
    feature_dim: int
    parameters: int
    notes: list[str] = field(default_factory=list)


def check_model(model: nn.Module, data: Any, *, task: Task | None = None,
                build_model: Callable[[], nn.Module] | None = None) -> ModelReport:
    """Check that ``model`` works with every part of the toolkit.

    ``data``: anything :func:`unlearnkit.data.as_bundle` takes; its first 8 training rows
    are the probe batch and its labels give the number of classes. Checks: logits are
    ``[n, num_classes]`` and finite; eval mode is deterministic; the head (``task`` or
    the last ``nn.Linear``) outputs the logits, so ``head(features(x)) == model(x)``
    (what IMU, the Entanglement Score and the centroid score rely on); the weights round
    trip through safetensors (run directories); ``deepcopy`` works (every method
    unlearns a copy); ``build_model()``, if given, builds the same architecture.
    """
    bundle = as_bundle(data)
    task = Task(model) if task is None else task
    x = bundle.x_train[: min(8, bundle.n_train)]
    x = x.to("cpu") if not isinstance(x, torch.Tensor) else x
    model.eval()
    with torch.no_grad():
        try:
            out = model(x)
        except Exception as e:  # noqa: BLE001 - reported as the contract failure it is
            raise ContractError(f"model(x) fails on a batch of shape {list(x.shape)}: {e}") from None
        _require(isinstance(out, torch.Tensor), f"model(x) returned {type(out).__name__}, not a logits tensor")
        _require(
            out.dim() == 2 and out.shape == (len(x), bundle.num_classes),
            f"model(x) has shape {list(out.shape)}; expected [n, num_classes] = [{len(x)}, {bundle.num_classes}] "
            "(one logit per class, no softmax needed)",
        )
        _require(bool(torch.isfinite(out).all()), "model(x) returned non-finite logits")
        _require(torch.equal(out, model(x)), "model(x) differs between two calls in eval mode (dropout left on?)")
        try:
            head, feats = task.head, task.features(x)
        except UnlearnkitError as e:
            raise ContractError(str(e)) from None
        _require(
            feats.dim() == 2 and feats.shape == (len(x), head.in_features),
            f"features(x) has shape {list(feats.shape)}; expected [n, head.in_features] = [{len(x)}, {head.in_features}]",
        )
        _require(
            torch.allclose(head(feats), out, rtol=1e-4, atol=1e-5),
            "head(features(x)) != model(x): the last nn.Linear is not the output layer (something follows it); "
            "pass Task(model, head=..., features=...) naming the layer that outputs the logits",
        )
    try:
        twin = copy.deepcopy(model)
    except Exception as e:  # noqa: BLE001
        raise ContractError(f"copy.deepcopy(model) fails ({e}); methods unlearn a private copy") from None
    try:
        blob = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
        twin.load_state_dict(load(blob))
    except Exception as e:  # noqa: BLE001
        raise ContractError(f"the state_dict does not round-trip through safetensors ({e})") from None
    with torch.no_grad():
        _require(torch.equal(twin.eval()(x), out), "a copy loaded from the saved weights gives different logits")
    notes = []
    if build_model is not None or task.build_model is not None:
        fresh = (build_model or task.build_model)()
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        _require(
            {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == shapes,
            "build_model() returns a model whose weights have other names or shapes than the model's",
        )
        notes.append("build_model() builds the same architecture")
    head_name = task.head_name or next(n for n, m in model.named_modules() if m is head)
    return ModelReport(bundle.num_classes, head_name, head.in_features, sum(p.numel() for p in model.parameters()), notes)


@functools.lru_cache(maxsize=1)
def _tiny_problem(seed: int = 0) -> tuple[Task, tuple[torch.Tensor, ...]]:
    """Three Gaussian blobs in 8-d (120 training, 60 test rows) and a trained 2-layer MLP
    (cached: methods only ever change copies of it)."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(3, 8, generator=gen)
    y = torch.arange(180) % 3
    x = centres[y] + torch.randn(180, 8, generator=gen)

    def build() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    recipe = TrainConfig(epochs=10, lr=0.05, batch_size=32, seed=seed)
    seed_everything(seed)
    model = build()
    train(model, x[:120], y[:120], recipe, record_dynamics=False, measure_fit=False)
    return Task(model, build_model=build, recipe=recipe), (x[:120], y[:120], x[120:], y[120:])


@dataclass
class MethodReport:
    """What :func:`check_method` ran: the params used, work done, and the checks passed."""

    params: dict[str, Any]
    examples_processed: int
    checks: list[str]


def check_method(
    method: type[Method],
    params: dict[str, Any] | None = None,
    *,
    task: Task | None = None,
    data: Any = None,
    forget: np.ndarray | None = None,
) -> MethodReport:
    """Check a :class:`Method` subclass (registered or not) against the method contract.

    Declarations: ``requires`` names only known requirements, ``Params`` is a
    :class:`Params` whose defaults validate and which refuses unknown keys. Behaviour,
    on ``task`` / ``data`` (default: a trained MLP on three blobs) with ``params``, given a
    task holding only what ``requires`` declares (so a method that reads an undeclared
    ``build_model``, ``recipe`` or ``run`` fails): it returns a model of the same
    architecture with finite weights, leaves the original untouched, reports the work
    done and gives identical weights for the same seed.
    """
    checks = []
    _require(isinstance(method, type) and issubclass(method, Method),
             f"{method!r} is not a subclass of unlearnkit.methods.Method")
    name = method.name or method.__name__
    unknown = sorted(set(method.requires) - set(REQUIREMENTS))
    _require(not unknown, f"{name}.requires names unknown requirements {unknown}; choose from {sorted(REQUIREMENTS)}")
    _require(issubclass(method.Params, Params), f"{name}.Params must subclass unlearnkit.methods.Params")
    try:
        method.Params()
    except ValidationError as e:
        raise ContractError(f"{name}.Params() does not validate with its defaults ({validation_message(e)})") from None
    try:
        method.Params(**{"__not_a_parameter__": 1})
        raise ContractError(f"{name}.Params accepts unknown keys; keep model_config extra='forbid' (subclass Params)")
    except ValidationError:
        pass
    checks.append("declarations")

    if task is None:
        task, tensors = _tiny_problem()
        data = tensors if data is None else data
    _require(data is not None, "check_method: pass data together with task")
    bundle = as_bundle(data)
    forget = np.arange(0, bundle.n_train, 10) if forget is None else np.asarray(forget, dtype=np.int64)
    forget_pos = bundle.positions(forget, what="forget indices")
    retain = bundle.complement(forget_pos)
    before = copy.deepcopy(task.model.state_dict())
    # The method gets only what it declares: using an undeclared build_model/recipe/run fails here.
    declared = Task(task.model, head=task.head_name, features=task.features_fn,
                    **{k: getattr(task, k) if k in method.requires else None for k in ("build_model", "recipe", "run")})
    what = ", ".join(sorted(method.requires)) or "nothing"

    def once() -> Any:
        try:
            return run_method(declared, bundle, forget_pos, retain, method, params, seed=0, device="cpu", quiet=True)
        except Exception as e:  # noqa: BLE001 - any failure breaks the contract
            raise ContractError(
                f"{name} failed on the check data with a task holding only what it requires ({what}): "
                f"{type(e).__name__}: {e}"
            ) from None

    a = once()
    _require(all(torch.equal(v, task.model.state_dict()[k]) for k, v in before.items()),
             f"{name} modified the original model; change ctx.model (a private copy) only")
    _require(isinstance(a.model, nn.Module), f"{name}.run must return MethodOutput(model, ...), got {type(a.model).__name__}")
    shapes = {k: tuple(v.shape) for k, v in task.model.state_dict().items()}
    _require({k: tuple(v.shape) for k, v in a.model.state_dict().items()} == shapes,
             f"{name} returned a model with other weights (names or shapes) than the original")
    _require(isinstance(a.examples_processed, int) and a.examples_processed >= 0,
             f"{name}: MethodOutput.examples_processed must be a count >= 0, got {a.examples_processed!r}")
    checks.append("runs with only what it requires; original untouched; same architecture; finite weights")
    _require(_same_weights(a.model, once().model),
             f"{name} is not deterministic for a fixed seed; draw its randomness from ctx.seed")
    checks.append("deterministic for a seed")
    return MethodReport(a.params, a.examples_processed, checks)


__all__ = ["ContractError", "MethodReport", "ModelReport", "check_method", "check_model"]
