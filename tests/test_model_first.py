"""Bring your own model and data: every method on a plain nn.Sequential (tensors), a BatchNorm
CNN (a torch Dataset) and a registered model (a run directory); Task defaults; the contract kit;
entry-point plugins; bad input as one-line errors. Tiny synthetic data, so each test is fast."""

from __future__ import annotations

import copy
import sys
import warnings
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import unlearnkit as uk
from unlearnkit import UnlearnkitError
from unlearnkit.data import as_bundle, make_bundle
from unlearnkit.methods import METHODS, Method, MethodOutput, Params, unlearn_from_run, unlearn_run
from unlearnkit.models import MODELS
from unlearnkit.registry import Registry
from unlearnkit.task import Task
from unlearnkit.testing import ContractError, check_method, check_model
from unlearnkit.training import TrainConfig, seed_everything, train

RECIPE = TrainConfig(epochs=8, lr=0.05, batch_size=16, seed=0)
# Cheap settings: one pass for the epoch-based methods, a small Fisher for influence.
CHEAP = {"epochs": 1}
FORGET = np.arange(0, 60, 6)  # 10 of the 60 training rows


def cheap(method: str) -> dict:
    fields = METHODS.get(method).Params.model_fields
    p = {k: v for k, v in CHEAP.items() if k in fields}
    if method == "influence":
        p.update(fisher_samples=16, retain_samples=32)
    return p


def approx_methods() -> list[str]:
    # The package's own methods: other test modules register probes (test_rum's need a head), and
    # which of them are registered at collection depends on the order the modules are collected.
    return [m for m in METHODS.names() if m != "sisa" and "classify" in METHODS.get(m).objectives
            and METHODS.get(m).__module__.startswith("unlearnkit.")]


def blobs(n: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows of 3 well-separated classes with inputs of ``shape``."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = 2 * torch.randn(3, *shape, generator=torch.Generator().manual_seed(99))
    return centres[y] + 0.5 * torch.randn(n, *shape, generator=gen), y


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))


def bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 3),
    )


class Pairs(Dataset):
    """A map-style Dataset over tensors that counts how many items were read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.reads = x, y, 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        self.reads += 1
        return self.x[i], int(self.y[i])


def trained(build, x, y) -> Task:
    seed_everything(0)
    model = build()
    train(model, x, y, RECIPE, record_dynamics=False)
    return Task(model, build_model=build, recipe=RECIPE)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tensors():
    x, y = blobs(60, (6,), 0)
    xt, yt = blobs(30, (6,), 1)
    return x, y, xt, yt


@pytest.fixture(scope="module")
def seq_task(tensors):
    return trained(mlp, tensors[0], tensors[1])


@pytest.fixture(scope="module")
def images():
    x, y = blobs(60, (1, 6, 6), 2)
    xt, yt = blobs(30, (1, 6, 6), 3)
    return x, y, xt, yt


@pytest.fixture(scope="module")
def cnn_task(images):
    return trained(bn_cnn, images[0], images[1])


@MODELS.register("test_user_net")
def build_user_net(input_shape, num_classes, width: int = 10) -> nn.Module:
    """A user's model registered from test code: a plain Sequential, no Classifier."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), width), nn.ReLU(), nn.Linear(width, num_classes))


@pytest.fixture(scope="module")
def user_run(tensors, tmp_path_factory):
    bundle = make_bundle("user-blobs", *tensors)
    out = tmp_path_factory.mktemp("user") / "orig"
    uk.train_run(bundle, "test_user_net", RECIPE, out, device="cpu")
    return uk.load_run(out, data=bundle)


@pytest.mark.parametrize("method", approx_methods() + ["retrain"])
def test_every_method_on_a_plain_sequential_with_tensors(method, seq_task, tensors):
    before = weights(seq_task.model)
    out = uk.unlearn(seq_task.model, tensors, FORGET, method, cheap(method), task=seq_task, device="cpu")
    assert not changed(before, weights(seq_task.model)), "the original was modified"
    assert weights(out.model).keys() == before.keys() and changed(before, weights(out.model))
    assert all(torch.isfinite(w).all() for w in out.model.state_dict().values())
    assert out.examples_processed > 0


