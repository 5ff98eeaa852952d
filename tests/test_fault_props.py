"""Property tests of every reader of user files: any bytes in -> a valid result or an
UnlearnkitError (one line), never another exception. Readers: index files (.txt and
.json, via io.read_index_file and data.load_forget), npz datasets, run.json, lock files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearnkit.data import load_dataset, load_forget
from unlearnkit.errors import UnlearnkitError
from unlearnkit.io import DirLock, read_index_file

# Derandomized: the same examples every run (reproducible CI); no example database in the work tree.
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(e: UnlearnkitError) -> None:
    assert str(e) and "\n" not in str(e)


def check_index_result(idx: np.ndarray) -> None:
    assert idx.dtype == np.int64 and (idx >= 0).all()
    assert (np.diff(idx) > 0).all()  # sorted, unique


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
index_lists = st.lists(st.integers(min_value=-5, max_value=2**64) | st.floats() | st.text(max_size=4), max_size=20)


@pytest.mark.parametrize("suffix", [".txt", ".json"])
@SETTINGS
@given(data=st.binary(max_size=300))
def test_index_file_any_bytes(tmp_path, suffix, data):
    f = tmp_path / f"f{suffix}"
    f.write_bytes(data)
    try:
        idx, meta = read_index_file(f)
    except UnlearnkitError as e:
        one_line(e)
        return
    check_index_result(idx)
    assert isinstance(meta, dict)


@SETTINGS
@given(obj=json_values | st.fixed_dictionaries({"indices": json_values}) | index_lists
       | st.fixed_dictionaries({"indices": index_lists, "kind": st.text(max_size=5)}))
def test_index_file_any_json(tmp_path, obj):
    f = tmp_path / "f.json"
    f.write_text(json.dumps(obj))
    try:
        fs = load_forget(f)
    except UnlearnkitError as e:
        one_line(e)
        return
    check_index_result(fs.indices)
    # What was accepted is exactly the integers given.
    raw = obj if isinstance(obj, list) else obj["indices"]
    assert sorted(int(v) for v in raw) == fs.indices.tolist()


@SETTINGS
@given(lines=st.lists(st.text(max_size=12), max_size=20))
def test_index_file_any_text_lines(tmp_path, lines):
    f = tmp_path / "f.txt"
    f.write_text("\n".join(lines), encoding="utf-8")
    try:
        idx, _ = read_index_file(f)
    except UnlearnkitError as e:
        one_line(e)
        return
    check_index_result(idx)
    kept = [ln.strip() for ln in "\n".join(lines).splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert sorted(int(v) for v in kept) == idx.tolist()


def load_npz_bytes(tmp_path: Path, blob: bytes) -> None:
    f = tmp_path / "d.npz"
    f.write_bytes(blob)
    try:
        data = load_dataset(f"npz:{f}")
    except UnlearnkitError as e:
        one_line(e)
        return
    # Accepted: finite float32 features, labels in range, at least two classes to train on.
    assert data.n_train >= 1 and len(data.y_test) >= 1
    assert data.x_train.dtype.is_floating_point and bool(data.x_train.isfinite().all())
    assert 0 <= int(data.y_train.min()) and int(data.y_train.max()) < data.num_classes
    assert len(set(data.y_train.tolist())) >= 2


@SETTINGS
@given(blob=st.binary(max_size=400))
def test_npz_any_bytes(tmp_path, blob):
    load_npz_bytes(tmp_path, blob)


dtypes = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "float16", "<U2", "int8"])


def member(draw, shape: tuple[int, ...]) -> bytes:
    """One ``.npy`` member: an array of ``shape`` (random dtype and values, NaN/inf/huge among
    them), sometimes a pickled object array or bytes that are not .npy at all."""
    kind = draw(st.sampled_from(["array"] * 8 + ["object", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=40))
    if kind == "object":
        arr = np.empty(shape, dtype=object)
    else:
        values = draw(st.lists(st.integers(-1, 3) | st.integers(-1, 3) | st.floats(width=32), min_size=1, max_size=12))
        flat = np.resize(np.asarray(values, dtype=np.float64), int(np.prod(shape)))
        dtype = draw(dtypes)
        with np.errstate(all="ignore"):
            arr = flat.reshape(shape).astype(str if dtype == "<U2" else dtype)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@st.composite
def npz_archives(draw) -> bytes:
    """Archives that are mostly well-formed (rows of x match y) with random faults."""
    shapes = st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple)
    n, n_test = draw(st.integers(0, 12)), draw(st.integers(0, 4))
    d = draw(st.sampled_from([(3,), (1,), (0,), (2, 2), ()]))
    parts = {"x": (n, *d), "y": (n,), "x_test": (n_test, *d), "y_test": (n_test,)}
    layouts = [["x", "y"]] * 3 + [["x", "y", "x_test", "y_test"]] * 2 + [["x", "y", "x_test"], ["y", "z"]]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key in draw(st.sampled_from(layouts)):
            shape = parts.get(key, (n,)) if draw(st.integers(0, 9)) else draw(shapes)  # 1 in 10: any shape
            z.writestr(f"{key}.npy", member(draw, shape))
    return buf.getvalue()


@SETTINGS
@given(blob=npz_archives())
def test_npz_any_archive(tmp_path, blob):
    load_npz_bytes(tmp_path, blob)


@SETTINGS
@given(n=st.integers(2, 12), d=st.integers(1, 3), classes=st.integers(1, 4), seed=st.integers(0, 50))
def test_npz_valid_archives_load(tmp_path, n, d, classes, seed):
    """Well-formed files load unless they are degenerate, and then the error says why."""
    rng = np.random.default_rng(seed)
    f = tmp_path / "ok.npz"
    np.savez(f, x=rng.normal(size=(n, d)), y=rng.integers(0, classes, size=n))
    try:
        data = load_dataset(f"npz:{f}")
    except UnlearnkitError as e:
        assert "single class" in str(e) or "at least" in str(e), str(e)
        return
    assert data.n_train + len(data.y_val) + len(data.y_test) == n


@settings(SETTINGS, max_examples=40)
@given(data=st.binary(max_size=120) | json_values.map(lambda v: json.dumps(v).encode()))
def test_lock_file_any_bytes_is_stale(tmp_path, monkeypatch, data):
    """A lock file holding anything but a live owner's record never blocks: it is taken over."""
    monkeypatch.setattr(DirLock, "settle", 0.01)
    d = tmp_path / "lockdir"
    d.mkdir(exist_ok=True)
    (d / "bench.lock").write_bytes(data)
    said: list[str] = []
    with DirLock(d, "bench.lock", notify=said.append):
        assert json.loads((d / "bench.lock").read_text())["host"]
    assert not (d / "bench.lock").exists()
