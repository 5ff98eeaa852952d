"""The ensemble engine vs the plain loop: wall time and achieved FLOP/s, mlp and cnn, M = 16 and 64.

    .venv/bin/python benchmarks/ensemble.py [--dataset fashion-mnist] [--models mlp,cnn] [--members 16,64]
        [--mlp-n 2000] [--cnn-n 512] [--cnn-width 8] [--epochs 1] [--batch-size 64] [--loop-members 8] [--threads 2]
        [--device cpu]

For each model and M, in this one process, side by side: :func:`unlearnkit.ensembles.train_ensemble`
trains M members in one stacked network (``mode="stacked"``), and the same call with ``mode="loop"``
trains them one after another through ``training.train`` (timed on ``--loop-members`` of them,
scaled per member). Every member trains on its own random subset of ``--mlp-n`` / ``--cnn-n`` rows.
Both get ``--threads`` torch threads: the loop splits each kernel over them; the stacked network
trains that many groups of members side by side, one thread each (``train_ensemble`` on a CPU).

Times are medians over ``--repeats`` ensemble/loop pairs timed back to back, each pair after its
own measurement of the bare kernel (the ratio columns: the median per-pair ratio and its range).
Achieved FLOP/s = 3 x 2 x multiply-accumulates per example (forward + backward ~ 3 forward passes)
x examples processed / wall time; wall time includes each call's set-up (stacking, optimizer).
Neither path computes the first layer's input gradient, so the mlp's real work is nearer two
forward passes: the count flatters both columns alike. It is divided by a bare kernel's FLOP/s
measured here with the same threads: a 2048 x 2048 float32 matmul for the mlp, and for the cnn a dense 3x3 convolution
(64 -> 64 channels, 14 x 14, batch 64) forward and backward. Targets on 2 CPU cores: the ensemble
>= 1.5x faster than the loop for both models; >= 0.8 of the bare matmul's FLOP/s for the mlp.

For the mlp on a CPU, two more columns bound what any engine built on these kernels can reach
(:func:`mlp_step_seconds`): ``kernels/bare``, the same groups' step matmuls alone, side by side on
the threads; ``kernels+update/bare``, the same with the recipe's fused optimizer step (SGD with
momentum, lr 0.05) over the same tensors. Neither has the engine's gather, loss, set-up or Python.
"""

from __future__ import annotations

import argparse
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from _common import bare_matmul_flops, best_of, macs_per_example
from torch import nn

from unlearnkit import TrainConfig, load_dataset
from unlearnkit.ensembles import plan_groups, train_ensemble
from unlearnkit.runs import new_model
from unlearnkit.training import make_optimizer


def bare_conv_flops(c: int = 64, hw: int = 14, batch: int = 64) -> float:
    x = torch.randn(batch, c, hw, hw, requires_grad=True)
    w = torch.randn(c, c, 3, 3, requires_grad=True)

    def step() -> None:
        F.conv2d(x, w, padding=1).sum().backward()

    macs = batch * c * hw * hw * c * 9
    return 3 * 2 * macs / best_of(step)


def mlp_step_seconds(model: nn.Module, groups: list[list[int]], batch: int, steps: int, cfg: TrainConfig,
                     update: bool, threads: int) -> float:
    """Seconds of ``steps`` steps of the stacked mlp's batched matmuls alone, for every group
    of ``groups`` side by side on ``threads`` threads as the engine runs them: per Linear layer
    [g, b, in] x [g, in, out] forward, the weight gradient, and the input gradient of every layer
    but the first; with ``update``, also the recipe's fused optimizer step over the same tensors.
    No data gather, loss, activations or Python of the engine: a bound for any engine built on
    these kernels (random values; the speed of these kernels does not depend on them). The time
    excludes setting up the tensors: the groups' step times summed over the threads, divided by
    their number (the engine's groups are balanced over them)."""
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]

    def one(g: int) -> float:
        torch.set_num_threads(1)
        w = [torch.randn(g, i, o) * 0.05 for i, o in shapes]
        bias = [torch.zeros(g, o) for _, o in shapes]
        h = [torch.randn(g, batch, shapes[0][0])] + [torch.empty(g, batch, o) for _, o in shapes]
        dh = [torch.empty(g, batch, i) for i, _ in shapes]
        dlogits = torch.randn(g, batch, shapes[-1][1]) / batch  # the size of (softmax - one-hot) / b
        for t in w + bias:
            t.grad = torch.zeros_like(t)
        opt = make_optimizer(w + bias, cfg, fused=True) if update else None

        @torch.no_grad()
        def step() -> None:
            for layer, wl in enumerate(w):
                torch.bmm(h[layer], wl, out=h[layer + 1])
            dh_next = dlogits
            for layer in range(len(w) - 1, -1, -1):
                torch.bmm(h[layer].transpose(1, 2), dh_next, out=w[layer].grad)
                torch.sum(dh_next, 1, out=bias[layer].grad)
                if layer:
                    dh_next = torch.bmm(dh_next, w[layer].transpose(1, 2), out=dh[layer])
            if opt is not None:
                opt.step()

        step()  # untimed: the optimizer allocates its state on its first step
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - start

    seconds = sum(thread_pool(threads).map(one, [len(g) for g in groups]))
    torch.set_num_threads(threads)
    return seconds / min(threads, len(groups))


@functools.cache
def thread_pool(threads: int) -> ThreadPoolExecutor:
    """One lasting pool, as the engine keeps one: a fresh thread maps its memory arena page by page."""
    return ThreadPoolExecutor(threads)


