"""The fault suite: every class of bad input or fault found by a hostile-user pass ends in
one clear line (exit 2, no traceback) and loses nothing.

Classes (docs/errors.md): 1 unwritable output, 2 disk full / broken lock files, 3 bad index
files, 4 invalid run.json, 5 npz edge cases, 6 degenerate models and data, 7 forget indices
never trained on, 8 silent replacement of existing files, 9 error text mangled by markup,
10 `tune --avoid` removing every candidate, 11 temporaries left by killed units; plus the
Python API's error types, concurrent `score` writers and kill -9 / resume of the bench.
Readers of arbitrary bytes are property-tested in test_fault_props.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnkit.errors import BusyError, ConfigError, DataError, OutputError, RunError, UnlearnkitError

TINY = ["--epochs", "1", "--width", "16", "--quiet"]
CLI = [str(Path(sys.executable).with_name("unlearnkit"))]  # the console script of this environment
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BENCH_YAML = """\
name: tiny faults
dataset: {name: digits}
model: {name: mlp, width: 16}
training: {epochs: 1, lr: 0.1}
seeds: [0]
forget_sets:
  - {kind: random, size: 30}
scores: [confidence]
methods:
  finetune: {epochs: 1}
metrics: {mia_max_per_side: 50}
executor: {kind: local, threads: 1}
"""


# ---------------------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------------------


def tree(*roots: Path) -> dict[str, str]:
    """sha256 of every file (hidden ones too) under ``roots``: equal before and after = nothing lost or added."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir() and p.name.startswith("."):
                out[str(p)] = "dir"
    return out


