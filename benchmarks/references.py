"""N retrained references for per-example ε and KLoM: the ensemble engine vs the plain loop,
and the population metrics they feed, on the demo's setting (digits, mlp, the demo's recipe).

    .venv/bin/python benchmarks/references.py [--n 16] [--forget 60] [--method finetune] [--threads 1]

In this one process, side by side:

1. N oracles (retrained on D minus a random forget set, seeds 0..N-1) with
   :func:`unlearnkit.ensembles.train_ensemble` in ``mode="stacked"`` and in
   ``mode="loop"`` (one ``training.train`` per member): wall time of each and their ratio,
   and the largest logit difference between the two (they train the same members).
2. N originals (all training rows, seeds 0..N-1, stacked), each unlearned with
   ``--method`` (its digits preset): per-example ε on the forget set (exact families and
   the challenge scorer's grid, bucket points truncated at ceil(log(N - 1))), forget
   quality, the final score and KLoM's 95th percentile on forget / retain / validation. The originals
   themselves (no unlearning) are scored the same way as the do-nothing baseline, and a
   second set of N oracles (seeds N..2N-1) as the floor: what retraining itself scores
   against the oracles (the metrics' sampling noise at this N). The scores are those of the
   bench's ``population:`` block (``unlearnkit.experiments.population.population_scores``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from unlearnkit import TrainConfig, load_dataset
from unlearnkit.data.forget import random_forget_set
from unlearnkit.ensembles import train_ensemble
from unlearnkit.experiments.population import Outputs, population_scores
from unlearnkit.methods.api import unlearn
from unlearnkit.methods.base import preset_for
from unlearnkit.runs import new_model
from unlearnkit.training import predict_logits

# The demo's original recipe (src/unlearnkit/configs/demo.yaml).
RECIPE = dict(epochs=30, lr=0.1, batch_size=32, weight_decay=0.0)
WIDTH = 64


def outputs(models, parts) -> Outputs:
    """Margins (forget / retain / val) and accuracies (forget / retain / test) of ``models``."""
    return Outputs.of(lambda x: torch.stack([predict_logits(m, x) for m in models]), parts, len(models))


def score(name: str, unl: Outputs, ora: Outputs) -> None:
    s = population_scores(unl, ora, scorer_grid=True)  # what the bench's population block reports
    print(f"{name:>22}: eps mean {s['epsilon_mean']:.3f}, F {s['forget_quality']:.3f} "
          f"(grid {s['forget_quality_grid']:.3f}), final score {s['final_score']:.3f}; KLoM p95 forget "
          f"{s['klom_forget']:.3f} retain {s['klom_retain']:.3f} val {s['klom_val']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--forget", type=int, default=60)
    ap.add_argument("--method", default="finetune")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    fs = random_forget_set(data, args.forget, seed=0)
    f_pos = fs.check(data)
    retain = data.complement(f_pos)
    cfg = TrainConfig(**RECIPE)
    seeds = list(range(args.n))

    def build():
        return new_model("mlp", data, {"width": WIDTH})

    # Every member trains on the same rows (D minus S); only the seed differs.
    subsets = [retain] * args.n
    timings = {}
    ens = {}
    for mode in ("stacked", "loop"):
        t = time.perf_counter()
        ens[mode] = train_ensemble(build, data.x_train, data.y_train, subsets, cfg, seeds, mode=mode,
                                   measure_fit=False, desc=f"oracles ({mode})")
        timings[mode] = time.perf_counter() - t
    diff = (ens["stacked"].logits(data.x_test) - ens["loop"].logits(data.x_test)).abs().max().item()
    print(f"N = {args.n} oracles, digits mlp width {WIDTH}, {RECIPE['epochs']} epochs, {len(retain)} rows, "
          f"{args.threads} thread(s)")
    print(f"  ensemble engine (stacked) {timings['stacked']:.1f} s, plain loop {timings['loop']:.1f} s: "
          f"{timings['loop'] / timings['stacked']:.2f}x; max |logit difference| {diff:.2e}")

    t = time.perf_counter()
    originals = train_ensemble(build, data.x_train, data.y_train, [np.arange(data.n_train)] * args.n, cfg, seeds,
                               mode="stacked", measure_fit=False, desc="originals").members()
    params = preset_for("digits", args.method, "mlp")
    unlearned = [unlearn(m, data, fs, args.method, params, seed=s).model for s, m in zip(seeds, originals)]
    print(f"  {args.n} originals (stacked) + {args.n} x {args.method} {params}: {time.perf_counter() - t:.1f} s")

    parts = {"forget": (data.x_train[f_pos], data.y_train[f_pos]), "retain": (data.x_train[retain], data.y_train[retain]),
             "val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
    ora = outputs(ens["stacked"].members(), parts)
    second = train_ensemble(build, data.x_train, data.y_train, subsets, cfg, [args.n + s for s in seeds],
                            mode="stacked", measure_fit=False, desc="second oracles").members()
    score(f"{args.method}", outputs(unlearned, parts), ora)
    score("original (no unlearning)", outputs(originals, parts), ora)
    score("retrain (other seeds)", outputs(second, parts), ora)


if __name__ == "__main__":
    main()
