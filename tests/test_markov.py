"""The markov sequence dataset and the causal transformer trained on it through the one loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnkit.data import load_dataset
from unlearnkit.data.markov import OFFSET, canary_indices, true_next_token_probs
from unlearnkit.errors import UnlearnkitError
from unlearnkit.metrics.sequence import model_kl_to_truth, sequence_log_likelihoods
from unlearnkit.runs import load_run, new_model, train_run
from unlearnkit.training import TrainConfig, per_example_loss, seed_everything, train

SMALL = {"states": 6, "chains": 2, "length": 12, "n_train": 300, "n_test": 100, "canaries": 10}


@pytest.fixture(scope="module")
def data():
    return load_dataset("markov", **SMALL)


def test_deterministic_and_shaped(data):
    again = load_dataset("markov", **SMALL)
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.x_test, again.x_test)
    other = load_dataset("markov", **{**SMALL, "seed": 1})
    assert not torch.equal(data.x_train, other.x_train)
    assert data.x_train.dtype == torch.int64 and data.x_train.shape[1] == 12
    assert int(data.x_train.min()) >= OFFSET and int(data.x_train.max()) < OFFSET + 6
    assert data.num_classes == 3 and len(data.state["vocab"]) == 6
    # Canaries: exactly the requested count over train + validation, labelled with the last class.
    n_canary = len(canary_indices(data)) + int((data.y_val == 2).sum())
    assert n_canary == 10


def test_true_probs_are_distributions_and_beat_uniform(data):
    p = true_next_token_probs(data.state, data.x_test)
    assert p.shape == (100, 11, 6 + OFFSET)
    assert torch.allclose(p.sum(-1), torch.ones(100, 11, dtype=torch.float64))
    assert float(p[..., :OFFSET].abs().max()) == 0.0
    nll = -torch.log(p.gather(2, data.x_test[:, 1:, None])[..., 0]).mean()
    assert float(nll) < np.log(6) - 0.2  # the chains are predictable; the Bayes predictor knows them


def test_true_probs_for_one_chain_are_its_rows():
    d = load_dataset("markov", **{**SMALL, "chains": 1, "canaries": 0})
    trans = torch.tensor(d.state["transitions"][0], dtype=torch.float64)
    p = true_next_token_probs(d.state, d.x_test[:5])
    expected = trans[d.x_test[:5, :-1] - OFFSET]
    assert torch.allclose(p[..., OFFSET:], expected)


def test_transformer_learns_the_chain(data):
    seed_everything(0)
    model = new_model("transformer", data, {"width": 16, "heads": 2})
    assert model.objective == "next_token" and model.context == 12
    before = model_kl_to_truth(model, data.state, data.x_test)
    res = train(model, data.x_train, data.y_train, TrainConfig(epochs=8, lr=1e-2, optimizer="adamw",
                                                             weight_decay=0.0, batch_size=32))
    after = model_kl_to_truth(model, data.state, data.x_test)
    assert after < 0.5 * before
    dyn = res.dynamics
    first, last = dyn[dyn.epoch == 0].loss.mean(), dyn[dyn.epoch == 7].loss.mean()
    assert last < first and dyn.p_true.between(0, 1).all()
    ll, tokens = sequence_log_likelihoods(model, data.x_test)
    assert ll.shape == (100,) and (ll < 0).all() and (tokens == 11).all()
    assert np.allclose(-ll, per_example_loss(model(data.x_test), data.x_test).detach().numpy(), atol=1e-5)


def test_causal_no_peeking(data):
    """Changing a later token leaves the logits of earlier positions unchanged."""
    seed_everything(0)
    model = new_model("transformer", data, {"width": 16}).eval()
    x = data.x_test[:4].clone()
    y = x.clone()
    y[:, 8] = OFFSET + (y[:, 8] - OFFSET + 1) % 6
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-5) and not torch.allclose(a[:, 8:], b[:, 8:])


def test_run_roundtrip(tmp_path, data):
    cfg = TrainConfig(epochs=1, lr=1e-2, optimizer="adamw", batch_size=64)
    run = train_run(data, "transformer", cfg, tmp_path / "run", model_kwargs={"width": 16})
    loaded = load_run(tmp_path / "run")
    assert loaded.data.state["transitions"] == data.state["transitions"]
    assert torch.equal(loaded.model(data.x_test[:3]), run.model(data.x_test[:3]))
    assert 0 < run.meta["results"]["test_acc"] < 1  # next-token accuracy
    wider = load_dataset("markov", **{**SMALL, "states": 9})
    with pytest.raises(UnlearnkitError, match="vocabulary mismatch between run and data: the model has 8 token ids"):
        load_run(tmp_path / "run", data=wider)


def test_bad_inputs_are_one_line(data):
    seed_everything(0)
    with pytest.raises(UnlearnkitError, match="longer than the model's context of 8"):
        new_model("transformer", data, {"width": 16, "context": 8})
    model = new_model("transformer", data, {"width": 16})
    longer = load_dataset("markov", **{**SMALL, "length": 20})
    with pytest.raises(UnlearnkitError, match="longer than the model's context of 12") as e:
        model(longer.x_test)
    assert "\n" not in str(e.value)
    wider = load_dataset("markov", **{**SMALL, "states": 9})
    with pytest.raises(UnlearnkitError, match="vocabulary mismatch"):
        model(wider.x_test)
    with pytest.raises(UnlearnkitError, match="markov: option states"):
        load_dataset("markov", states="many")
    with pytest.raises(UnlearnkitError, match="vocabulary mismatch"):
        load_dataset("markov", state={**data.state, "vocab": ["a"]}, **SMALL)


def test_evaluate_sequence_model_against_itself(data):
    from unlearnkit.metrics.sequence import evaluate_sequence_model, split_log_likelihoods

    seed_everything(0)
    model = new_model("transformer", data, {"width": 16})
    forget = data.positions(canary_indices(data))
    retain = data.complement(forget)[:50]
    ref = split_log_likelihoods(model, data, forget, retain)
    m = evaluate_sequence_model(model, data, forget, retain, ref)
    assert m["forget_gap"] == 0 and m["retain_gap"] == 0 and m["tow"] == 1
    assert all(m[f"{s}_ppl"] > 1 for s in ("forget", "retain", "test")) and m["kl_to_truth"] > 0
    assert 0 <= m["mia_auc"] <= 1


def test_paired_halves_and_in_out_gap():
    from unlearnkit.difficulty.sequence import in_out_gap, paired_half_masks

    m = paired_half_masks(10, 4, seed=0)
    assert (m.sum(0) == 2).all() and (m[0] ^ m[1]).all() and (m[2] ^ m[3]).all()
    ll = np.where(m, -1.0, -3.0)  # in-models give -1, out-models -3
    assert np.allclose(in_out_gap(ll, m), 2.0)
    with pytest.raises(UnlearnkitError, match="even number"):
        paired_half_masks(10, 3, seed=0)


def test_canaries_are_the_most_memorized(data):
    from unlearnkit.difficulty.sequence import most_memorized, sequence_memorization

    cfg = TrainConfig(epochs=10, lr=1e-2, optimizer="adamw", weight_decay=0.0, batch_size=32)
    mem = sequence_memorization(data, "transformer", cfg, k=2, model_kwargs={"width": 16}, device="cpu")
    assert len(mem) == data.n_train and mem["memorization"].notna().all()
    canary = mem["index"].isin(canary_indices(data))
    assert mem.loc[canary, "memorization"].mean() > mem.loc[~canary, "memorization"].mean() + 0.1
    top = most_memorized(mem, 5)
    assert len(top) == 5 and top.kind == "memorization"