def assert_one_line(code: int, err: str, match: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and match in lines[0], lines[0]


def _mount_tmpfs(path: Path, size: str, readonly: bool = False) -> str | None:
    """Mount a tmpfs at ``path``; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs as root)"
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    return None if res.returncode == 0 else f"mount -t tmpfs failed here: {res.stderr.strip() or res.returncode}"


@pytest.fixture
def mounts():
    """``mount(path, size, readonly=False, files={})``: a tmpfs (files written, then remounted read-only)."""
    done: list[Path] = []

    def mount(path: Path, size: str = "1m", readonly: bool = False, files: dict[str, bytes] | None = None) -> Path:
        why = _mount_tmpfs(path, size)
        if why:
            pytest.skip(why)
        done.append(path)
        for name, data in (files or {}).items():
            (path / name).write_bytes(data)
        if readonly:
            res = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
            if res.returncode:
                pytest.skip(f"remounting read-only failed: {res.stderr.strip()}")
        return path

    yield mount
    for p in reversed(done):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny digits run that never trained on its first 10 training indices."""
    from unlearnkit import TrainConfig, train_run
    from unlearnkit.data import load_dataset

    data = load_dataset("digits")
    out = tmp_path_factory.mktemp("faults") / "run"
    train_run(data, "mlp", TrainConfig(epochs=2, lr=0.1), out, model_kwargs={"width": 16},
              exclude=data.index_train[:10].numpy())
    return out


def trained_on(run: Path) -> list[int]:
    """The training indices ``run`` trained on (from its per-example dynamics)."""
    return sorted(set(pd.read_parquet(run / "dynamics.parquet")["index"].tolist()))


def excluded_of(run: Path) -> list[int]:
    return json.loads((run / "run.json").read_text())["excluded"]["indices"]


def bad_run(tmp: Path, run: Path, name: str, change) -> Path:
    """A copy of ``run`` whose run.json is ``change(meta)``."""
    d = tmp / f"badrun-{name}"
    shutil.copytree(run, d)
    (d / "run.json").write_text(json.dumps(change(json.loads((run / "run.json").read_text()))))
    return d


def npz(tmp: Path, name: str, **arrays) -> str:
    np.savez(tmp / f"{name}.npz", **arrays)
    return f"npz:{tmp / f'{name}.npz'}"


def write(tmp: Path, name: str, data: bytes | str) -> Path:
    p = tmp / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# ---------------------------------------------------------------------------------------
# Classes 1-10 through the CLI: exit 2, one line, no traceback, nothing changed on disk
# ---------------------------------------------------------------------------------------

rng = np.random.default_rng(0)
X, Y2 = rng.normal(size=(40, 3)), np.arange(40) % 2

# (id, class, args(tmp, run) -> argv, expected text of the one line)
CASES = [
    ("proc", 1, lambda t, r: ["train", *TINY, "-o", "/proc/unlearnkit-faults/run"],
     "/proc/unlearnkit-faults/run: cannot write"),
    ("forget-set-proc", 1, lambda t, r: ["forget-set", "random", "-r", r, "-n", 5, "-o", "/proc/f.json"],
     "/proc/f.json: cannot write"),
    ("bench-proc", 1, lambda t, r: ["bench", write(t, "b.yaml", BENCH_YAML), "-o", "/proc/unlearnkit-bench"],
     "/proc/unlearnkit-bench/bench.lock: cannot create the lock"),
    ("demo-proc", 1, lambda t, r: ["demo", "-o", "/proc/unlearnkit-demo", "-q"], "/proc/unlearnkit-demo"),
    ("exclude-binary", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.txt", b"\xff\xfe\x00garbage"),
                                        "-o", t / "o"], "not a UTF-8 text file"),
    ("exclude-indices-string", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.json", '{"indices": "123"}'),
                                                "-o", t / "o"], '"indices" must be a JSON list of integers, got str'),
    ("exclude-indices-object", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.json", '{"indices": {"1": 2}}'),
                                                "-o", t / "o"], '"indices" must be a JSON list of integers, got dict'),
    ("exclude-negative", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.json", "[3, -1]"), "-o", t / "o"],
     "entry 2 (-1) is negative"),
    ("exclude-duplicate", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.txt", "4\n4\n"), "-o", t / "o"],
     "duplicate indices [4]"),
    ("exclude-float", 3, lambda t, r: ["train", *TINY, "--exclude", write(t, "x.json", "[1.5]"), "-o", t / "o"],
     "entry 1 (1.5) is not an integer index"),
    ("avoid-binary", 3, lambda t, r: ["tune", "-r", r, "--method", "finetune", "--avoid", write(t, "a.txt", b"\x80\x81"),
                                      "-o", t / "t.json", "-q"], "not a UTF-8 text file"),
    ("bench-config-binary", 3, lambda t, r: ["bench", write(t, "c.yaml", b"\xff\xfe\x00"), "-o", t / "b"],
     "c.yaml: not a UTF-8 text file (byte 0)"),
    ("runjson-list", 4, lambda t, r: ["forget-set", "random", "-r", bad_run(t, r, "list", lambda m: [m]), "-n", 5,
                                      "-o", t / "f.json"], "run.json must hold a JSON object, got a JSON list"),
    ("runjson-no-dataset", 4, lambda t, r: ["forget-set", "random", "-n", 5, "-o", t / "f.json", "-r",
                                            bad_run(t, r, "nods", lambda m: {k: v for k, v in m.items() if k != "dataset"})],
     "run.json: dataset: required key is missing"),
    ("runjson-string-number", 4, lambda t, r: [
        "forget-set", "random", "-n", 5, "-o", t / "f.json", "-r",
        bad_run(t, r, "str", lambda m: {**m, "dataset": {**m["dataset"], "split_seed": "0"}})],
     "run.json: dataset.split_seed: Input should be a valid integer"),
    ("runjson-model-string", 4, lambda t, r: ["evaluate", "--model", bad_run(t, r, "model", lambda m: {**m, "model": "mlp"}),
                                              "-f", write(t, "f.txt", "20\n"), "-o", t / "m.json"], "run.json: model:"),
    ("npz-zero", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "z", x=np.zeros((0, 3)), y=np.zeros(0, int)), "-o", t / "o"],
     "0 example(s) in 'x'; need at least 2"),
    ("npz-one", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "one", x=X[:1], y=Y2[:1]), "-o", t / "o"],
     "1 example(s) in 'x'; need at least 2"),
    ("npz-pickle", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "p", x=np.array([{}] * 4, dtype=object), y=Y2[:4]),
                                    "-o", t / "o"], "holds pickled objects, which are never loaded"),
    ("npz-nan", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "nan", x=np.where(np.arange(120).reshape(40, 3) == 7,
                                                                                 np.nan, X), y=Y2), "-o", t / "o"],
     "'x' holds NaN or infinite values (or values beyond float32) in 1 row(s), the first at row 2"),
    ("npz-inf-test", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "inf", x=X, y=Y2, x_test=np.full((2, 3), np.inf),
                                                                 y_test=Y2[:2]), "-o", t / "o"], "'x_test' holds NaN"),
    ("npz-shape", 5, lambda t, r: ["train", *TINY, "-d", npz(t, "sh", x=X, y=Y2[:39]), "-o", t / "o"],
     "'y' must have shape [40] to match the features, got [39]"),
    ("width-0", 6, lambda t, r: ["train", "--epochs", "1", "--width", "0", "-q", "-o", t / "o"],
     "width must be a positive integer, got 0"),
    ("width-negative", 6, lambda t, r: ["train", "--epochs", "1", "--width=-3", "-q", "-o", t / "o"],
     "width must be a positive integer, got -3"),
    ("single-class", 6, lambda t, r: ["train", *TINY, "-d", npz(t, "one-class", x=X, y=np.zeros(40, int)), "-o", t / "o"],
     "has a single class (0)"),
    ("forget-never-trained", 7, lambda t, r: ["unlearn", "-r", r, "--method", "finetune", "-o", t / "u", "-q",
                                              "-f", write(t, "f.txt", f"{excluded_of(r)[0]}\n20\n")],
     "1 index(es) were never trained on by run"),
    ("forget-set-exists", 8, lambda t, r: ["forget-set", "random", "-r", r, "-n", 5, "-o", write(t, "keep.json", "[1]")],
     "keep.json: already exists; pass --overwrite to replace it"),
    ("forget-set-class-exists", 8, lambda t, r: ["forget-set", "class", "-r", r, "--class", 1,
                                                 "-o", write(t, "keep.txt", "1\n")], "already exists; pass --overwrite"),
    ("evaluate-exists", 8, lambda t, r: ["evaluate", "--model", r, "-f", write(t, "f.txt", "20\n"),
                                         "-o", write(t, "m.json", "{}")], "m.json: already exists; pass --overwrite"),
    ("brackets-path", 9, lambda t, r: ["train", *TINY, "-d", "npz:" + str(t / "[abc].npz"), "-o", t / "o"],
     "[abc].npz: file not found"),
    ("brackets-shape", 9, lambda t, r: ["train", *TINY, "-d", npz(t, "rows", x=X, y=Y2, x_test=np.zeros((2, 2)),
                                                                   y_test=Y2[:2]), "-o", t / "o"],
     "x_test rows [2] differ from x rows [3]"),
    ("tune-avoid-everything", 10, lambda t, r: [
        "tune", "-r", r, "--method", "finetune", "-o", t / "t.json", "-q",
        "--avoid", write(t, "all.json", json.dumps(trained_on(r)))],
     "--avoid leave 0 of the"),
]


