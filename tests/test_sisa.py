import json

import numpy as np
import pytest
import torch

from unlearnkit import TrainConfig, UnlearnkitError, load_run
from unlearnkit.data import ForgetSet
from unlearnkit.methods import unlearn_from_run, unlearn_run
from unlearnkit.methods.sisa import SHARDS_JSON, checkpoint_path, slice_epochs, train_sisa
from unlearnkit.models.ensemble import SisaEnsemble

CFG = TrainConfig(epochs=6, lr=0.1, batch_size=32, seed=3)
KW = {"width": 32}
S, R = 3, 3


def shards_json(path):
    return json.loads((path / SHARDS_JSON).read_text())


@pytest.fixture(scope="module")
def sisa(tmp_path_factory, digits):
    """A SISA run plus an unlearned child: forget one index from shard 0's last slice
    and one from shard 1's first slice (shard 2 untouched)."""
    root = tmp_path_factory.mktemp("sisa")
    run = train_sisa(digits, "mlp", S, R, CFG, root / "sisa", model_kwargs=KW)
    sj = shards_json(run.path)
    forget = np.array([sj["shards"][0]["slices"][2][4], sj["shards"][1]["slices"][0][7]], dtype=np.int64)
    child = unlearn_run(load_run(run.path, data=digits), ForgetSet(forget), "sisa", root / "child", seed=123)
    return run, forget, child, root


def test_layout_and_assignment(sisa, digits):
    run, _, _, _ = sisa
    sj = shards_json(run.path)
    assert sj["num_shards"] == S and sj["epochs_per_slice"] == slice_epochs(CFG.epochs, R)
    seen = [set(sh["seen"]) for sh in sj["shards"]]
    # Disjoint shards covering the training split exactly; seen = union of the slices.
    assert sum(len(s) for s in seen) == digits.n_train
    assert set().union(*seen) == set(digits.index_train.tolist())
    for sh in sj["shards"]:
        assert sorted(i for sl in sh["slices"] for i in sl) == sh["seen"]
        assert len(sh["checkpoints"]) == R
    for k in range(S):
        for r in range(R):
            assert checkpoint_path(run.path, k, r).exists()
    assert run.meta["kind"] == "sisa" and run.meta["model"]["name"] == "sisa_ensemble"
    assert run.meta["results"]["test_acc"] > 0.7


def test_unlearned_equals_fresh_training_without_forget(sisa, digits):
    run, forget, child, root = sisa
    sj = shards_json(child.path)
    for sh in sj["shards"]:
        assert not set(forget.tolist()) & set(sh["seen"])
    assert set(forget.tolist()) <= set(child.excluded.tolist())
    fresh = train_sisa(digits, "mlp", S, R, CFG, root / "fresh", model_kwargs=KW, exclude=forget)
    loaded = load_run(child.path, data=digits)
    a, b = loaded.model.state_dict(), fresh.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = digits.x_test
    assert torch.equal(loaded.model(x), fresh.model(x))
    # Same bookkeeping and byte-identical checkpoints as the fresh training.
    assert sj["shards"] == shards_json(fresh.path)["shards"]


def test_only_affected_shards_retrained(sisa):
    run, _, child, _ = sisa
    info = child.extra["unlearn"]
    assert info["extra"]["retrained_shards"] == [0, 1]
    assert info["extra"]["restart_slice"] == {"0": 2, "1": 0}
    old, new = shards_json(run.path)["shards"], shards_json(child.path)["shards"]
    assert new[2]["checkpoints"] == old[2]["checkpoints"]  # untouched shard
    assert new[0]["checkpoints"][:2] == old[0]["checkpoints"][:2]  # before the restart slice
    assert new[0]["checkpoints"][2] != old[0]["checkpoints"][2]
    assert new[1]["checkpoints"][0] != old[1]["checkpoints"][0]
    # Retraining shard 0 from slice 2 costs one stage; shard 1 from slice 0 costs all three.
    sizes = [[len(s) for s in sh["slices"]] for sh in new]
    e = slice_epochs(CFG.epochs, R)
    expected = e * sum(sizes[0]) + e * sum(sum(sizes[1][: r + 1]) for r in range(R))
    assert info["examples_processed"] == expected


