"""Memorization at scale: stacked ensemble vs one model at a time, achieved FLOP/s, reliability,
and the cheap proxies' agreement with memorization and their cost (SPEC §2, §10).

    .venv/bin/python benchmarks/memorization.py [--dataset fashion-mnist] [--n 10000] [--k 100]
        [--epochs 10] [--width 256] [--block-size 16] [--loop-k K] [--cnn-k 8] [--cnn-epochs 2]
        [--cnn-width 16] [--tiny-k 32] [--threads 2] [--no-cnn] [--no-proxies]

Everything runs in this one process, side by side, with ``--threads`` torch threads per model (the
default fills the machine). FLOPs per trained example = 3 x 2 x the model's multiply-accumulates
(forward + backward ~ 3 forward passes), plus 2 x MACs per evaluated example; achieved FLOP/s is that
over the wall time, as a fraction of a bare 2048x2048 float32 matmul's FLOP/s measured here with the
same thread count. ``--loop-k`` times the loop on fewer models (ratio per model). The proxies are
``compute_scores`` on an ordinary ``train_run`` of the same model on the same subset; their cost is
their seconds as a fraction of the ensemble's memorization wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from _common import bare_matmul_flops, macs_per_example

from unlearnkit import TrainConfig, load_dataset, train_run
from unlearnkit.data import DataBundle
from unlearnkit.difficulty.memorization import MemorizationWarning, estimate_memorization
from unlearnkit.runs import new_model


def subset(data: DataBundle, n: int) -> DataBundle:
    """The first ``n`` training rows (Fashion-MNIST's files are already shuffled)."""
    return dataclasses.replace(
        data, x_train=data.x_train[:n], y_train=data.y_train[:n], index_train=data.index_train[:n]
    )


def timed_estimate(data, model, mode, k, epochs, width, args, root: Path) -> tuple[float, dict]:
    out = root / f"{model}-{width}-{mode}-{k}"
    start = time.perf_counter()
    res = estimate_memorization(
        data, model, k=k, epochs=epochs, seed=args.seed, out=out, cfg=TrainConfig(lr=args.lr),
        model_kwargs={"width": width}, ensemble=mode, block_size=args.block_size if mode == "stacked" else None,
        threads=args.threads, quiet=True,
    )
    return time.perf_counter() - start, res


def compare(name, data, model, width, k, loop_k, epochs, args, root, peak) -> dict:
    """Time the ensemble on ``k`` models and the loop on ``loop_k``; FLOP/s of each."""
    macs = macs_per_example(new_model(model, data, {"width": width}), data.x_train)
    m = round(0.7 * data.n_train)
    flops_per_model = epochs * m * 6 * macs + data.n_train * 2 * macs
    ens_s, res = timed_estimate(data, model, "stacked", k, epochs, width, args, root)
    loop_s, _ = timed_estimate(data, model, "loop", loop_k, epochs, width, args, root)
    ens_per, loop_per = ens_s / k, loop_s / loop_k
    return {
        "case": name,
        "models (ens/loop)": f"{k}/{loop_k}",
        "epochs": epochs,
        "ensemble s": round(ens_s, 1),
        "loop s": round(loop_s, 1),
        "s/model ens": round(ens_per, 3),
        "s/model loop": round(loop_per, 3),
        "loop/ensemble": round(loop_per / ens_per, 2),
        "ens GFLOP/s": round(flops_per_model / ens_per / 1e9, 1),
        "ens/matmul": round(flops_per_model / ens_per / peak, 2),
        "loop/matmul": round(flops_per_model / loop_per / peak, 2),
        "split-half": res.reliability["split_half_spearman"],
        "_res": res,
        "_seconds": ens_s,
    }


def proxies(data, args, mem: pd.DataFrame, mem_seconds: float, root: Path) -> pd.DataFrame:
    from unlearnkit.difficulty import compute_scores

    start = time.perf_counter()
    run = train_run(
        data, "mlp", TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed), root / "run",
        model_kwargs={"width": args.width}, device="cpu",
    )
    train_s = time.perf_counter() - start
    scores = compute_scores(run, "all", device="cpu")
    merged = scores.merge(mem[["index", "memorization"]], on="index")
    rows = [{"score": "(train_run with dynamics)", "spearman": None, "seconds": round(train_s, 2),
             "cost/memorization": round(train_s / mem_seconds, 4)}]
    for col, sec in scores.attrs["seconds"].items():
        if col not in merged:
            continue
        ok = merged[col].notna() & merged["memorization"].notna()
        rho = merged.loc[ok, col].corr(merged.loc[ok, "memorization"], method="spearman")
        rows.append({"score": col, "spearman": round(float(rho), 3), "seconds": round(sec, 2),
                     "cost/memorization": round(sec / mem_seconds, 4)})
    skipped = scores.attrs.get("skipped", {})
    for col, why in skipped.items():
        rows.append({"score": col, "spearman": None, "seconds": None, "cost/memorization": f"skipped: {why}"})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--n", type=int, default=10000, help="training examples (first n of the split)")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--loop-k", type=int, default=None, help="models timed in the loop (default: --k)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--cnn-k", type=int, default=8)
    ap.add_argument("--cnn-epochs", type=int, default=2)
    ap.add_argument("--cnn-width", type=int, default=16)
    ap.add_argument("--tiny-k", type=int, default=32, help="models of a width-32 mlp (0: skip)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-cnn", action="store_true")
    ap.add_argument("--no-proxies", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore", MemorizationWarning)

    data = subset(load_dataset(args.dataset), args.n)
    # The first optimizer imports torch._dynamo (seconds); pay it before anything is timed.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch.set_num_threads(args.threads)
    peak = bare_matmul_flops(reps=5)
    print(f"{args.dataset}: {data.n_train} training examples; {args.threads} threads per model; "
          f"bare matmul {peak / 1e9:.1f} GFLOP/s; cpu_count {os.cpu_count()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        main_row = compare(f"mlp w{args.width}", data, "mlp", args.width, args.k, args.loop_k or args.k,
                           args.epochs, args, root, peak)
        rows.append(main_row)
        if args.tiny_k:
            rows.append(compare("mlp w32", data, "mlp", 32, args.tiny_k, args.tiny_k, args.epochs, args, root, peak))
        if not args.no_cnn:
            rows.append(compare(f"cnn w{args.cnn_width}", data, "cnn", args.cnn_width, args.cnn_k, args.cnn_k,
                                args.cnn_epochs, args, root, peak))
        table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        print("\nEnsemble (stacked) vs one model at a time (loop through training.train):")
        print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
        rel = main_row["_res"].reliability
        print(f"\nsplit-half reliability ({args.k} mlp models): Spearman {rel['split_half_spearman']} "
              f"over {rel['n_examples']} examples; Spearman-Brown {rel['spearman_brown']}")
        if not args.no_proxies:
            mem = main_row["_res"].table
            prox = proxies(data, args, mem, main_row["_seconds"], root)
            print(f"\nProxies vs memorization ({args.k} mlp models, {main_row['_seconds']:.1f} s):")
            print(prox.to_markdown(index=False) if _has_tabulate() else prox.to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