@pytest.mark.parametrize("args,match", [pytest.param(a, m, id=f"class{c}-{i}") for i, c, a, m in CASES])
def test_cli_fault(cli, tmp_path, run_dir, args, match):
    argv = args(tmp_path, run_dir)  # builds the inputs (files written before the snapshot)
    before = tree(tmp_path, run_dir)
    code, out, err = cli(*argv)
    assert_one_line(code, err, match)
    assert "--val-size" not in err  # class 10: the old message blamed the wrong option
    assert tree(tmp_path, run_dir) == before  # pre-existing files byte-identical, nothing added


def test_every_class_has_a_cli_case():
    assert {c for _, c, _, _ in CASES} | {2, 11} == set(range(1, 12))


def test_overwrite_replaces_an_existing_forget_file(cli, tmp_path, run_dir):
    f = write(tmp_path, "f.json", "[1]")
    code, _, err = cli("forget-set", "random", "-r", run_dir, "-n", 5, "-o", f, "--overwrite")
    assert code == 0, err
    assert len(json.loads(f.read_text())["indices"]) == 5


# ---------------------------------------------------------------------------------------
# Class 1 on a read-only file system, class 2 on a full one (tmpfs; skipped where it cannot mount)
# ---------------------------------------------------------------------------------------


def test_read_only_directory_and_parent(cli, tmp_path, run_dir, mounts):
    ro = mounts(tmp_path / "ro", readonly=True, files={"keep.json": b"[1, 2]\n"})
    bench_yaml = write(tmp_path, "b.yaml", BENCH_YAML)
    before = tree(ro, run_dir)
    for argv, match in [
        (["train", *TINY, "-o", ro / "run"], f"{ro / 'run'}: cannot write (Read-only file system)"),
        (["train", *TINY, "-o", ro / "sub" / "run"], "cannot write (Read-only file system)"),
        (["forget-set", "random", "-r", run_dir, "-n", 5, "-o", ro / "f.json"], "cannot write (Read-only file system)"),
        (["forget-set", "random", "-r", run_dir, "-n", 5, "-o", ro / "keep.json", "--overwrite"], "Read-only file system"),
        (["bench", bench_yaml, "-o", ro / "bench"], "Read-only file system"),
        (["demo", "-o", ro / "demo", "-q"], "Read-only file system"),
    ]:
        code, _, err = cli(*argv)
        assert_one_line(code, err, match)
    assert tree(ro, run_dir) == before