def test_chained_unlearning_and_bad_requests(sisa, digits, digits_run):
    run, forget, child, root = sisa
    parent = load_run(child.path, data=digits)
    with pytest.raises(UnlearnkitError, match="never trained on"):  # already forgotten
        unlearn_from_run(parent, ForgetSet(forget[:1]), "sisa")
    other = shards_json(child.path)["shards"][2]["slices"][1][0]
    grand = unlearn_run(parent, ForgetSet([other]), "sisa", root / "grand")
    assert grand.extra["unlearn"]["extra"]["retrained_shards"] == [2]
    assert all(other not in sh["seen"] for sh in shards_json(grand.path)["shards"])
    with pytest.raises(UnlearnkitError, match="not trained with SISA; use `unlearnkit train-sisa`"):
        unlearn_from_run(digits_run, ForgetSet(forget[:1]), "sisa")
    with pytest.raises(UnlearnkitError, match="no single linear head"):
        unlearn_from_run(parent, ForgetSet([other]), "imu")


def test_excluded_index_is_in_no_shard(digits, tmp):
    excl = digits.index_train[:30].numpy()
    cfg = TrainConfig(epochs=1, seed=0)
    run = train_sisa(digits, "mlp", 2, 2, cfg, tmp / "s", model_kwargs=KW, exclude=excl)
    seen = set().union(*(sh["seen"] for sh in shards_json(run.path)["shards"]))
    assert not seen & set(excl.tolist()) and len(seen) == digits.n_train - 30
    with pytest.raises(UnlearnkitError, match="never trained on"):
        unlearn_from_run(run, ForgetSet(excl[:2]), "sisa")


class Fixed(torch.nn.Module):
    """A 'model' returning fixed logits, to test aggregation by hand."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_aggregations():
    # Shards vote 0, 0, 1 but shard 2 is very confident in 1: vote says 0, mean says 1.
    members = [Fixed([1.0, 0.0, 0.0]), Fixed([1.0, 0.0, 0.0]), Fixed([0.0, 20.0, 0.0])]
    x = torch.zeros(4, 1)
    vote, mean = SisaEnsemble(members, "vote")(x), SisaEnsemble(members, "mean")(x)
    assert vote.argmax(1).tolist() == [0] * 4 and mean.argmax(1).tolist() == [1] * 4
    assert torch.allclose(vote.exp().sum(1), torch.ones(4))
    probs = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
    assert torch.allclose(mean.exp(), probs, atol=1e-6)
    # A 1-1 tie is broken by the mean probability (deterministically).
    tie = SisaEnsemble([Fixed([3.0, 0.0]), Fixed([0.0, 1.0])], "vote")(x)
    assert tie.argmax(1).tolist() == [0] * 4
    with pytest.raises(UnlearnkitError, match="aggregation"):
        SisaEnsemble(members, "median")


def test_cli_train_sisa_mean(cli, tmp, digits):
    code, out, err = cli(
        "train-sisa", "--dataset", "digits", "--shards", "2", "--slices", "2", "--epochs", "1",
        "--width", "16", "--aggregation", "mean", "--quiet", "--out", tmp / "cli",
    )
    assert code == 0, err
    assert "2 shards x 2 slices" in out
    run = load_run(tmp / "cli", data=digits)
    assert run.model.aggregation == "mean" and len(run.model.members) == 2
    forget = tmp / "f.txt"
    forget.write_text(f"{json.loads((tmp / 'cli' / SHARDS_JSON).read_text())['shards'][1]['slices'][1][0]}\n")
    code, out, err = cli("unlearn", "--run", tmp / "cli", "--method", "sisa", "--forget", forget,
                         "--quiet", "--out", tmp / "u")
    assert code == 0, err
    assert (tmp / "u" / SHARDS_JSON).exists() and checkpoint_path(tmp / "u", 1, 1).exists()
    code, out, err = cli("evaluate", "--model", tmp / "u", "--forget", forget, "--quiet", "--out", tmp / "m.json")
    assert code == 0, err
    code, _, err = cli("unlearn", "--run", tmp / "u", "--method", "sisa", "--forget", forget,
                       "--quiet", "--out", tmp / "u2")
    assert code == 2 and "never trained on" in err
    code, _, err = cli("train-sisa", "--shards", "0", "--quiet", "--out", tmp / "bad")
    assert code == 2 and "at least 1 shard" in err
