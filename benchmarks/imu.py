"""IMU against imu_uniform and the other retain-free methods, and the batched influence
computation against a per-example autograd loop (SPEC §6).

    .venv/bin/python benchmarks/imu.py [--dataset fashion-mnist] [--epochs 10] [--width 256]
                                       [--forget-class 0] [--loop-n 2000] [--repeats 3] [--no-grid]
                                       [--timing-only] [--threads 1] [--seed 0]

Two forget sets: 10% of the training set at random, and one whole class. For each,
the original model (trained on D) and a retrained reference (trained on D \\ S, same
recipe) are trained once; every method runs with its shipped defaults (preset for the
dataset, if any), then (unless --no-grid) at the best point of its ``tune_grid`` chosen by ToW
on this very forget set (an oracle, optimistic for every method alike). Columns: forget/retain/test
accuracy, ToW vs the reference, seconds.
The second table times the influences of the forget set: the closed-form batched
computation vs a loop of one forward + autograd.grad per example (as in the public code).
"""

from __future__ import annotations

import copy
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import recipe_parser, setup

from unlearnkit import UnlearnkitError, train_run
from unlearnkit.data import ForgetSet
from unlearnkit.methods import METHODS, unlearn_from_run
from unlearnkit.methods.imu import influence_by_loop, model_influence
from unlearnkit.metrics import tug_of_war
from unlearnkit.training import split_accuracies

METHODS_COMPARED = ["imu", "imu_uniform", "neggrad", "boundary_shrink"]


def accuracies(model, data, forget_pos: np.ndarray) -> dict[str, float]:
    """Accuracy on the forget rows, on the rest of the training rows and on the test split."""
    return split_accuracies(model, data, {"forget": forget_pos, "retain": data.complement(forget_pos)}, ("test",))


def best_time(fn, repeats: int):
    """(fastest wall time in seconds over ``repeats`` calls, the last result)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def best_of_grid(orig, fs, method, data, pos, ref_acc, seed) -> tuple[str, dict[str, float], float]:
    """The method's ``tune_grid`` point with the best ToW *on this forget set* (an oracle choice,
    labelled as such); seconds are those of the chosen point. Points that diverge are skipped."""
    grid = METHODS.get(method).tune_grid
    best = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        try:
            out = unlearn_from_run(orig, fs, method, params, seed=seed, device="cpu")
        except UnlearnkitError:  # gradient ascent diverged (NaN/inf loss) at this point
            continue
        acc = accuracies(out.model, data, pos)
        if best is None or tug_of_war(acc, ref_acc) > tug_of_war(best[1], ref_acc):
            label = method + " " + ",".join(f"{k}={v:g}" for k, v in params.items())
            best = (label, acc, out.seconds)
    return best


def main() -> None:
    ap = recipe_parser(__doc__.splitlines()[0])
    ap.add_argument("--forget-class", type=int, default=0)
    ap.add_argument("--loop-n", type=int, default=2000, help="forget examples in the timing comparison")
    ap.add_argument("--no-grid", dest="grid", action="store_false",
                    help="skip the oracle rows (best of each method's tune_grid by ToW on the forget set)")
    ap.add_argument("--repeats", type=int, default=3, help="influence timings: fastest of this many runs")
    ap.add_argument("--timing-only", action="store_true", help="skip the method tables")
    args = ap.parse_args()
    data, cfg, kw, rng = setup(args)
    train_idx = data.index_train.numpy()
    forget_sets = {
        "random 10%": ForgetSet(rng.choice(train_idx, size=len(train_idx) // 10, replace=False)),
        f"class {args.forget_class}": ForgetSet(train_idx[data.y_train.numpy() == args.forget_class]),
    }
    methods = [m for m in METHODS_COMPARED if m in METHODS]
    print(f"{args.dataset}, {args.model} width {args.width}, {args.epochs} epochs, seed {args.seed}, "
          f"{args.threads} thread(s); n_train {data.n_train}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        orig = train_run(data, args.model, cfg, Path(tmp) / "orig", model_kwargs=kw)
        orig_s = time.perf_counter() - t0
        print(f"original trained in {orig_s:.1f} s\n")
        if not args.timing_only:
            print(f"{'forget set':<12} {'method':<32} {'forget':>7} {'retain':>7} {'test':>7} {'ToW':>7} {'seconds':>8}")
        for k, (name, fs) in enumerate(({} if args.timing_only else forget_sets).items()):
            pos = fs.positions(data)
            t0 = time.perf_counter()
            ref = train_run(data, args.model, cfg, Path(tmp) / f"ref-{k}", model_kwargs=kw, exclude=fs.indices)
            ref_s = time.perf_counter() - t0
            ref_acc = accuracies(ref.model, data, pos)
            rows = [("original", accuracies(orig.model, data, pos), float("nan")), ("retrain", ref_acc, ref_s)]
            for m in methods:
                out = unlearn_from_run(orig, fs, m, seed=args.seed, device="cpu")
                rows.append((m, accuracies(out.model, data, pos), out.seconds))
            if args.grid:
                for m in methods:
                    rows.append(best_of_grid(orig, fs, m, data, pos, ref_acc, args.seed))
            for m, acc, secs in rows:
                print(f"{name:<12} {m:<32} {acc['forget']:7.4f} {acc['retain']:7.4f} {acc['test']:7.4f} "
                      f"{tug_of_war(acc, ref_acc):7.4f} {secs:8.2f}")
            print()

        # Influence: batched closed form vs per-example autograd, on the same rows.
        fs = forget_sets["random 10%"]
        pos = fs.positions(data)[: args.loop_n]
        x, y = data.x_train[pos], data.y_train[pos]
        model = copy.deepcopy(orig.model).eval()
        model_influence(model, x[:8], y[:8])  # warm-up
        fast_s, fast = best_time(lambda: model_influence(model, x, y), args.repeats)
        slow_s, slow = best_time(lambda: influence_by_loop(model, x, y), args.repeats)
        err = float((fast - slow).abs().max() / slow.abs().max())
        print(f"influence of {len(y)} forget examples (fastest of {args.repeats}): batched {fast_s * 1e3:.1f} ms, "
              f"per-example loop "
              f"{slow_s * 1e3:.1f} ms, ratio {slow_s / fast_s:.0f}x (target >= 50x); "
              f"max relative difference {err:.1e}")


if __name__ == "__main__":
    main()