@pytest.mark.parametrize("method", approx_methods() + ["retrain"])
def test_every_method_on_a_batchnorm_cnn_with_a_torch_dataset(method, cnn_task, images):
    x, y, xt, yt = images
    train_ds = Pairs(x, y)
    data = as_bundle((train_ds, Pairs(xt, yt)))
    out = uk.unlearn(cnn_task.model, data, FORGET, method, cheap(method), task=cnn_task, device="cpu")
    assert changed(weights(cnn_task.model), weights(out.model))
    assert all(torch.isfinite(w).all() for w in out.model.state_dict().values())


@pytest.mark.parametrize("method", approx_methods() + ["retrain"])
def test_every_method_on_a_registered_model_run(method, user_run):
    out = unlearn_from_run(user_run, uk.ForgetSet(FORGET), method, cheap(method), device="cpu")
    assert changed(weights(user_run.model), weights(out.model))


def test_a_torch_dataset_trains_like_the_same_tensors_and_is_read_batch_by_batch(cnn_task, images):
    x, y, xt, yt = images
    ds = Pairs(x, y)
    data = as_bundle((ds, Pairs(xt, yt)))
    assert ds.reads == len(y)  # the labels, read once; no input kept
    assert data.input_shape == (1, 6, 6) and data.num_classes == 3 and not data.is_text
    ds.reads = 0
    a = uk.unlearn(cnn_task.model, data, FORGET, "finetune", {"epochs": 1, "batch_size": 8}, task=cnn_task)
    b = uk.unlearn(cnn_task.model, (x, y, xt, yt), FORGET, "finetune", {"epochs": 1, "batch_size": 8}, task=cnn_task)
    sa, sb = weights(a.model), weights(b.model)
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)
    assert 0 < ds.reads <= 3 * len(y)  # output check + 1 epoch on D_r + the fit pass, never all at once


def test_registered_model_trains_writes_and_loads_back(user_run, tensors, tmp):
    assert user_run.meta["dataset"]["in_memory"] and user_run.meta["dataset"]["name"] == "user-blobs"
    with pytest.raises(UnlearnkitError, match=r"in-memory data 'user-blobs'.*load_run\(path, data=bundle\)"):
        uk.load_run(user_run.path)
    other = make_bundle("user-blobs", tensors[0], (tensors[1] + 1) % 3, tensors[2], tensors[3])
    with pytest.raises(UnlearnkitError, match="not the data the run was trained on"):
        uk.load_run(user_run.path, data=other)
    done = unlearn_run(user_run, uk.ForgetSet(FORGET), "finetune", tmp / "u", {"epochs": 1})
    again = uk.load_run(done.path, data=user_run.data)
    assert all(torch.equal(a, b) for a, b in zip(done.model.state_dict().values(), again.model.state_dict().values()))


def test_make_bundle_keeps_every_training_row_unless_asked(tensors):
    x, y, xt, yt = tensors
    b = make_bundle("m", x, y, xt, yt)
    assert b.n_train == 60 and len(b.y_val) == 0 and torch.equal(b.x_train, x)
    v = make_bundle("m", x, y, xt, yt, val_fraction=0.2)
    assert v.n_train == 48 and len(v.y_val) == 12 and v.spec["val_fraction"] == 0.2
    with pytest.raises(UnlearnkitError, match="validation split"):
        v.positions(v.index_val[:1].numpy())


