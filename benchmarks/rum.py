"""RUM on Fashion-MNIST: do refinement and meta-unlearning beat unlearning S in one go?

For memorization low / medium / high / mix forget sets and several seeds, compares
vanilla (one step on all of S), shuffle (3 random groups in sequence), RUM^F (the
memorization groups low -> medium -> high, same method) for each base method, and RUM
(method per group chosen on a validation forget set among none + the base methods).
Scores: ToW and ToW-MIA against a model retrained on D minus S (same seed), mean and
95% CI over seeds, plus unlearning seconds. All rows go to a CSV.

Memorization is estimated with ``estimate_memorization`` on the training subset (SPEC §2);
``--proxy`` uses the confidence proxy instead (RUM's C-proxy) when that is too slow.

Reduced run (the default, ~15 min on 2 idle cores):
    .venv/bin/python benchmarks/rum.py
Closer to the paper (hours): --n-train 60000 --mem-k 400 --forget-size 3000 --unlearn-epochs 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from unlearnkit import load_dataset
from unlearnkit.data import ForgetSet
from unlearnkit.difficulty import forget_by_score, score_run
from unlearnkit.meta import retrain_reference, rum
from unlearnkit.metrics import tow_mia, tug_of_war
from unlearnkit.metrics.evaluate import evaluate_model
from unlearnkit.metrics.stats import mean_ci
from unlearnkit.runs import train_run
from unlearnkit.training import TrainConfig


def subset_npz(out: Path, n_train: int, n_test: int, seed: int) -> str:
    """A class-stratified random subset of Fashion-MNIST as ``npz:PATH`` (so runs can reload it)."""
    full = load_dataset("fashion-mnist", val_fraction=0.0)
    rng = np.random.default_rng(seed)

    def pick(y: torch.Tensor, n: int) -> np.ndarray:
        y = y.numpy()
        per = [rng.permutation(np.flatnonzero(y == c))[: n // 10] for c in range(10)]
        return np.sort(np.concatenate(per))

    tr, te = pick(full.y_train, n_train), pick(full.y_test, n_test)
    path = out / f"fmnist_{n_train}_{n_test}_{seed}.npz"
    if not path.exists():
        np.savez(path, x=full.x_train[tr].numpy(), y=full.y_train[tr].numpy(),
                 x_test=full.x_test[te].numpy(), y_test=full.y_test[te].numpy())
    return f"npz:{path}"


def scores_for(run, args, work: Path) -> str:
    """Write memorization (or the confidence proxy) into the run's scores.parquet; returns the column."""
    if args.proxy:
        print("note: --proxy: refining and building forget sets by the confidence proxy, not memorization")
        score_run(run, "confidence")
        return "confidence"
    from unlearnkit.difficulty.memorization import estimate_memorization

    start = time.perf_counter()
    res = estimate_memorization(
        run.data, args.model, k=args.mem_k, fraction=0.7, epochs=args.mem_epochs, seed=0, out=work / "mem",
        cfg=TrainConfig(**run.meta["train"]), model_kwargs={"width": args.width},
    )
    print(f"memorization: K={args.mem_k} models in {time.perf_counter() - start:.0f} s; "
          f"split-half reliability {res.reliability}")
    score_run(run, "memorization", memorization_dir=work / "mem")
    return "memorization"


