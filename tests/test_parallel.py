import math
import operator
import os

import numpy as np
import pandas as pd
import pytest

from unlearnkit import TrainConfig, UnlearnkitError
from unlearnkit.data import make_bundle
from unlearnkit.difficulty.memorization import MemorizationWarning, estimate_memorization
from unlearnkit.parallel import LocalExecutor, RayExecutor, get_executor


def test_local_map_with_and_without_context():
    with get_executor("local") as ex:
        assert isinstance(ex, LocalExecutor)
        assert list(ex.map(math.sqrt, [1, 4, 9])) == [(1, 1.0), (4, 2.0), (9, 3.0)]
        assert list(ex.map(operator.sub, [5, 7], context=2)) == [(5, 3), (7, 5)]


def test_local_errors_propagate_and_stop():
    done = []
    with pytest.raises(ValueError):
        for item, result in LocalExecutor().map(math.sqrt, [4, -1, 9]):
            done.append(item)
    assert done == [4]


def test_get_executor_bad_input():
    with pytest.raises(UnlearnkitError, match="unknown executor 'dask'"):
        get_executor("dask")
    with pytest.raises(UnlearnkitError, match="--address is only used with --executor ray"):
        get_executor("local", address="10.0.0.1:6379")


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return make_bundle("tiny", x[:240], y[:240], x[240:], y[240:], val_fraction=0.0, split_seed=0, num_classes=2)


@pytest.mark.ray
def test_ray_executor_matches_local(tmp):
    import ray

    assert not ray.is_initialized()
    data = tiny_data()
    kw = dict(k=4, epochs=2, cfg=TrainConfig(batch_size=32), model_kwargs={"width": 16}, block_size=2)
    with RayExecutor(num_cpus=2) as ex:
        assert ray.is_initialized()
        assert sorted(ex.map(math.sqrt, [1, 4, 9], desc="roots")) == [(1, 1.0), (4, 2.0), (9, 3.0)]
        assert sorted(ex.map(operator.sub, [5, 7], context=2)) == [(5, 3), (7, 5)]
        with pytest.raises(UnlearnkitError, match=r"roots: unit -1 failed on Ray \(ValueError: math domain error\)"):
            list(ex.map(math.sqrt, [4, -1], desc="roots"))
        # A worker that dies is retried once, then reported by unit.
        with pytest.raises(UnlearnkitError, match=r"exits: unit 3 was lost on Ray after 1 retry"):
            list(ex.map(os._exit, [3], desc="exits"))
        with pytest.warns(MemorizationWarning):
            on_ray = estimate_memorization(data, "mlp", out=tmp / "ray", executor=ex, **kw)
            # The loop path through training.train on Ray, too.
            loop_ray = estimate_memorization(data, "mlp", out=tmp / "ray_loop", executor=ex, ensemble="loop", **kw)
    assert not ray.is_initialized()  # it shut down the Ray it started
    with pytest.warns(MemorizationWarning):
        local = estimate_memorization(data, "mlp", out=tmp / "local", executor="local", **kw)
        loop_local = estimate_memorization(data, "mlp", out=tmp / "local_loop", ensemble="loop", **kw)
    assert on_ray.meta["executor"] == "ray" and local.meta["executor"] == "local"
    # Bitwise the same numbers, whichever executor trained the models.
    pd.testing.assert_frame_equal(on_ray.table, local.table, check_exact=True)
    pd.testing.assert_frame_equal(loop_ray.table, loop_local.table, check_exact=True)
    for b in range(2):
        name = f"models/block_{b:04d}.npz"
        with np.load(tmp / "ray" / name) as r, np.load(tmp / "local" / name) as lo:
            assert np.array_equal(r["correct"], lo["correct"]) and np.array_equal(r["masks"], lo["masks"])


@pytest.mark.ray
def test_ray_leaves_a_running_ray_alone():
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with get_executor("ray") as ex:
            assert list(ex.map(abs, [-3])) == [(-3, 3)]
        assert ray.is_initialized()  # not ours to shut down
    finally:
        ray.shutdown()


def test_local_executor_with_worker_processes_matches_one_process(tmp):
    from unlearnkit.parallel import LocalExecutor

    data = tiny_data()
    kw = dict(k=4, epochs=2, cfg=TrainConfig(batch_size=32), model_kwargs={"width": 16}, block_size=2)
    with LocalExecutor(workers=2) as ex:
        assert sorted(ex.map(math.sqrt, [1, 4, 9], desc="roots")) == [(1, 1.0), (4, 2.0), (9, 3.0)]
        assert sorted(ex.map(operator.sub, [5, 7], context=2)) == [(5, 3), (7, 5)]
        with pytest.raises(ValueError, match="math domain error"):  # the function's own error, as in-process
            list(ex.map(math.sqrt, [4, -1], desc="roots"))
        # the pool breaks for every unit in flight, so the dying unit is named among them
        with pytest.raises(UnlearnkitError, match=r"exits: a worker process died; the units in flight were lost \((4, )?3\b"):
            list(ex.map(os._exit, [3, 4], desc="exits"))
        assert sorted(ex.map(math.sqrt, [16, 25])) == [(16, 4.0), (25, 5.0)]  # a fresh pool after the loss
        with pytest.warns(MemorizationWarning):
            pooled = estimate_memorization(data, "mlp", out=tmp / "pool", executor=ex, ensemble="loop", **kw)
    assert ex._pool is None  # closed with the context
    with pytest.warns(MemorizationWarning):
        single = estimate_memorization(data, "mlp", out=tmp / "one", executor="local", ensemble="loop", **kw)
    pd.testing.assert_frame_equal(pooled.table, single.table, check_exact=True)
    with pytest.raises(UnlearnkitError, match="workers must be >= 1"):
        LocalExecutor(workers=0)
