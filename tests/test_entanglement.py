import shutil

import numpy as np
import pytest

from unlearnkit import UnlearnkitError, load_run
from unlearnkit.data import ForgetSet, save_forget
from unlearnkit.difficulty import entanglement_score, run_entanglement
from unlearnkit.training import predict_embeddings


def direct_es(r: np.ndarray, f: np.ndarray) -> float:
    """SPEC §2 written out differently: Inter via the midpoint, Intra via explicit sums."""
    mu_r = r.sum(0) / len(r)
    mu_f = f.sum(0) / len(f)
    mu = 0.5 * (mu_r + mu_f)
    intra = sum(np.dot(g - mu_r, g - mu_r) for g in r) / len(r) + sum(np.dot(g - mu_f, g - mu_f) for g in f) / len(f)
    inter = 0.5 * (np.dot(mu_r - mu, mu_r - mu) + np.dot(mu_f - mu, mu_f - mu))
    return intra / inter


def batch_mean(x: np.ndarray, batch: int) -> np.ndarray:
    """RUM's biased mean: the average of per-batch means (a partial last batch weighs like a full one)."""
    return np.mean([x[i : i + batch].mean(0) for i in range(0, len(x), batch)], axis=0)


def test_hand_computed_value():
    retain = np.array([[0.0, 0.0], [2.0, 0.0]])  # mu_r = (1, 0), mean sq. dist 1
    forget = np.array([[10.0, 0.0], [10.0, 2.0]])  # mu_f = (10, 1), mean sq. dist 1
    # Intra = 1 + 1; Inter = ||mu_r - mu_f||^2 / 4 = (81 + 1) / 4
    assert entanglement_score(retain, forget) == pytest.approx(2 / 20.5, rel=1e-12)


def test_matches_direct_numpy_computation():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(200, 7))
    f = rng.normal(loc=0.4, size=(37, 7))
    assert entanglement_score(r, f) == pytest.approx(direct_es(r, f), rel=1e-10)
    # Symmetric in the roles, and invariant to row order and a common translation.
    assert entanglement_score(f, r) == pytest.approx(entanglement_score(r, f), rel=1e-10)
    assert entanglement_score(r[::-1] + 5.0, f + 5.0) == pytest.approx(entanglement_score(r, f), rel=1e-10)


def test_separated_clusters_small_overlapping_large():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(300, 4))
    far = rng.normal(loc=20.0, size=(50, 4))
    near = rng.normal(loc=0.3, size=(50, 4))
    assert entanglement_score(r, far) < 0.1
    assert entanglement_score(r, near) > 10
    assert entanglement_score(r, near) > 100 * entanglement_score(r, far)


def test_exact_means_not_per_batch_means():
    rng = np.random.default_rng(2)
    # A partial last batch: 10 rows in batches of 4 -> batches of 4, 4, 2. The last two rows are
    # outliers, so the per-batch average over-weights them.
    r = np.vstack([rng.normal(size=(8, 3)), rng.normal(loc=6.0, size=(2, 3))])
    f = rng.normal(loc=1.0, size=(5, 3))
    assert not np.allclose(batch_mean(r, 4), r.mean(0))
    mu_r, mu_f = batch_mean(r, 4), batch_mean(f, 4)
    biased = (((r - mu_r) ** 2).sum(1).mean() + ((f - mu_f) ** 2).sum(1).mean()) / (((mu_r - mu_f) ** 2).sum() / 4)
    exact = entanglement_score(r, f)
    assert exact == pytest.approx(direct_es(r, f), rel=1e-10)
    assert abs(exact - biased) > 1e-3 * exact


def test_bad_shapes_and_identical_means():
    with pytest.raises(UnlearnkitError, match="equal d"):
        entanglement_score(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(UnlearnkitError, match="non-empty"):
        entanglement_score(np.zeros((0, 2)), np.ones((3, 2)))
    x = np.array([[0.0, 1.0], [0.0, -1.0]])
    assert entanglement_score(x, x) == float("inf")


@pytest.fixture(scope="module")
def run(digits_run, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("es") / "run"
    shutil.copytree(digits_run.path, path)
    return load_run(path, data=digits)


def test_run_entanglement_uses_theta_o_embeddings(run):
    data = run.data
    forget_idx = data.index_train[data.y_train == 3][:40].numpy()
    es = run_entanglement(run, ForgetSet(forget_idx))
    emb = predict_embeddings(run.model, data.x_train).numpy()
    is_f = np.isin(data.index_train.numpy(), forget_idx)
    assert es == pytest.approx(entanglement_score(emb[~is_f], emb[is_f]), rel=1e-9)
    # A whole class is far less entangled than a random set of the same size.
    rnd = np.random.default_rng(0).choice(data.index_train.numpy(), 40, replace=False)
    assert run_entanglement(run, ForgetSet(rnd)) > 5 * es


def test_es_cli(run, cli, tmp):
    idx = run.data.index_train[:30].numpy()
    save_forget(tmp / "f.txt", ForgetSet(idx))
    code, out, _ = cli("es", "--run", run.path, "--forget", tmp / "f.txt")
    assert code == 0
    value = float(out.split("ES =")[1].split()[0])
    assert value == pytest.approx(run_entanglement(run, ForgetSet(idx)), rel=1e-4)
    (tmp / "bad.txt").write_text("99999\n")
    code, out, err = cli("es", "--run", run.path, "--forget", tmp / "bad.txt")
    assert code == 2 and "outside the training set" in err and len(err.strip().splitlines()) == 1