def measure(model, data, forget: ForgetSet, mia_n: int, seed: int) -> dict[str, float]:
    """Accuracies on S, D \\ S, test and MIA-efficacy on S (what ToW / ToW-MIA compare)."""
    m = evaluate_model(model, data, forget, mia_max_per_side=mia_n, seed=seed).metrics
    return {"forget": m["forget_acc"], "retain": m["retain_acc"], "test": m["test_acc"], "mia": m["mia_efficacy"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("benchmarks/_rum_work"))
    p.add_argument("--n-train", type=int, default=6000, help="training subset (before the 10%% validation split)")
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--model", default="mlp")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10, help="epochs of the original and the references")
    p.add_argument("--mem-k", type=int, default=40, help="models of the memorization estimate")
    p.add_argument("--mem-epochs", type=int, default=10)
    p.add_argument("--proxy", action="store_true", help="confidence proxy instead of memorization")
    p.add_argument("--forget-size", type=int, default=300)
    p.add_argument("--levels", default="low,medium,high,mix")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="finetune,neggrad_plus,salun,l1_sparse")
    p.add_argument("--variants", default="vanilla,shuffle,rum_f,rum")
    p.add_argument("--retain", default="rum", choices=("rum", "strict"),
                   help="retain policy per step (rum = the paper's code; under strict, sequential finetune "
                        "never reads S, so RUM^F and shuffle coincide for it)")
    p.add_argument("--unlearn-epochs", type=int, default=3, help="epochs of every method (0 = their defaults)")
    p.add_argument("--mia-per-side", type=int, default=1000)
    p.add_argument("--csv", type=Path, default=None, help="all rows (default WORK/rum_results.csv)")
    p.add_argument("--report", type=Path, nargs="+", default=None,
                   help="only print the tables from result CSVs of earlier runs (concatenated)")
    args = p.parse_args(argv)
    if args.report:
        report(pd.concat([pd.read_csv(f) for f in args.report], ignore_index=True), "memorization", args.retain)
        return
    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    name = subset_npz(args.work, args.n_train, args.n_test, seed=0)
    data = load_dataset(name)
    cfg = TrainConfig(epochs=args.epochs, lr=0.05, seed=0)
    run = train_run(data, args.model, cfg, args.work / "orig", model_kwargs={"width": args.width}, overwrite=True)
    print(f"{name}: {data.n_train} train / {len(data.y_test)} test; original test acc "
          f"{run.meta['results']['test_acc']:.4f} ({time.perf_counter() - t0:.0f} s)")
    score = scores_for(run, args, args.work)
    methods = args.methods.split(",")
    variants = args.variants.split(",")
    params = {"epochs": args.unlearn_epochs} if args.unlearn_epochs else {}
    rows = []
    out_csv = args.csv or args.work / "rum_results.csv"
    built: dict[str, np.ndarray] = {}
    for level in args.levels.split(","):
        fs = forget_by_score(run, score, level, args.forget_size, seed=0)
        for other, idx in built.items():
            if np.array_equal(idx, fs.indices):
                print(f"note: level {level} selects the same examples as {other} (with a weak estimate "
                      f"few examples reach memorization 0.5, RUM's 'medium' center); its rows repeat {other}'s")
        built[level] = fs.indices
        print(f"\n[{level}] |S|={len(fs)}, mean {score} {fs.meta['score_stats']['mean']:.3f}, ES {fs.meta.get('es', float('nan')):.1f}")
        for seed in map(int, args.seeds.split(",")):
            ref_model = retrain_reference(run, fs, seed=seed).model
            ref = measure(ref_model, data, fs, args.mia_per_side, seed)
            configs = [(v, meth) for v in variants if v != "rum" for meth in methods]
            if "rum" in variants:
                configs.append(("rum", "search"))
            for variant, method in configs:
                kw = ({"candidates": {"none": {}, **{mm: params for mm in methods}}} if variant == "rum"
                      else {"methods": method, "params": params})
                res = rum(run, fs, refine_by=score, variant=variant, retain=args.retain, seed=seed, **kw)
                got = measure(res.model, data, fs, args.mia_per_side, seed)
                row = {"level": level, "seed": seed, "variant": variant, "method": method,
                       "chosen": ",".join(res.methods[g] for g in res.order) if variant == "rum" else method,
                       "seconds": res.seconds, "search_seconds": res.search_seconds,
                       "tow": tug_of_war(got, ref), "tow_mia": tow_mia(got, ref),
                       **{f"{k}_acc": v for k, v in got.items()},
                       **{f"ref_{k}_acc": v for k, v in ref.items()}}
                rows.append(row)
                print(f"  seed {seed} {variant:8s} {method:13s} ToW {row['tow']:.4f} ToW-MIA {row['tow_mia']:.4f} "
                      f"({row['seconds']:.1f} s) {row['chosen'] if variant == 'rum' else ''}"
                      f"   [{time.perf_counter() - t0:.0f} s]", flush=True)
        pd.DataFrame(rows).to_csv(out_csv, index=False)  # partial results survive an interrupted run
    df = pd.DataFrame(rows)
    report(df, score, args.retain)
    print(f"\nall rows -> {out_csv}; total {time.perf_counter() - t0:.0f} s (shared machine: timings are noisy)")


def fmt(values) -> str:
    m, lo, hi = mean_ci(values)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if not np.isnan(lo) else f"{m:.3f}"


def report(df: pd.DataFrame, score: str, retain: str) -> None:
    """Mean [95% CI] per level and configuration, then the published claims side by side."""
    print(f"\nToW and ToW-MIA, mean [95% CI] over seeds; forget sets by {score}; retain policy {retain}")
    print(f"{'level':7s} {'variant':8s} {'method':13s} {'ToW':>22s} {'ToW-MIA':>22s} {'s':>6s}  chosen (RUM)")
    for (level, variant, method), g in df.groupby(["level", "variant", "method"], sort=False):
        chosen = " | ".join(sorted(set(g["chosen"]))) if variant == "rum" else ""
        print(f"{level:7s} {variant:8s} {method:13s} {fmt(g['tow']):>22s} {fmt(g['tow_mia']):>22s} "
              f"{g['seconds'].mean():6.1f}  {chosen}")
    print("\nClaims (RUM paper: RUM^F and RUM beat vanilla, most on high memorization), mean ToW:")
    for level, g in df.groupby("level", sort=False):
        mean = g.groupby(["variant", "method"])["tow"].mean()
        parts = []
        for method in g.loc[g["variant"] == "vanilla", "method"].unique():
            van, rf = mean.get(("vanilla", method)), mean.get(("rum_f", method))
            sh = mean.get(("shuffle", method))
            if van is not None and rf is not None:
                parts.append(f"{method}: RUM^F-vanilla {rf - van:+.3f}" + (f", shuffle-vanilla {sh - van:+.3f}" if sh is not None else ""))
        if ("rum", "search") in mean.index:
            best_van = mean.xs("vanilla", level="variant").max() if "vanilla" in mean.index.get_level_values(0) else np.nan
            parts.append(f"RUM - best vanilla {mean[('rum', 'search')] - best_van:+.3f}")
        print(f"  {level:7s} " + "; ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])