def test_task_defaults_find_the_last_linear_and_its_input(seq_task, tensors):
    x = tensors[0][:5]
    model = seq_task.model
    assert seq_task.head is model[2]
    with torch.no_grad():
        h = seq_task.features(x)
        assert h.shape == (5, 12) and torch.allclose(h, model[1](model[0](x)))
        assert torch.allclose(seq_task.head(h), model(x))
    named = Task(model, head="2", features=lambda m, xb: m[1](m[0](xb)))
    assert named.head is model[2] and torch.allclose(named.features(x), h)
    assert Task(model, head=model[2]).head_name == "2"
    with pytest.raises(UnlearnkitError, match="not an nn.Linear"):
        Task(model, head="1")


def test_model_first_evaluate_scores_and_rum(seq_task, tensors):
    ref = uk.unlearn(seq_task.model, tensors, FORGET, "retrain", task=seq_task).model
    out = uk.unlearn(seq_task.model, tensors, FORGET, "finetune", {"epochs": 1}).model
    res = uk.evaluate(out, tensors, FORGET, reference=ref)
    assert 0 <= res.comparisons["tow"].mean <= 1 and res.sizes["forget"] == 10 and res.sizes["retain"] == 50
    # unlearn(..., reference=) evaluates its own result against the reference: the same ToW.
    judged = uk.unlearn(seq_task.model, tensors, FORGET, "finetune", {"epochs": 1}, reference=ref)
    assert judged.evaluation.comparisons["tow"].mean == res.comparisons["tow"].mean
    assert uk.unlearn(seq_task.model, tensors, FORGET, "finetune", {"epochs": 1}).evaluation is None
    assert res.metrics["forget_acc"].mean == uk.evaluate(out, tensors, FORGET).metrics["forget_acc"].mean
    table = uk.scores(seq_task.model, tensors, ["margin", "centroid_distance"])
    assert list(table["index"]) == list(range(60)) and table["margin"].notna().all()
    skipped = uk.scores(seq_task.model, tensors).attrs["skipped"]
    assert "dynamics.parquet" in skipped["confidence"]
    r = uk.rum(seq_task.model, tensors, FORGET, groups=2, methods="finetune", params={"epochs": 1})
    assert len(r.order) == 2 and sum(len(g) for g in r.groups.values()) == 10 and len(r.steps) == 2
    mem = uk.memorization(mlp, tensors, RECIPE.model_copy(update={"epochs": 2}), k=4, fraction=0.5)
    assert len(mem) == 60 and mem["memorization"].between(-1, 1).any()


