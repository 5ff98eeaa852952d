import copy
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from unlearnkit import TrainConfig, UnlearnkitError, load_run, train_run
from unlearnkit.data import make_bundle
from unlearnkit.difficulty import SCORES, compute_scores, load_scores, score_run
from unlearnkit.difficulty.memorization import estimate_memorization
from unlearnkit.difficulty.geometry import nearest_other_class_distance, per_example_grad_sq_norms
from unlearnkit.difficulty.proxies import loss_curvature
from unlearnkit.io import write_json
from unlearnkit.training import predict_embeddings

N_BAD = 60


@pytest.fixture(scope="module")
def mislabeled(digits, tmp_path_factory):
    """A wide mlp trained long enough to partly memorise 60 deliberately mislabeled digits."""
    data = copy.copy(digits)
    y = digits.y_train.clone()
    rng = np.random.default_rng(0)
    bad = np.sort(rng.choice(len(y), N_BAD, replace=False))
    y[bad] = (y[bad] + torch.as_tensor(rng.integers(1, 10, N_BAD))) % 10
    data.y_train = y
    cfg = TrainConfig(epochs=30, lr=0.1, batch_size=64, weight_decay=0.0, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 630 tiny steps: one thread avoids per-step synchronisation
    try:
        run = train_run(data, "mlp", cfg, tmp_path_factory.mktemp("mis") / "run", model_kwargs={"width": 256})
    finally:
        torch.set_num_threads(threads)
    table = score_run(run, "all")
    return run, bad, table


def test_scores_table_keyed_by_index_with_label(mislabeled):
    run, _, table = mislabeled
    assert list(table.columns[:2]) == ["index", "label"]
    assert np.array_equal(table["index"], run.data.index_train.numpy())
    assert np.array_equal(table["label"], run.data.y_train.numpy())
    expected = set(SCORES.names()) - {"memorization"}
    assert set(table.columns[2:]) == expected
    assert np.isfinite(table[sorted(expected)].to_numpy()).all()
    on_disk = load_scores(run.path)
    pd.testing.assert_frame_equal(on_disk, table.reset_index(drop=True), check_like=False)
    info = json.loads((run.path / "scores.json").read_text())
    for name in expected:
        assert info["scores"][name]["higher_is_harder"] == SCORES.get(name).higher_is_harder
        assert info["scores"][name]["seconds"] >= 0
    assert "spearman_memorization" not in info["scores"]["loss"]


def test_every_label_dependent_score_ranks_mislabeled_as_harder(mislabeled):
    """Mislabeled examples: lower confidence/margin/accuracy, higher loss/entropy/gradient/curvature..."""
    _, bad, table = mislabeled
    is_bad = np.zeros(len(table), bool)
    is_bad[bad] = True
    for name in SCORES.names():
        if name in ("memorization", "centroid_distance"):  # centroid distance ignores labels
            continue
        v = table[name].to_numpy()
        hardness = v if SCORES.get(name).higher_is_harder else -v
        # Probability that a random mislabeled example is harder than a random clean one.
        auc = (hardness[is_bad][:, None] > hardness[~is_bad][None, :]).mean()
        assert auc > 0.7, (name, auc)
    assert table["confidence"][is_bad].mean() < table["confidence"][~is_bad].mean()
    assert table["loss"][is_bad].mean() > table["loss"][~is_bad].mean()
    assert table["entropy"][is_bad].mean() > table["entropy"][~is_bad].mean()
    assert table["margin"][is_bad].mean() < table["margin"][~is_bad].mean()


def test_grad_norm_batched_equals_per_example_loop(mislabeled):
    run, _, table = mislabeled
    model, x, y = run.model, run.data.x_train[:6], run.data.y_train[:6]
    loop = []
    for i in range(6):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        loop.append(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    batched = per_example_grad_sq_norms(model, x, y, chunk=4)  # two chunks, the last partial
    np.testing.assert_allclose(batched, loop, rtol=1e-4)
    np.testing.assert_allclose(table["grad_norm"][:6], np.sqrt(loop), rtol=1e-4)
    lr = run.meta["train"]["lr"]
    np.testing.assert_allclose(table["self_influence"][:6], lr * np.asarray(loop), rtol=1e-4)


def test_grad_norm_vmap_path_equals_loop_for_conv_models(digits):
    from unlearnkit.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", digits.input_shape, digits.num_classes, width=4).eval()
    x, y = digits.x_train[:5], digits.y_train[:5]
    loop = []
    for i in range(5):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        loop.append(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    np.testing.assert_allclose(per_example_grad_sq_norms(model, x, y, chunk=2), loop, rtol=1e-4)


def test_geometry_scores_match_numpy(mislabeled):
    run, _, table = mislabeled
    emb = predict_embeddings(run.model, run.data.x_train).double().numpy()
    y = run.data.y_train.numpy()
    np.testing.assert_allclose(table["centroid_distance"], np.linalg.norm(emb - emb.mean(0), axis=1), rtol=1e-5)
    d = np.linalg.norm(emb[:50, None] - emb[None], axis=2)
    d[y[:50, None] == y[None]] = np.inf
    np.testing.assert_allclose(table["nearest_other_class_distance"][:50], d.min(1), rtol=1e-4)
    # Chunking does not change the result.
    e = torch.as_tensor(emb[:200]).float()
    np.testing.assert_allclose(nearest_other_class_distance(e, run.data.y_train[:200], chunk=7),
                               nearest_other_class_distance(e, run.data.y_train[:200]), rtol=1e-5)


def test_loss_curvature_batch_size_independent(mislabeled):
    run, _, table = mislabeled
    x, y = run.data.x_train[:40], run.data.y_train[:40]
    a = loss_curvature(run.model, x, y, batch_size=40)
    b = loss_curvature(run.model, x, y, batch_size=3)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(table["loss_curvature"][:40], a, rtol=1e-3, atol=1e-6)
    assert all(p.requires_grad for p in run.model.parameters())


def test_same_seed_same_scores(mislabeled):
    run, _, table = mislabeled
    again = compute_scores(run, ["holdout_retraining", "margin"], seed=0)
    np.testing.assert_allclose(again["holdout_retraining"], table["holdout_retraining"], rtol=1e-6)
    other = compute_scores(run, "holdout_retraining", seed=1)
    assert not np.allclose(other["holdout_retraining"], table["holdout_retraining"])


@pytest.fixture
def small_run(digits_run, digits, tmp):
    shutil.copytree(digits_run.path, tmp / "run")
    return load_run(tmp / "run", data=digits)


@pytest.fixture(scope="module")
def mem_dir(digits, tmp_path_factory):
    """A real (tiny, noisy) memorization estimate on the same data as ``digits_run``."""
    out = tmp_path_factory.mktemp("mem") / "mem"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k=4 is far too small for a stable estimate; fine here
        estimate_memorization(digits, "mlp", k=4, fraction=0.5, epochs=2, out=out, model_kwargs={"width": 16})
    return out


def test_memorization_merged_and_correlated(small_run, mem_dir):
    score_run(small_run, "margin,loss")
    table = score_run(small_run, "memorization", memorization_dir=mem_dir)
    assert {"margin", "loss", "memorization", "memorization_se", "memorization_n_out"} <= set(table.columns)
    mem = pd.read_parquet(mem_dir / "memorization.parquet").set_index("index").loc[table["index"]]
    np.testing.assert_allclose(table["memorization"], mem["memorization"])
    info = json.loads((small_run.path / "scores.json").read_text())
    rho = info["scores"]["margin"]["spearman_memorization"]
    assert -1 <= rho <= 1
    assert info["scores"]["memorization"]["higher_is_harder"] is True


def test_memorization_from_other_dataset_or_model_refused(small_run, mem_dir, tmp):
    meta = json.loads((mem_dir / "memorization.json").read_text())
    for name, change, msg in [("split", {"dataset": {**meta["dataset"], "split_seed": 7}}, "split_seed"),
                              ("model", {"model": {**meta["model"], "name": "cnn"}}, "model")]:
        shutil.copytree(mem_dir, tmp / name)
        write_json(tmp / name / "memorization.json", {**meta, **change})
        with pytest.raises(UnlearnkitError, match=f"another configuration.*{msg}"):
            compute_scores(small_run, "memorization", memorization_dir=tmp / name)
    with pytest.raises(UnlearnkitError, match="unlearnkit memorization"):
        compute_scores(small_run, "memorization")


def test_missing_dynamics_named_or_skipped(small_run):
    (small_run.path / "dynamics.parquet").unlink()
    with pytest.raises(UnlearnkitError, match="recorded by `unlearnkit train`"):
        compute_scores(small_run, "confidence")
    table = compute_scores(small_run, "all")
    assert "confidence" not in table.columns and "margin" in table.columns
    assert "unlearnkit train" in table.attrs["skipped"]["binary_accuracy"]


def test_text_model_input_space_score_not_applicable(tmp):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(120, 6))
    y = (x[:, 0] > 10).astype(np.int64)
    data = make_bundle("toytext", x, y, x[:20], y[:20], val_fraction=0.2, split_seed=0,
                       spec={"name": "toytext"}, state={"vocab": [str(i) for i in range(20)]})
    run = train_run(data, "text", TrainConfig(epochs=2), tmp / "text", model_kwargs={"width": 8})
    with pytest.raises(UnlearnkitError, match="not applicable to text"):
        compute_scores(run, "loss_curvature")
    table = compute_scores(run, "all")
    assert "loss_curvature" in table.attrs["skipped"]
    assert np.isfinite(table["grad_norm"]).all() and np.isfinite(table["holdout_retraining"]).all()


def test_score_cli(small_run, cli, tmp):
    code, out, _ = cli("score", "--run", small_run.path, "--scores", "margin,entropy", "-q")
    assert code == 0 and "margin" in out and "low = harder" in out
    assert {"margin", "entropy"} <= set(load_scores(small_run.path).columns)
    code, _, err = cli("score", "--run", small_run.path, "--scores", "margin,nope")
    assert code == 2 and "unknown score 'nope'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("score", "--run", small_run.path, "--scores", "memorization")
    assert code == 2 and "unlearnkit memorization" in err
    code, _, err = cli("score", "--run", tmp / "nowhere")
    assert code == 2 and "not a run directory" in err


def test_tracin_sums_learning_rate_weighted_checkpoints():
    from unlearnkit.difficulty.influence import tracin_self_influence

    g1, g2 = np.array([1.0, 4.0]), np.array([2.0, 0.5])
    np.testing.assert_allclose(tracin_self_influence([g1, g2], [0.1, 0.01]), [0.12, 0.405])
    with pytest.raises(ValueError):
        tracin_self_influence([g1], [0.1, 0.2])


def test_loss_dynamics_proxies_from_recorded_losses(mislabeled):
    run, bad, table = mislabeled
    dyn = run.dynamics()
    losses = dyn.pivot(index="index", columns="epoch", values="loss").loc[table["index"]].to_numpy(np.float64)
    np.testing.assert_allclose(table["cumulative_loss"], losses.sum(1), rtol=1e-5)
    np.testing.assert_allclose(table["loss_variance"], losses.var(1), rtol=1e-4, atol=1e-7)
    info = json.loads((run.path / "scores.json").read_text())
    assert info["scores"]["cumulative_loss"]["higher_is_harder"] is True
    assert info["scores"]["loss_variance"]["cost"].startswith("free")


def test_loss_dynamics_proxies_correlated_with_memorization(small_run, mem_dir):
    score_run(small_run, "cumulative_loss,loss_variance,memorization", memorization_dir=mem_dir)
    info = json.loads((small_run.path / "scores.json").read_text())
    for name in ("cumulative_loss", "loss_variance"):
        rho = info["scores"][name]["spearman_memorization"]
        assert rho is not None and -1 <= rho <= 1
