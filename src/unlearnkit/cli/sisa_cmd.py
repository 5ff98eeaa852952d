"""``unlearnkit train-sisa``: train a SISA ensemble (shards x slices, checkpoint per slice).

Unlearning it is the generic ``unlearnkit unlearn --run DIR --method sisa``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnkit.cli.app import AMP, DATA_ROOT, DATASET, DEVICE, OVERWRITE, QUIET, app, console, examples


@app.command("train-sisa", epilog=examples(
    "unlearnkit train-sisa --dataset digits --model mlp --shards 5 --slices 5 --out runs/sisa",
    "unlearnkit unlearn --run runs/sisa --forget f.json --method sisa --out runs/sisa-u",
))
def train_sisa_cmd(
    dataset: str = DATASET,
    model: str = typer.Option("mlp", "--model", "-m", help="Registered base model of every shard."),
    shards: int = typer.Option(5, "--shards", help="Number of disjoint shards S (one model each)."),
    slices: int = typer.Option(5, "--slices", help="Slices R per shard (one checkpoint after each)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    epochs: int = typer.Option(10, "--epochs", help="Per-shard budget E; each slice stage runs ceil(2E/(R+1))."),
    lr: float = typer.Option(0.05, "--lr"),
    batch_size: int = typer.Option(128, "--batch-size"),
    seed: int = typer.Option(0, "--seed", help="Seeds the shard/slice assignment and every stage."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the validation split."),
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    width: int = typer.Option(None, "--width", help="Model width (hidden units / base channels)."),
    aggregation: str = typer.Option("vote", "--aggregation", help="vote (majority) | mean (probability)."),
    exclude: Path = typer.Option(None, "--exclude", help="Index file: these indices go in no shard."),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    amp: bool = AMP,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Train S shard models on R cumulative slices each and write the ensemble as a run."""
    from unlearnkit.data import load_dataset
    from unlearnkit.io import read_index_file
    from unlearnkit.methods.sisa import train_sisa
    from unlearnkit.training import make_config

    cfg = make_config(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, amp=amp)
    excl = read_index_file(exclude)[0] if exclude else None
    data = load_dataset(dataset, data_root=data_root, val_fraction=val_fraction, split_seed=split_seed)
    run = train_sisa(
        data, model, shards, slices, cfg, out, model_kwargs={"width": width}, aggregation=aggregation,
        exclude=excl, device=device, quiet=quiet, overwrite=overwrite,
    )
    r = run.meta["results"]
    console.print(
        f"trained SISA ({shards} shards x {slices} slices, {model}, {aggregation}) on {dataset}: "
        f"train {r['train_acc']:.4f}  val {r['val_acc']:.4f}  test {r['test_acc']:.4f}  "
        f"({r['seconds']:.1f} s) -> {out}"
    )