def test_bad_input_is_one_line_naming_what_is_missing(seq_task, tensors, images, cnn_task):
    cases = [
        (lambda: uk.unlearn(nn.Sequential(nn.Linear(6, 5)), tensors, FORGET, "neggrad"),
         r"output has shape \[2, 5\].*3 classes.*one logit per class"),
        (lambda: uk.unlearn(nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                            images, FORGET, "imu"),
         r"'imu' requires features: .*no nn.Linear.*Task\(model, head=..., features=...\)"),
        (lambda: uk.unlearn(seq_task.model, tensors, FORGET, "retrain"),
         r"'retrain' requires build_model.*Task\(model, build_model="),
        (lambda: uk.unlearn(seq_task.model, tensors, FORGET, "retrain", task=Task(seq_task.model, build_model=mlp)),
         r"'retrain' requires recipe.*recipe=TrainConfig"),
        (lambda: uk.unlearn(seq_task.model, tensors, FORGET, "sisa"), r"'sisa' requires run.*SISA run directory"),
        (lambda: as_bundle([_BadItems(), _BadItems()]), r"_BadItems\[0\] returned list of length 3, not an \(x, y\) pair"),
        (lambda: as_bundle(_FloatLabels()), r"the label is 0.5, not one integer class id"),
        (lambda: uk.unlearn(seq_task.model, tensors, [1.5], "neggrad"), "integer training indices"),
        (lambda: uk.unlearn(seq_task.model, {"x": 1}, FORGET, "neggrad"), "data must be a DataBundle"),
    ]
    for call, message in cases:
        with pytest.raises(UnlearnkitError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


class _BadItems(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return [torch.zeros(2), 0, "extra"]


class _FloatLabels(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return torch.zeros(2), 0.5


class ShiftParams(Params):
    shift: float = 0.1


class BiasShift(Method):
    """A third party's method: lower the head bias of the forget rows' classes (retain-free)."""

    requires = frozenset({"head"})
    Params = ShiftParams

    def run(self, ctx, params):
        with torch.no_grad():
            for c in ctx.data.y_train[ctx.forget].unique():
                ctx.task.head.bias[c] -= params.shift
        return MethodOutput(ctx.model, len(ctx.forget))


class TouchesOriginal(BiasShift):
    def run(self, ctx, params):
        with torch.no_grad():
            ctx.original[-1].bias += 1.0
        return MethodOutput(ctx.model, 0)


class Nondeterministic(BiasShift):
    def run(self, ctx, params):
        noise = np.random.default_rng().random(3)  # fresh OS entropy, not ctx.seed
        with torch.no_grad():
            ctx.task.head.bias += torch.as_tensor(noise, dtype=torch.float32)
        return MethodOutput(ctx.model, 0)


class UsesAnUndeclaredRecipe(BiasShift):
    def run(self, ctx, params):
        return MethodOutput(ctx.model, ctx.task.recipe.epochs)


def test_check_method_passes_a_good_plugin_and_names_what_a_bad_one_breaks():
    report = check_method(BiasShift)
    assert report.examples_processed > 0 and "deterministic for a seed" in report.checks
    for bad, message in [
        (TouchesOriginal, "modified the original"),
        (Nondeterministic, "not deterministic"),
        (UsesAnUndeclaredRecipe, r"only what it requires \(head\): AttributeError"),
    ]:
        with pytest.raises(ContractError, match=message):
            check_method(bad)
    with pytest.raises(TypeError, match="unknown"):
        type("Typo", (Method,), {"requires": frozenset({"retian"})})
    with pytest.raises(TypeError, match="declare requires"):
        type("OldStyle", (Method,), {"needs_retain": True})


def test_check_model_reports_the_head_and_refuses_a_broken_model(seq_task, tensors):
    rep = check_model(seq_task.model, tensors, build_model=mlp)
    assert rep.head == "2" and rep.feature_dim == 12 and rep.num_classes == 3
    with pytest.raises(ContractError, match="last nn.Linear is not the output layer"):
        check_model(nn.Sequential(copy.deepcopy(seq_task.model), nn.Tanh()), tensors)
    with pytest.raises(ContractError, match="differs between two calls in eval mode"):
        check_model(nn.Sequential(_Noise(), copy.deepcopy(seq_task.model)), tensors)
    with pytest.raises(ContractError, match=r"shape \[8, 5\]; expected \[n, num_classes\] = \[8, 3\]"):
        check_model(nn.Sequential(nn.Linear(6, 5)), tensors)


class _Noise(nn.Module):
    """Randomness that eval mode does not switch off."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x)


def test_entry_point_plugins_register_by_name_and_a_broken_one_only_warns(tmp, monkeypatch):
    (tmp / "uk_plugin_mod.py").write_text(
        "from unlearnkit.methods import Method\nclass Mine(Method):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp))
    eps = [EntryPoint("mine", "uk_plugin_mod:Mine", "unlearnkit.methods"),
           EntryPoint("broken", "uk_plugin_missing_mod:Nope", "unlearnkit.methods")]
    monkeypatch.setattr("unlearnkit.registry.entry_points", lambda group: [e for e in eps if e.group == group])
    reg: Registry[type] = Registry("method", entry_points="unlearnkit.methods")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert reg.names() == ["mine"]
    assert reg.get("mine").name == "mine"  # the registry sets the name
    assert any("plugin 'broken'" in str(w.message) for w in caught)
    sys.modules.pop("uk_plugin_mod", None)