def test_disk_full(cli, tmp_path, mounts):
    full = mounts(tmp_path / "full", size="64k")
    # The weights (~77 kB for width 256) do not fit: one line, and nothing is left behind.
    code, _, err = cli("train", "--epochs", "1", "--width", "256", "-q", "-o", full / "run")
    assert_one_line(code, err, f"{full / 'run' / 'model.safetensors'}: cannot write (no space left on device)")
    assert list(full.iterdir()) == []
    # A bench started on a full disk leaves no bench.lock (formerly a 0-byte one blocked every later run).
    filler = full / "filler"
    with pytest.raises(OSError):
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    code, _, err = cli("bench", write(tmp_path, "b.yaml", BENCH_YAML), "-o", full / "bench")
    assert_one_line(code, err, "no space left on device")
    assert not (full / "bench" / "bench.lock").exists()
    assert not (full / "bench").exists() or list((full / "bench").iterdir()) == []
    filler.unlink()
    from unlearnkit.experiments.lock import BenchLock

    with BenchLock(full / "bench"):  # space again: the directory is not blocked
        assert (full / "bench" / "bench.lock").exists()


def test_bench_on_a_disk_that_fills_up(cli, tmp_path, mounts):
    """The disk fills in the middle of a bench (as the demo's did): failed units are reported,
    the command ends in one error line, and no lock or temporary is left."""
    full = mounts(tmp_path / "small", size="96k")
    code, out, err = cli("bench", write(tmp_path, "b.yaml", BENCH_YAML), "-o", full / "b", "-q")
    assert_one_line(code, err, "cannot write (no space left on device)")
    assert "failed:" in out and "no space left on device" in out
    assert not (full / "b" / "bench.lock").exists()
    assert not [p for p in full.rglob(".*")], "temporaries left behind"
    for d in (full / "b").glob("units/*/*"):
        assert (d / "unit.json").exists(), d  # every unit present is complete


# ---------------------------------------------------------------------------------------
# Class 2 (lock files) and class 11 (temporaries of killed processes)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\x00\xff", b"{not json", b'{"pid": "7"}', b"[]", b'{"pid": 0, "host": "x"}'])
def test_invalid_lock_file_is_stale(tmp_path, content):
    from unlearnkit.experiments.lock import LOCK, BenchLock

    (tmp_path / LOCK).write_bytes(content)
    said: list[str] = []
    with BenchLock(tmp_path, notify=said.append):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert said and "invalid lock file" in said[0]


