"""``unlearnkit memorization``: Feldman memorization from K subset-trained models."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from unlearnkit.cli.app import DATA_ROOT, DATASET, DEVICE, MODEL, QUIET, app, console, examples
from unlearnkit.cli.output import print_warning


def _print_warning(message, category, *args, **kwargs) -> None:
    from unlearnkit.difficulty.memorization import MemorizationWarning

    if issubclass(category, MemorizationWarning):
        print_warning(str(message))


@app.command(epilog=examples(
    "unlearnkit memorization --dataset digits --model mlp --k 40 --out runs/mem",
    "unlearnkit memorization -d npz:mine.npz -m mlp --k 64 --until-fit 0.99 --epochs 300 --out runs/mem-mine",
    "unlearnkit memorization -d fashion-mnist -m mlp --k 100 --executor ray --out runs/mem-fm",
))
def memorization(
    dataset: str = DATASET,
    model: str = MODEL,
    out: Path = typer.Option(..., "--out", "-o", help="MEM_DIR: created, or resumed if it holds this run's models."),
    k: int = typer.Option(100, "--k", help="Number of models (RUM: 400)."),
    fraction: float = typer.Option(0.7, "--fraction", help="Fraction of the training set each model sees, in (0, 1)."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (the cap with --until-fit); default: the model's memorization recipe."),
    seed: int = typer.Option(0, "--seed", help="Seeds every model's subset, initialisation and shuffling."),
    lr: float = typer.Option(None, "--lr", help="Default: the model's memorization recipe."),
    batch_size: int = typer.Option(None, "--batch-size", help="Default: the model's memorization recipe."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="Default: the model's memorization recipe (0)."),
    until_fit: float = typer.Option(
        None, "--until-fit", help="Stop each model once its accuracy on its own subset reaches ACC in (0, 1]."
    ),
    fit_threshold: float = typer.Option(
        0.99, "--fit-threshold", help="Warn when the median in-subset accuracy is below this."
    ),
    width: int = typer.Option(None, "--width", help="Model width (hidden units / base channels)."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the validation split."),
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
    ensemble: str = typer.Option("auto", "--ensemble", help="auto | loop | stacked (auto: stacked for the mlp; also the cnn on a GPU)."),
    block_size: int = typer.Option(None, "--block-size", help="Models per work unit (default 16 stacked, 1 loop)."),
    threads: int = typer.Option(1, "--threads", help="Torch threads per model (same in every executor)."),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Train K models on random subsets; write MEM_DIR/memorization.parquet and memorization.json.

    The models train with the model family's memorization recipe (no weight decay, until each
    fits its subset) unless --epochs/--lr/--batch-size/--weight-decay/--until-fit change it; the
    run warns when the models do not fit their subsets (median in-subset accuracy < --fit-threshold).
    """
    from unlearnkit.data import load_dataset
    from unlearnkit.difficulty.fit import memorization_recipe
    from unlearnkit.difficulty.memorization import MemorizationWarning, estimate_memorization

    cfg = memorization_recipe(model, epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                              until_fit=until_fit, seed=seed)
    data = load_dataset(dataset, data_root=data_root, val_fraction=val_fraction, split_seed=split_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("always", MemorizationWarning)
        warnings.showwarning = _print_warning
        result = estimate_memorization(
            data, model, k=k, fraction=fraction, seed=seed, out=out, cfg=cfg, fit_threshold=fit_threshold,
            model_kwargs={"width": width}, executor=executor, address=address, ensemble=ensemble,
            block_size=block_size, threads=threads, device=device, quiet=quiet,
        )
    rel, t, s = result.reliability, result.meta["timings"], result.meta["summary"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    console.print(
        f"memorization of {data.n_train} {dataset} examples from {k} {model} models "
        f"({result.meta['ensemble']}, {t['blocks_resumed']}/{t['blocks']} blocks resumed, "
        f"{t['wall_seconds']:.1f} s): mean {s['mean']:.3f}, held out of >= {s['n_out_min']} models"
    )
    console.print(
        f"split-half reliability (Spearman): {fmt(rel['split_half_spearman'])} over {rel['n_examples']} examples "
        f"(Spearman-Brown for all {k} models: {fmt(rel['spearman_brown'])})"
    )
    fit = result.meta["fit"]
    acc, ep = fit["in_subset_accuracy"], fit["epochs_run"]
    console.print(
        f"fit: in-subset accuracy median {acc['median']:.4f} (min {acc['min']:.4f}), "
        f"{ep['min']}-{ep['max']} epochs (cap {ep['cap']})"
    )
    console.print(f"-> {out / 'memorization.parquet'}, {out / 'memorization.json'}")
