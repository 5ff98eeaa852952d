"""Throughput of the training loop against a bare forward+backward+SGD loop.

Question: what do ``unlearnkit.training.train``'s data path, schedule, progress
bookkeeping and per-example dynamics recording cost? For each model (mlp, cnn)
on Fashion-MNIST, both loops run the same model (same initial weights, same
memory format) on the same batches (same permutations, batch size and number
of steps); the bare loop is ``forward -> cross-entropy -> backward -> SGD
step`` and nothing else. Printed side by side: examples/s of each, their ratio
(target >= 0.9) and the peak extra resident memory of each phase (RSS sampled
every 5 ms, above the RSS before the phase), plus the process's peak RSS
(``resource.getrusage``). Runs are interleaved (bare, train, bare, train, ...)
and the best of ``--repeats`` is kept, which damps the noise of a shared machine.

    python benchmarks/train_throughput.py --subset 10000 --epochs 2
"""

from __future__ import annotations

import argparse
import math
import resource
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from unlearnkit import load_dataset
from unlearnkit.runs import new_model
from unlearnkit.training import TrainConfig, make_optimizer, seed_everything, train

PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@contextmanager
def peak_rss(result: dict) -> Iterator[None]:
    """Record in ``result["peak_mb"]`` the peak RSS above the starting RSS while the body runs."""
    start, peak, stop = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        result["peak_mb"] = max(0, max(peak[0], rss_bytes()) - start) / 2**20


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> float:
    """forward + backward + SGD step on ``train``'s batches (same permutations); returns seconds."""
    gen = torch.Generator().manual_seed(cfg.seed)
    channels_last = x.dim() == 4
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model.parameters(), cfg)
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        for b in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            xb, yb = x[b], y[b]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def measure(model_name: str, data, x, y, cfg: TrainConfig, width: int | None, repeats: int) -> dict:
    """Best-of-``repeats`` examples/s of both loops (interleaved) and their peak extra RSS."""
    kwargs = {"width": width} if width else {}
    best = {"bare": math.inf, "train": math.inf}
    mem = {"bare": 0.0, "train": 0.0}
    warm = TrainConfig(**{**cfg.model_dump(), "epochs": 1})
    seed_everything(cfg.seed)
    bare_loop(new_model(model_name, data, kwargs), x[: 8 * cfg.batch_size], y[: 8 * cfg.batch_size], warm)
    for _ in range(repeats):
        for mode in ("bare", "train"):
            seed_everything(cfg.seed)
            model = new_model(model_name, data, kwargs)
            info: dict = {}
            with peak_rss(info):
                if mode == "bare":
                    seconds = bare_loop(model, x, y, cfg)
                else:
                    seconds = train(model, x, y, cfg, record_dynamics=True, quiet=True).seconds
            best[mode] = min(best[mode], seconds)
            mem[mode] = max(mem[mode], info["peak_mb"])
    n = cfg.epochs * len(x)
    return {
        "model": model_name,
        "bare_ex_s": n / best["bare"],
        "train_ex_s": n / best["train"],
        "ratio": best["bare"] / best["train"],
        "bare_peak_mb": mem["bare"],
        "train_peak_mb": mem["train"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", type=int, default=10000, help="training examples used (first N of the split)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--width", type=int, default=None, help="model width (default: the model's own)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions; the best is kept")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", data_root=args.data_root)
    x, y = data.x_train[: args.subset].contiguous(), data.y_train[: args.subset].contiguous()
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, seed=args.seed)
    print(
        f"fashion-mnist, {len(x)} examples x {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.threads} threads, best of {args.repeats} interleaved runs"
    )
    header = f"{'model':6} {'bare ex/s':>10} {'train ex/s':>11} {'ratio':>6} {'bare MB':>8} {'train MB':>9}"
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        r = measure(name, data, x, y, cfg, args.width, args.repeats)
        print(
            f"{r['model']:6} {r['bare_ex_s']:10.0f} {r['train_ex_s']:11.0f} {r['ratio']:6.2f} "
            f"{r['bare_peak_mb']:8.1f} {r['train_peak_mb']:9.1f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ratio = train ex/s / bare ex/s (target >= 0.9); MB = peak RSS above the phase's start; "
          f"process peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