def _killed_inside_atomic_dir(out: Path) -> None:
    """Start a process that stops inside atomic_dir(out) and SIGKILL it there."""
    code = (f"import time; from unlearnkit.io import atomic_dir\n"
            f"with atomic_dir({str(out)!r}) as tmp:\n"
            f"    (tmp / 'half').write_text('x'); print('inside', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "inside"
    p.send_signal(signal.SIGKILL)
    p.wait()


def test_temporaries_of_a_killed_unit_are_removed(tmp_path):
    from unlearnkit.experiments.lock import BenchLock
    from unlearnkit.io import atomic_dir

    unit = tmp_path / "units" / "train" / "abc123"
    unit.parent.mkdir(parents=True)
    _killed_inside_atomic_dir(unit)
    left = [p for p in unit.parent.iterdir() if p.name.startswith(".abc123.")]
    assert len(left) == 1 and not unit.exists()
    # The next bench over the directory sweeps it ...
    said: list[str] = []
    with BenchLock(tmp_path, notify=said.append):
        pass
    assert not left[0].exists() and "left by killed runs" in said[0]
    # ... and so does the next writer of the same path.
    _killed_inside_atomic_dir(unit)
    with atomic_dir(unit, overwrite=True) as tmp:
        (tmp / "done").write_text("ok")
    assert sorted(p.name for p in unit.parent.iterdir()) == ["abc123"]


def test_a_run_set_aside_by_a_killed_writer_is_restored(tmp_path):
    """Killed between atomic_dir's two renames (old run set aside, new one not yet in place):
    the next writer puts the old run back, and refuses to replace it without overwrite."""
    import unlearnkit.io as uio

    aside = tmp_path / f".run.{uio._HOST}-{2**22 + 12345}.old"  # a pid no process has
    aside.mkdir()
    (aside / "run.json").write_text('{"kind": "train"}')
    with pytest.raises(OutputError, match="already holds a run; pass --overwrite"):
        with uio.atomic_dir(tmp_path / "run"):
            pass
    assert (tmp_path / "run" / "run.json").read_text() == '{"kind": "train"}' and not aside.exists()


def test_a_live_writers_temporary_is_kept(tmp_path):
    """A temporary of a running process (this one, another worker) is never swept."""
    from unlearnkit.io import atomic_dir, sweep_stale_temps

    with atomic_dir(tmp_path / "x") as tmp:
        assert sweep_stale_temps(tmp_path) == [] and tmp.exists()


# ---------------------------------------------------------------------------------------
# Concurrent writers of one run directory
# ---------------------------------------------------------------------------------------


def test_two_score_commands_on_one_run_keep_both_columns(tmp_path, run_dir, monkeypatch):
    """Both compute at once and reach the merge together (a barrier); the run's lock
    serialises the read-merge-write, so neither's column is lost."""
    from unlearnkit.difficulty import scores as scores_mod
    from unlearnkit.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    real = scores_mod.compute_scores
    barrier = threading.Barrier(2, timeout=60)

    def compute_then_meet(*a, **k):
        table = real(*a, **k)
        barrier.wait()
        return table

    monkeypatch.setattr(scores_mod, "compute_scores", compute_then_meet)
    errors: list[BaseException] = []

    def score(name: str) -> None:
        try:
            scores_mod.score_run(load_run(run), [name], device="cpu")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=score, args=(n,)) for n in ("confidence", "loss")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    table = pd.read_parquet(run / "scores.parquet")
    assert {"confidence", "loss"} <= set(table.columns)
    assert set(json.loads((run / "scores.json").read_text())["scores"]) == {"confidence", "loss"}
    assert not (run / "run.lock").exists()


