"""SISA: ensemble accuracy vs one model trained on all data, and unlearning time vs full
retraining, for 5, 10 and 20 shards (SPEC §7).

    .venv/bin/python benchmarks/sisa.py [--dataset fashion-mnist] [--shards 5 10 20] [--slices 5]
                                        [--epochs 10] [--width 256] [--requests 3] [--batch 10]
                                        [--threads 1] [--seed 0]

Full retraining = the single-model recipe trained on D minus the forgotten example, timed again
right after each shard count's unlearning requests, so that every time ratio is measured side by
side (removing 10 examples instead of 1 changes its cost by < 0.1%). SISA unlearning of one example
is averaged over ``--requests`` random examples (its cost depends on the slice the example sits
in); the batch is ``--batch`` random examples in one request. Besides wall-time ratios, the
``work`` ratios compare examples processed (retraining: E x |D|), which do not depend on the load
of the machine. Published SISA speed-ups for comparison: 4.6x (Purchase), 2.45x (SVHN), 1.36x
(ImageNet).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import recipe_parser, setup

from unlearnkit import train_run
from unlearnkit.data import ForgetSet
from unlearnkit.methods import unlearn_from_run
from unlearnkit.methods.sisa import slice_epochs, train_sisa
from unlearnkit.training import accuracy


def main() -> None:
    ap = recipe_parser(__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--slices", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3, help="single-example requests averaged")
    ap.add_argument("--batch", type=int, default=10, help="size of the batch request")
    args = ap.parse_args()
    data, cfg, kw, rng = setup(args)
    train_idx = data.index_train.numpy()
    singles = [ForgetSet([i]) for i in rng.choice(train_idx, size=args.requests, replace=False)]
    batch = ForgetSet(rng.choice(train_idx, size=args.batch, replace=False))
    e = slice_epochs(args.epochs, args.slices)
    print(f"{args.dataset}, {args.model} width {args.width}, E={args.epochs} epochs "
          f"(SISA: {args.slices} slices x {e} epochs per slice stage), seed {args.seed}, "
          f"{args.threads} thread(s); n_train {data.n_train}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        single = train_run(data, args.model, cfg, Path(tmp) / "single", model_kwargs=kw)
        train_s = time.perf_counter() - t0
        single_acc = accuracy(single.model, data.x_test, data.y_test)
        retrain_work = args.epochs * (data.n_train - 1)
        print(f"single model: test acc {single_acc:.4f}, trained in {train_s:.1f} s\n")
        print(f"{'shards':>6} {'acc vote':>8} {'acc mean':>8} {'Δ single':>8} {'train s':>7} {'retrain s':>9} "
              f"{'unlearn 1 s':>11} {'time x':>7} {'work x':>7} {f'unlearn {args.batch} s':>12} {'time x':>7} "
              f"{'work x':>7} {'shards hit':>10}")
        for s in args.shards:
            t0 = time.perf_counter()
            run = train_sisa(data, args.model, s, args.slices, cfg, Path(tmp) / f"sisa{s}", model_kwargs=kw)
            sisa_train_s = time.perf_counter() - t0
            vote = accuracy(run.model, data.x_test, data.y_test)
            run.model.aggregation = "mean"
            mean = accuracy(run.model, data.x_test, data.y_test)
            run.model.aggregation = "vote"
            ones = [unlearn_from_run(run, fs, "sisa", device="cpu") for fs in singles]
            one_s = float(np.mean([o.seconds for o in ones]))
            one_work = float(np.mean([o.examples_processed for o in ones]))
            out = unlearn_from_run(run, batch, "sisa", device="cpu")
            t0 = time.perf_counter()
            train_run(data, args.model, cfg, Path(tmp) / f"retrain{s}", model_kwargs=kw, exclude=singles[0].indices)
            retrain_s = time.perf_counter() - t0
            print(f"{s:6d} {vote:8.4f} {mean:8.4f} {vote - single_acc:+8.4f} {sisa_train_s:7.1f} {retrain_s:9.1f} "
                  f"{one_s:11.2f} {retrain_s / one_s:6.1f}x {retrain_work / one_work:6.1f}x {out.seconds:12.2f} "
                  f"{retrain_s / out.seconds:6.1f}x {retrain_work / out.examples_processed:6.1f}x "
                  f"{len(out.extra['retrained_shards']):>4d}/{s}")


if __name__ == "__main__":
    main()
