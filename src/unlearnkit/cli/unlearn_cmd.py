"""``unlearnkit unlearn`` and ``unlearnkit tune``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, DEVICE, OVERWRITE, QUIET, app, console
from unlearnkit.errors import UnlearnkitError


def parse_value(text: str) -> Any:
    """``--set`` values: int, then float, then true/false, then none/null, else the string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return text


def parse_sets(items: list[str] | None, method: str) -> dict[str, Any]:
    """``["lr=0.01", "epochs=3"]`` -> ``{"lr": 0.01, "epochs": 3}`` (keys checked by the method)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            from unlearnkit.methods import METHODS

            valid = ", ".join(METHODS.get(method).Params.model_fields) or "none"
            raise UnlearnkitError(f"--set {item!r}: expected key=value (valid keys for {method}: {valid})")
        out[key.strip()] = parse_value(value.strip())
    return out


@app.command()
def unlearn(
    run: Path = typer.Option(..., "--run", help="Run directory of the original model."),
    forget: Path = typer.Option(..., "--forget", "-f", help="Forget file (.txt or .json)."),
    method: str = typer.Option(..., "--method", "-m", help="Registered unlearning method."),
    sets: list[str] = typer.Option(None, "--set", help="Hyperparameter override key=value (repeatable)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create for the unlearned model."),
    seed: int = typer.Option(0, "--seed"),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Unlearn a forget set from a run's model; writes a run directory plus unlearn.json."""
    from unlearnkit.data import load_forget
    from unlearnkit.methods import retain_positions, unlearn_run
    from unlearnkit.runs import load_run
    from unlearnkit.training import accuracy

    params = parse_sets(sets, method)
    original = load_run(run, data_root=data_root)
    fs = load_forget(forget, original.data)
    res = unlearn_run(original, fs, method, out, params, seed=seed, device=device, quiet=quiet, overwrite=overwrite)
    data = res.data
    fp = fs.positions(data)
    rp = retain_positions(original, fp)
    info = res.extra["unlearn"]
    console.print(
        f"{method} on {len(fs)} forget examples: forget {accuracy(res.model, data.x_train[fp], data.y_train[fp]):.4f}  "
        f"retain {accuracy(res.model, data.x_train[rp], data.y_train[rp]):.4f}  "
        f"test {res.meta['results']['test_acc']:.4f}  ({info['seconds']:.1f} s, "
        f"{info['examples_processed']} examples) -> {out}"
    )


@app.command()
def tune(
    run: Path = typer.Option(..., "--run", help="Run directory of the original model."),
    method: str = typer.Option(..., "--method", "-m", help="Registered unlearning method."),
    grid: str = typer.Option("small", "--grid", help="Grid to search: small (the method's 6-12 points)."),
    val_size: int = typer.Option(None, "--val-size", help="Size of the validation forget set (default 10%)."),
    val_seed: int = typer.Option(1000, "--val-seed", help="Seed of the validation forget set."),
    avoid: list[Path] = typer.Option(None, "--avoid", help="Forget file(s) the validation set must not overlap."),
    seed: int = typer.Option(0, "--seed", help="Seed of the unlearning and reference runs."),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file: chosen values and the whole grid table."),
    update_preset_file: Path = typer.Option(None, "--update-preset", help="Also merge the chosen values into this preset JSON."),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Grid-search a method's hyperparameters by ToW on a validation forget set."""
    import numpy as np

    from unlearnkit.io import read_index_file
    from unlearnkit.methods import METHODS
    from unlearnkit.meta.tune import GRIDS, tune as tune_method, update_preset, write_tune
    from unlearnkit.runs import load_run

    if grid not in GRIDS:
        raise UnlearnkitError(f"unknown grid '{grid}'; choose from: {', '.join(GRIDS)}")
    METHODS.get(method)
    original = load_run(run, data_root=data_root)
    avoided = np.concatenate([read_index_file(p)[0] for p in avoid]) if avoid else None
    res = tune_method(
        original, method, val_size=val_size, val_seed=val_seed, avoid=avoided, seed=seed,
        device=device, quiet=quiet, reference_dir=out.parent,
    )
    write_tune(out, res)
    if update_preset_file is not None:
        command = "unlearnkit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        update_preset(update_preset_file, res, dataset=original.data.name,
                      model=f"{original.meta['model']['name']} {original.meta['model'].get('kwargs', {})}",
                      command=command, train=original.meta.get("train"))
    table = Table(title=f"tune {method}: validation forget set of {len(res.val_forget)} (seed {val_seed})")
    keys = list(res.chosen)
    for col in [*keys, "forget", "retain", "val", "ToW", "work/retrain"]:
        table.add_column(col, justify="right")
    ref = res.reference
    table.add_row(*(["retrain"] + [""] * (len(keys) - 1)), f"{ref['forget']:.4f}", f"{ref['retain']:.4f}",
                  f"{ref['val']:.4f}", "1", "1")
    for r in res.table.to_dict(orient="records"):
        if r.get("error"):
            table.add_row(*[str(r[k]) for k in keys], "", "", "", "failed", "")
            continue
        table.add_row(*[str(r[k]) for k in keys], f"{r['forget_acc']:.4f}", f"{r['retain_acc']:.4f}",
                      f"{r['val_acc']:.4f}", f"{r['tow']:.4f}", f"{r['work_vs_retrain']:.3f}")
    console.print(table)
    console.print(f"chosen {res.chosen} (ToW {res.tow:.4f}) -> {out}")