def test_score_process_waits_for_the_run_lock(tmp_path, run_dir):
    """`unlearnkit score` while another process holds the run's lock: it waits, then merges its column
    next to the one already there."""
    from unlearnkit.runs import run_lock

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    from unlearnkit.difficulty.scores import score_run
    from unlearnkit.runs import load_run

    score_run(load_run(run), ["margin"], device="cpu")
    before = (run / "scores.parquet").read_bytes()
    with run_lock(run):
        proc = subprocess.Popen([*CLI, "score", "-r", run, "-s", "entropy", "-q", "--device", "cpu"], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said = proc.stderr.readline()  # it computed its column and now waits at the merge
        assert "waiting for another command" in said and str(os.getpid()) in said, said
        time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
        assert (run / "scores.parquet").read_bytes() == before  # nothing merged while the lock is held
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert {"margin", "entropy"} <= set(pd.read_parquet(run / "scores.parquet").columns)


def test_a_live_lock_holder_is_named(tmp_path):
    from unlearnkit.io import DirLock

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "run.lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename, "started": "now"}))
        with pytest.raises(BusyError, match=f"another command \\(pid {holder.pid} "):
            DirLock(tmp_path, what="command", wait=0.3).acquire()
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------
# The Python API raises the same errors, as UnlearnkitError subclasses
# ---------------------------------------------------------------------------------------


def test_api_error_types(tmp_path, run_dir):
    from unlearnkit.data import load_dataset, load_forget
    from unlearnkit.io import read_index_file, write_json
    from unlearnkit.models import build_model
    from unlearnkit.runs import load_run

    with pytest.raises(RunError, match="dataset: required key is missing"):
        load_run(bad_run(tmp_path, run_dir, "api", lambda m: {k: v for k, v in m.items() if k != "dataset"}))
    with pytest.raises(DataError, match="single class"):
        load_dataset(npz(tmp_path, "api1", x=X, y=np.zeros(40, int)))
    with pytest.raises(DataError, match="need at least 2"):  # formerly scikit-learn's ValueError
        load_dataset(npz(tmp_path, "api2", x=X[:1], y=Y2[:1]))
    with pytest.raises(DataError, match="must be a JSON list"):
        read_index_file(write(tmp_path, "i.json", '{"indices": "12"}'))
    with pytest.raises(DataError, match="never trained on"):
        from unlearnkit.methods import unlearn_from_run

        run = load_run(run_dir)
        unlearn_from_run(run, load_forget(write(tmp_path, "f.txt", f"{excluded_of(run_dir)[1]}\n")), "finetune")
    with pytest.raises(ConfigError, match="width must be a positive integer"):
        build_model("mlp", (4,), 3, width=0)
    with pytest.raises(ConfigError, match="split_seed must be an integer >= 0"):  # formerly NumPy's ValueError
        load_dataset("digits", split_seed=-1)
    with pytest.raises(DataError, match="x_train holds NaN"):  # formerly "loss became nan" in training
        from unlearnkit import make_bundle

        make_bundle("mine", np.where(X == X[3, 1], np.nan, X), Y2, X[:4], Y2[:4])
    with pytest.raises(DataError, match="all have class 0; a classifier needs at least 2 classes"):
        from unlearnkit import TrainConfig, make_bundle, train_run

        one_class = make_bundle("one", X.astype(np.float32), np.zeros(40, int), X[:4].astype(np.float32), Y2[:4])
        train_run(one_class, "mlp", TrainConfig(epochs=1), tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(OutputError, match="cannot write"):
        write_json("/proc/unlearnkit.json", {})
    assert all(issubclass(e, UnlearnkitError) for e in (BusyError, ConfigError, DataError, OutputError, RunError))


# ---------------------------------------------------------------------------------------
# kill -9 of the bench at three random points, then resume: row-identical results
# ---------------------------------------------------------------------------------------


def _done_units(out: Path) -> int:
    return sum(1 for p in out.glob("units/*/*") if not p.name.startswith("."))


def _bench_child(config: str, out: str) -> None:
    """The bench in a forked child (already imported: no start-up cost); the parent kills it."""
    import yaml

    from unlearnkit.experiments import run_bench, validate_config

    run_bench(validate_config(yaml.safe_load(config)), out, quiet=True, report=False)


def test_bench_killed_at_three_random_points_resumes_identically(tmp_path):
    import multiprocessing

    import yaml

    from unlearnkit.experiments import TIME_COLUMNS, read_results, run_bench, validate_config

    ref = tmp_path / "ref"
    assert not run_bench(validate_config(yaml.safe_load(BENCH_YAML)), ref, quiet=True, report=False).failures
    total = _done_units(ref)
    seed = int(os.environ.get("UNLEARNKIT_FAULT_SEED", "0"))
    pick = random.Random(seed)
    targets = sorted(pick.sample(range(1, total - 2), 3))  # >= 3 units still to run at each kill
    out = tmp_path / "killed"
    fork = multiprocessing.get_context("fork")
    left_behind: list[Path] = []  # temporaries of the killed units (class 11)
    for i, target in enumerate(targets):
        p = fork.Process(target=_bench_child, args=(BENCH_YAML, str(out)))
        p.start()
        while _done_units(out) < target and p.is_alive():
            time.sleep(0.01)
        time.sleep(pick.uniform(0, 0.05))  # land inside the next unit, not between two
        assert p.is_alive(), f"seed {seed}: the bench ended before kill point {target}"
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL
        # Nothing half-written: every unit directory present is complete.
        for d in out.glob("units/*/*"):
            assert d.name.startswith(".") or (d / "unit.json").exists(), d
        left_behind += [q for q in out.glob("units/*/.*") if q.name.endswith(".tmp")]
        if i == 1:  # a lock file a crash left empty must not block the resume either
            (out / "bench.lock").write_bytes(b"")
    res = run_bench(validate_config(yaml.safe_load(BENCH_YAML)), out, quiet=True, report=False)
    assert res.units_run < total  # it resumed rather than starting over
    assert left_behind, f"seed {seed}: no kill landed inside a unit"
    assert not [p for p in out.rglob(".*") if p.name.endswith((".tmp", ".old"))], "temporaries left behind"
    keep = [c for c in read_results(ref).columns if c not in TIME_COLUMNS]
    pd.testing.assert_frame_equal(read_results(out)[keep], read_results(ref)[keep])