def compare(name: str, data, width: int, m: int, n: int, loop_m: int, args, bare: Callable[[], float]) -> dict:
    """Ensemble and loop timed alternately ``--repeats`` times, the bare kernel (``bare()``,
    FLOP/s) measured just before each pair; the medians of the per-repeat ratios (each pair ran
    back to back beside its own bare kernel, so a machine that slows down mid-run moves all three)."""
    build = lambda: new_model(name, data, {"width": width})  # noqa: E731
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.permutation(data.n_train)[:n]) for _ in range(m)]
    cfg = TrainConfig(epochs=args.epochs, lr=0.05, batch_size=args.batch_size)
    seeds = list(range(m))
    k = min(loop_m, m)
    flops = 3 * 2 * macs_per_example(build(), data.x_train) * n * args.epochs
    pairs, bounds = [], []
    groups = plan_groups(build(), data.x_train[:2], m, cfg.batch_size, args.device)
    steps = args.epochs * -(-n // cfg.batch_size)
    for _ in range(args.repeats):
        peak = bare()
        if name == "mlp" and args.device == "cpu":
            bounds.append(tuple(flops * m / mlp_step_seconds(build(), groups, cfg.batch_size, steps, cfg, up,
                                                             args.threads) / peak for up in (False, True)))
        ens = train_ensemble(build, data.x_train, data.y_train, subsets, cfg, seeds, mode="stacked",
                             device=args.device, measure_fit=False)
        loop = train_ensemble(build, data.x_train, data.y_train, subsets[:k], cfg, seeds[:k], mode="loop",
                              device=args.device, measure_fit=False)
        pairs.append((ens.seconds / m, loop.seconds / k, peak))
    med = lambda v: float(np.median(v))  # noqa: E731
    ens_per = med([ep for ep, _, _ in pairs])
    speedups = sorted(lp / ep for ep, lp, _ in pairs)
    ens_bare = sorted(flops / ep / b for ep, _, b in pairs)
    return {"model": name, "M": m, "ens_s": ens_per * m, "loop_s_per_member": med([lp for _, lp, _ in pairs]),
            "speedup": med(speedups), "range": (speedups[0], speedups[-1]), "ens_flops": flops / ens_per,
            "ens_bare": med(ens_bare), "ens_bare_range": (ens_bare[0], ens_bare[-1]),
            "loop_bare": med([flops / lp / b for _, lp, b in pairs]), "bare": [b for _, _, b in pairs],
            "groups": len(groups), "bounds": tuple(med(v) for v in zip(*bounds)) if bounds else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--members", default="16,64")
    ap.add_argument("--mlp-n", type=int, default=2000)
    ap.add_argument("--mlp-width", type=int, default=256)
    ap.add_argument("--cnn-n", type=int, default=512)
    ap.add_argument("--cnn-width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64, help="the memorization recipes' batch")
    ap.add_argument("--loop-members", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3, help="ensemble/loop pairs timed per row (median shown)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    kernels = {"mlp": bare_matmul_flops, "cnn": bare_conv_flops}
    models = [(name, width, n) for name, width, n in (("mlp", args.mlp_width, args.mlp_n),
                                                      ("cnn", args.cnn_width, args.cnn_n))
              if name in args.models.split(",")]
    # Untimed warm-up at the timed shapes: the first fused optimizer of a process imports torch's
    # compiler stack (~1 s), and each kernel (and each thread's memory) sets itself up on first use.
    for name, width, _ in models:
        kernels[name]()
        m = 4 * args.threads
        for mode in ("stacked", "loop"):
            train_ensemble(lambda: new_model(name, data, {"width": width}), data.x_train, data.y_train,  # noqa: B023
                           [np.arange(2 * args.batch_size)] * m,
                           TrainConfig(epochs=1, lr=0.05, batch_size=args.batch_size), list(range(m)), mode=mode, device=args.device, measure_fit=False)
    if args.device == "cpu" and "mlp" in args.models.split(","):
        mlp_step_seconds(new_model("mlp", data, {"width": args.mlp_width}), [list(range(4))] * args.threads,
                         args.batch_size, 2, TrainConfig(lr=0.05), True, args.threads)
    rows = []
    for name, width, n in models:
        for m in (int(v) for v in args.members.split(",")):
            rows.append(compare(name, data, width, m, n, args.loop_members, args, kernels[name]))
    seen = {name: [b / 1e9 for r in rows if r["model"] == name for b in r["bare"]] for name, _, _ in models}
    bare = ", ".join(f"bare {'matmul' if name == 'mlp' else 'conv'} {min(v):.1f}-{max(v):.1f} GFLOP/s"
                     for name, v in seen.items())
    print(f"{args.dataset}, {args.threads} threads, device {args.device}, {args.epochs} epoch(s), "
          f"batch {args.batch_size}; {bare} (measured before each pair)")
    print(f"\n| model | M | groups | rows/member | ensemble s | loop s/member | loop/ensemble (range) | ens GFLOP/s "
          f"| ens/bare (range) | loop/bare | kernels/bare | kernels+update/bare |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n = args.mlp_n if r["model"] == "mlp" else args.cnn_n
        bound = " | ".join(f"{v:.2f}" for v in r["bounds"]) if r["bounds"] else "- | -"
        print(f"| {r['model']} | {r['M']} | {r['groups']} | {n} | {r['ens_s']:.2f} | {r['loop_s_per_member']:.3f} | "
              f"{r['speedup']:.2f}x ({r['range'][0]:.2f}-{r['range'][1]:.2f}) | {r['ens_flops'] / 1e9:.1f} | "
              f"{r['ens_bare']:.2f} ({r['ens_bare_range'][0]:.2f}-{r['ens_bare_range'][1]:.2f}) | "
              f"{r['loop_bare']:.2f} | {bound} |")


if __name__ == "__main__":
    main()
