"""Every unlearning method against retraining on one random 10% forget set: ToW, MIA gap and
wall time as a ratio of retraining's, in one table (SPEC §4, §8).

    .venv/bin/python benchmarks/methods.py [--dataset fashion-mnist] [--model mlp] [--width 256]
                                           [--subset 10000] [--epochs 10] [--lr 0.05]
                                           [--forget-frac 0.1] [--methods ...] [--threads 1] [--seed 0]

The original trains on ``--subset`` random training examples (the rest are recorded as
excluded, so every method and the reference see the same D); 0 = the whole training set.
The forget set is ``--forget-frac`` of them, drawn disjoint from the validation forget set
``unlearnkit tune`` uses (size ``--val-size``, seed ``--val-seed``), so the shipped presets
were not tuned on it. Methods run with their dataset preset (class defaults otherwise).
Target (NeurIPS 2023 challenge cut-off): the best approximate method reaches ToW >= 0.95 in
<= 20% of retraining's wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearnkit import TrainConfig, load_dataset, train_run
from unlearnkit.data import ForgetSet
from unlearnkit.methods import METHODS, retain_positions, unlearn_from_run
from unlearnkit.meta.tune import validation_forget_set
from unlearnkit.metrics import mia_efficacy, tug_of_war
from unlearnkit.training import predict_logits

DEFAULT_METHODS = [
    "finetune", "neggrad", "neggrad_plus", "random_label", "l1_sparse", "scrub", "salun",
    "influence", "boundary_shrink",
]


def p_true(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, float]:
    """True-label confidence ``[n]`` and accuracy."""
    logits = predict_logits(model, x)
    return torch.softmax(logits, 1).gather(1, y[:, None])[:, 0].numpy(), float((logits.argmax(1) == y).float().mean())


def measure(model, data, fp, rp, mia_per_side: int, seed: int) -> dict[str, float]:
    """forget/retain/test accuracy and MIA-efficacy (SVC on retain vs test confidences)."""
    cf, af = p_true(model, data.x_train[fp], data.y_train[fp])
    cr, ar = p_true(model, data.x_train[rp], data.y_train[rp])
    ct, at = p_true(model, data.x_test, data.y_test)
    return {"forget": af, "retain": ar, "test": at, "mia": mia_efficacy(cr, ct, cf, max_per_side=mia_per_side, seed=seed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--subset", type=int, default=10000, help="training examples the original uses (0 = all)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--forget-frac", type=float, default=0.1)
    ap.add_argument("--val-size", type=int, default=1000, help="tune's validation forget set size (avoided)")
    ap.add_argument("--val-seed", type=int, default=1000, help="tune's validation forget set seed (avoided)")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--mia-per-side", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is far faster on a shared CPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for m in args.methods:
        METHODS.get(m)

    data = load_dataset(args.dataset)
    idx = data.index_train.numpy()
    # Same subset rule as the fashion-mnist preset's original run (seed 0 choice of --subset).
    keep = np.random.default_rng(0).choice(idx, args.subset, replace=False) if args.subset else idx
    exclude = np.setdiff1d(idx, keep)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        run = train_run(data, args.model, cfg, Path(tmp) / "orig", model_kwargs={"width": args.width}, exclude=exclude)
        val = validation_forget_set(run, args.val_size, args.val_seed)
        pool = np.setdiff1d(keep, val.indices)
        n_forget = round(args.forget_frac * len(keep))
        forget = ForgetSet(np.random.default_rng(args.seed + 1).choice(pool, n_forget, replace=False),
                           {"kind": "random", "seed": args.seed + 1})
        fp = forget.positions(data)
        rp = retain_positions(run, fp)
        print(f"{args.dataset}, {args.model} width {args.width}, original: {len(keep)} training examples, "
              f"{args.epochs} epochs (lr {args.lr}, {run.meta['results']['seconds']:.1f} s); forget set {len(forget)} "
              f"random (disjoint from tune's validation set); {torch.get_num_threads()} threads; seed {args.seed}")
        t0 = time.perf_counter()
        ref = unlearn_from_run(run, forget, "retrain", seed=args.seed)
        ref_m = measure(ref.model, data, fp, rp, args.mia_per_side, args.seed)
        orig_m = measure(run.model, data, fp, rp, args.mia_per_side, args.seed)
        rows = [("original", orig_m, float("nan"), 0)]
        for m in args.methods:
            out = unlearn_from_run(run, forget, m, seed=args.seed)
            rows.append((m, measure(out.model, data, fp, rp, args.mia_per_side, args.seed), out.seconds, out.examples_processed))
        rows.insert(0, ("retrain", ref_m, ref.seconds, ref.examples_processed))
    head = f"{'method':16s} {'forget':>7s} {'retain':>7s} {'test':>7s} {'ToW':>7s} {'MIA':>7s} {'MIA gap':>8s} {'seconds':>8s} {'time/RT':>8s} {'work/RT':>8s}"
    print(head)
    print("-" * len(head))
    best = None
    for name, mm, secs, work in rows:
        tow = tug_of_war(mm, ref_m)
        ratio = secs / ref.seconds
        print(f"{name:16s} {mm['forget']:7.4f} {mm['retain']:7.4f} {mm['test']:7.4f} {tow:7.4f} {mm['mia']:7.4f} "
              f"{abs(mm['mia'] - ref_m['mia']):8.4f} {secs:8.2f} {ratio:8.3f} {work / ref.examples_processed:8.3f}")
        if name not in ("retrain", "original") and ratio <= 0.2 and (best is None or tow > best[1]):
            best = (name, tow, ratio)
    print(f"total {time.perf_counter() - t0:.1f} s (machine shared with other jobs: wall times are noisy)")
    if best:
        ok = "MET" if best[1] >= 0.95 else "NOT met"
        print(f"best approximate method within 20% of retrain time: {best[0]} ToW {best[1]:.4f} at {best[2]:.3f}x -> target {ok}")
    else:
        print("no approximate method ran within 20% of retrain time -> target NOT met")


if __name__ == "__main__":
    main()
