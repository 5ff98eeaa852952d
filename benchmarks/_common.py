"""What the benchmark scripts share: the arguments of the recipe every one trains with, and
the set-up they imply (not a benchmark itself; `make bench` runs it as a no-op)."""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from unlearnkit import TrainConfig, load_dataset
from unlearnkit.data import DataBundle


def recipe_parser(description: str) -> argparse.ArgumentParser:
    """A parser with --dataset, --model, --width, --epochs, --lr, --threads and --seed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def setup(args: argparse.Namespace) -> tuple[DataBundle, TrainConfig, dict, np.random.Generator]:
    """Pin the thread count; return (data, recipe, model kwargs, rng seeded by --seed)."""
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed)
    return data, cfg, {"width": args.width}, np.random.default_rng(args.seed)


def best_of(fn: Callable[[], object], reps: int = 3) -> float:
    """Fastest wall time of ``reps`` calls of ``fn`` in seconds, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bare_matmul_flops(size: int = 2048, reps: int = 3) -> float:
    """FLOP/s of a bare float32 ``size x size`` matmul at the current torch thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_of(lambda: a @ b, reps)


def macs_per_example(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on one example (conv and linear layers)."""
    total = 0

    def hook(mod: nn.Module, inp, out) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x[:1])
    for h in handles:
        h.remove()
    return total
