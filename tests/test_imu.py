import copy
import dataclasses

import numpy as np
import pytest
import torch

from unlearnkit import UnlearnkitError
from unlearnkit.data import ForgetSet
from unlearnkit.methods import METHODS, unlearn_from_run
from unlearnkit.methods.imu import Imu, imu_weights, influence_by_loop, influence_table, model_influence
from unlearnkit.training import accuracy, predict_logits


def test_batched_influence_equals_per_example_autograd(digits_run, digits):
    x, y = digits.x_train[:60], digits.y_train[:60]
    model = copy.deepcopy(digits_run.model)
    for lam in (0.01, 1.0):
        slow = influence_by_loop(model, x, y, lam)
        fast = model_influence(model, x, y, lam)
        assert fast.shape == (60,) and (fast < 0).any()
        np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-5 * float(slow.abs().max()))
    m64 = copy.deepcopy(model).double()
    np.testing.assert_allclose(
        model_influence(m64, x.double(), y).numpy(), influence_by_loop(m64, x.double(), y, 0.01).numpy(),
        rtol=1e-5, atol=1e-5,
    )


def test_weights_follow_spec():
    infl = torch.tensor([0.5, 0.0, -1.0, -4.0, -9.0, -16.0, -0.25, 2.0] + [-1.0] * 12, dtype=torch.float64)
    w = imu_weights(infl)
    kept = infl < 0
    assert (w[~kept] == 0).all() and (w[kept] > 0).all()
    raw = infl[kept].abs().sqrt().numpy()
    cap = np.percentile(raw, 93)
    assert cap < raw.max()  # the clip is active here
    np.testing.assert_allclose(w[kept].numpy(), np.minimum(raw, cap))
    top = imu_weights(infl, clip_percentile=100, top_fraction=0.1)  # ceil(0.1 * 18) = 2 largest |I|
    assert torch.nonzero(top)[:, 0].tolist() == [4, 5]
    np.testing.assert_allclose(top[[4, 5]].numpy(), [3.0, 4.0])


def test_imu_lowers_forget_accuracy_retain_free_and_seeded(digits_run, digits, monkeypatch):
    cls = digits.index_train[digits.y_train == 3].numpy()
    fs = ForgetSet(cls)
    pos = fs.positions(digits)
    seen = []
    run = Imu.run
    monkeypatch.setattr(Imu, "run", lambda self, ctx, p: seen.append(ctx.retain) or run(self, ctx, p))
    before = accuracy(digits_run.model, digits.x_train[pos], digits.y_train[pos])
    a = unlearn_from_run(digits_run, fs, "imu", seed=1)
    b = unlearn_from_run(digits_run, fs, "imu", seed=1)
    after = accuracy(a.model, digits.x_train[pos], digits.y_train[pos])
    assert before > 0.9 and after < before - 0.3
    assert seen == [None, None] and not METHODS.get("imu").needs_retain
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Head only by default: the body is untouched.
    body = {k: v for k, v in digits_run.model.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(body[k], sa[k]) for k in body)
    assert not torch.equal(digits_run.model.state_dict()["head.weight"], sa["head.weight"])


def test_recompute_modes_uniform_ablation_and_all_layers(digits_run, digits):
    fs = ForgetSet(digits.index_train[:100].numpy())
    base = {"epochs": 2, "batch_size": 32}
    runs = {r: unlearn_from_run(digits_run, fs, "imu", {**base, "recompute": r}) for r in ("once", "epoch", "step")}
    assert runs["once"].extra["influence_computations"] == 1
    assert runs["epoch"].extra["influence_computations"] == 2
    assert runs["step"].extra["influence_computations"] == runs["step"].extra["steps"]
    uni = unlearn_from_run(digits_run, fs, "imu_uniform", {**base, "recompute": "once"})
    assert uni.extra["kept"] == runs["once"].extra["kept"] < len(fs)
    x = digits.x_test
    assert not torch.equal(predict_logits(uni.model, x), predict_logits(runs["once"].model, x))
    full = unlearn_from_run(digits_run, fs, "imu", {**base, "all_layers": True})
    key = "body.1.weight"
    assert not torch.equal(full.model.state_dict()[key], digits_run.model.state_dict()[key])
    table = influence_table(digits_run.model, digits.x_train[:100], digits.y_train[:100], fs.indices)
    assert list(table.columns) == ["index", "influence", "weight"]
    assert ((table.influence < 0) == (table.weight > 0)).all()


def test_no_negative_influence_is_an_error(digits_run, digits):
    # A head scaled so the forget examples' softmax saturates to exact one-hots: every
    # head gradient is zero, so is every influence -- nothing to ascend.
    logits = predict_logits(digits_run.model, digits.x_train)
    top2 = logits.topk(2, 1).values
    sure = (logits.argmax(1) == digits.y_train) & (top2[:, 0] - top2[:, 1] > 1.0)
    model = copy.deepcopy(digits_run.model)
    with torch.no_grad():
        model.head.weight.mul_(1e4)
        model.head.bias.mul_(1e4)
    run = dataclasses.replace(digits_run, model=model)
    fs = ForgetSet(digits.index_train[sure].numpy()[:20])
    with pytest.raises(UnlearnkitError, match="no forget example has negative influence"):
        unlearn_from_run(run, fs, "imu")
    with pytest.raises(UnlearnkitError, match="no forget example has negative influence"):
        unlearn_from_run(run, fs, "imu_uniform")
