"""``unlearnkit train``."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnkit.cli.app import AMP, DATA_ROOT, DATASET, DEVICE, MODEL, OVERWRITE, QUIET, app, console, examples, flag
from unlearnkit.cli.params import parse_assignments


@app.command(epilog=examples(
    "unlearnkit train --dataset digits --model mlp --epochs 15 --out runs/orig",
    "unlearnkit train -d fashion-mnist -m cnn --epochs 3 --out runs/fm-cnn",
    "unlearnkit train -d cifar10 -m resnet18 -O pad32=false --augment --device cuda --out runs/c10",
))
def train(
    dataset: str = DATASET,
    model: str = MODEL,
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    epochs: int = typer.Option(10, "--epochs"),
    lr: float = typer.Option(0.05, "--lr"),
    batch_size: int = typer.Option(128, "--batch-size"),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd | adamw"),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | step | constant"),
    weight_decay: float = typer.Option(5e-4, "--weight-decay"),
    augment: bool = flag("--augment", help="Random crop (pad 4) + horizontal flip."),
    amp: bool = AMP,
    seed: int = typer.Option(0, "--seed"),
    until_fit: float = typer.Option(
        None, "--until-fit", help="Stop once the accuracy on the training rows reaches ACC in (0, 1] (--epochs: the cap)."
    ),
    fit_threshold: float = typer.Option(
        0.99, "--fit-threshold", help="Warn when the train accuracy is below this (memorization-based difficulty needs fit)."
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the validation split."),
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    width: int = typer.Option(None, "--width", help="Model width (hidden units / base channels)."),
    exclude: Path = typer.Option(None, "--exclude", help="Index file: train on D minus these."),
    option: list[str] = typer.Option(
        None, "--option", "-O", help="Dataset option KEY=VALUE, repeatable (e.g. -O pad32=true -O rgb=true)."
    ),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Train a model and write it as a run directory (weights, run.json, dynamics.parquet)."""
    from unlearnkit.cli.output import print_warning
    from unlearnkit.data import load_dataset
    from unlearnkit.difficulty.fit import check_fit
    from unlearnkit.io import read_index_file
    from unlearnkit.runs import train_run
    from unlearnkit.training import make_config

    cfg = make_config(
        epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, schedule=schedule,
        weight_decay=weight_decay, augment=augment, seed=seed, until_fit=until_fit, amp=amp,
    )
    check_fit(1.0, fit_threshold)  # a bad threshold fails before training
    excl = read_index_file(exclude)[0] if exclude else None
    data = load_dataset(
        dataset, data_root=data_root, val_fraction=val_fraction, split_seed=split_seed,
        **parse_assignments(option, "--option"),
    )
    run = train_run(
        data, model, cfg, out, model_kwargs={"width": width}, exclude=excl,
        device=device, quiet=quiet, overwrite=overwrite,
    )
    r = run.meta["results"]
    console.print(
        f"trained {model} on {dataset}: train {r['train_acc']:.4f}  val {r['val_acc']:.4f}  "
        f"test {r['test_acc']:.4f}  ({r['seconds']:.1f} s) -> {out}"
    )
    note = check_fit(r["train_acc"], fit_threshold, what="the train accuracy")
    if note:
        print_warning(note)
