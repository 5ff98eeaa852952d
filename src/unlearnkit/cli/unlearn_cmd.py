"""``unlearnkit unlearn`` and ``unlearnkit tune``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, DEVICE, FORGET, METHOD, OVERWRITE, QUIET, RUN, app, console, examples
from unlearnkit.cli.params import parse_assignments
from unlearnkit.errors import UnlearnkitError


def parse_sets(items: list[str] | None, method: str) -> dict[str, Any]:
    """``--set`` hyperparameters of ``method`` (keys checked by the method itself)."""

    def valid() -> str:
        from unlearnkit.methods import METHODS

        return f"valid keys for {method}: {', '.join(METHODS.get(method).Params.model_fields) or 'none'}"

    return parse_assignments(items, "--set", hint=valid)


def describe_params(run: Any, forget: Any, method: str, resolved: dict[str, Any], overrides: dict[str, Any]) -> str:
    """One line: which preset (or the class defaults) applied, and the resolved hyperparameters."""
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.presets import lookup

    _, source, prov = lookup(run.data.name, method, (run.meta.get("model") or {}).get("name"), forget.kind,
                             methods=METHODS)
    where = f"preset {source}" if source else "class defaults (no preset applies)"
    if overrides:
        where += f", overridden by --set {', '.join(overrides)}"
    note = f"; note: the tuned setting reduces to {prov['collapsed_to']}" if prov.get("collapsed_to") else ""
    tuned_on, mine = prov.get("train") or {}, run.meta.get("train") or {}
    differ = [k for k in ("epochs", "lr", "batch_size", "weight_decay", "optimizer") if k in tuned_on and k in mine
              and tuned_on[k] != mine[k]]
    if source and differ:  # presets are tuned for one recipe; far from it they can overshoot
        note += ("; note: tuned on an original trained with " + ", ".join(f"{k}={tuned_on[k]}" for k in differ)
                 + " (this run: " + ", ".join(f"{k}={mine[k]}" for k in differ) + "); `unlearnkit tune` re-tunes")
    values = ", ".join(f"{k}={v}" for k, v in resolved.items())
    return f"{method} hyperparameters ({where}{note}): {values}"


@app.command(epilog=examples(
    "unlearnkit unlearn --run runs/orig --forget f.json --method retrain --out runs/retrain",
    "unlearnkit unlearn -r runs/orig -f f.json --method salun --set lr=0.05 --set epochs=3 -o runs/salun",
    "unlearnkit methods salun   (its hyperparameters, defaults and presets)",
))
def unlearn(
    run: Path = RUN,
    forget: Path = FORGET,
    method: str = METHOD,
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
    from unlearnkit.training import split_accuracies

    params = parse_sets(sets, method)
    original = load_run(run, data_root=data_root)
    fs = load_forget(forget, original.data)
    res = unlearn_run(original, fs, method, out, params, seed=seed, device=device, quiet=quiet, overwrite=overwrite)
    data = res.data
    fp = fs.positions(data)
    rp = retain_positions(original, fp)
    info = res.extra["unlearn"]
    acc = split_accuracies(res.model, data, {"forget": fp, "retain": rp}, splits=())
    console.print(describe_params(original, fs, method, info["params"], params))
    console.print(
        f"{method} on {len(fs)} forget examples: forget {acc['forget']:.4f}  retain {acc['retain']:.4f}  "
        f"test {res.meta['results']['test_acc']:.4f}  ({info['seconds']:.1f} s, "
        f"{info['examples_processed']} examples) -> {out}"
    )


@app.command(epilog=examples(
    "unlearnkit tune --run runs/orig --method finetune --out tuned.json",
    "unlearnkit tune -r runs/orig --method salun --like f-high.json --grid wide --max-cost 0.2 -o tuned.json",
    "unlearnkit tune -r runs/orig --method salun --avoid f.json --update-preset my-presets.json -o tuned.json",
))
def tune(
    run: Path = RUN,
    method: str = METHOD,
    like: Path = typer.Option(None, "--like", help="Tune on a set matched to this forget set's difficulty (disjoint from it)."),
    grid: str = typer.Option("small", "--grid", help="small (the method's 6-12 points) or wide (lr 1e-4..1e-1 x epochs x the method's own)."),
    max_cost: float = typer.Option(None, "--max-cost", help="Most examples a setting may process, as a fraction of retraining's (e.g. 0.2)."),
    val_size: int = typer.Option(None, "--val-size", help="Size of a random validation forget set (default 10%; not with --like)."),
    val_seed: int = typer.Option(1000, "--val-seed", help="Seed of the validation forget set."),
    avoid: list[Path] = typer.Option(None, "--avoid", help="Forget file(s) the validation set must not overlap."),
    seed: int = typer.Option(0, "--seed", help="Seed of the unlearning and reference runs."),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file: chosen values and the whole grid table."),
    update_preset_file: Path = typer.Option(None, "--update-preset", help="Also merge the chosen values into this preset JSON."),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Search a method's hyperparameters by ToW on a validation forget set (matched to --like's difficulty)."""
    import numpy as np

    from unlearnkit.data import load_forget
    from unlearnkit.io import read_index_file
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.presets import ANY, load_presets, preset_kind
    from unlearnkit.meta.tune import GRIDS, tune as tune_method, update_preset, write_tune
    from unlearnkit.runs import load_run

    if grid not in GRIDS:
        raise UnlearnkitError(f"unknown grid '{grid}'; choose from: {', '.join(GRIDS)}")
    if max_cost is not None and not max_cost > 0:
        raise UnlearnkitError(f"--max-cost must be > 0 (a fraction of retraining's examples), got {max_cost}")
    METHODS.get(method)
    if update_preset_file is not None and update_preset_file.exists():
        load_presets(path=update_preset_file, methods=METHODS)  # a bad preset file fails before any training
    original = load_run(run, data_root=data_root)
    target = load_forget(like, original.data) if like is not None else None
    avoided = np.concatenate([read_index_file(p)[0] for p in avoid]) if avoid else None
    res = tune_method(
        original, method, grid=grid, like=target, max_cost=max_cost, val_size=val_size, val_seed=val_seed,
        avoid=avoided, seed=seed, device=device, quiet=quiet, reference_dir=out.parent,
    )
    write_tune(out, res)
    kind = preset_kind(target.kind) if target is not None else ANY
    if update_preset_file is not None:
        command = "unlearnkit " + " ".join(shlex.quote(Path(a).name if "/" in a else a) for a in sys.argv[1:])
        update_preset(update_preset_file, res, dataset=original.data.name, model=original.meta["model"]["name"],
                      kind=kind, command=command, train=original.meta.get("train"))
    v = res.val_forget
    how = f"matched to {like.name} ({v.meta['match']})" if target is not None else "random"
    if "quantile_shift" in v.meta:
        how += (f"; mean {v.meta['score']} {v.meta['score_mean']:.3f} vs {v.meta['score_mean_like']:.3f}, "
                f"quantiles shifted by {v.meta['quantile_shift']:.3f}")
    table = Table(title=f"tune {method}: validation forget set of {len(v)}, {how}; {len(res.table)} settings run")
    keys = list(res.chosen)
    for col in [*keys, "forget", "retain", "val", "ToW", "cost"]:
        table.add_column(col, justify="right")
    ref = res.reference
    table.add_row(*(["retrain"] + [""] * (len(keys) - 1)), f"{ref['forget']:.4f}", f"{ref['retain']:.4f}",
                  f"{ref['val']:.4f}", "1", "1")
    shown = res.table.head(15)
    for r in shown.to_dict(orient="records"):
        if r.get("error"):
            table.add_row(*[str(r[k]) for k in keys], "", "", "", "failed", "")
            continue
        cost = f"{r['cost']:.3f}" + ("" if r["eligible"] else " >cap")
        table.add_row(*[str(r[k]) for k in keys], f"{r['forget_acc']:.4f}", f"{r['retain_acc']:.4f}",
                      f"{r['val_acc']:.4f}", f"{r['tow']:.4f}", cost)
    console.print(table)
    if len(res.table) > len(shown):
        console.print(f"({len(res.table) - len(shown)} more settings in {out})")
    console.print(f"chosen {res.chosen} (ToW {res.tow:.4f}, cost {res.cost:.3f} of retraining) -> {out}")
    if res.collapsed_to:
        what = "changes no prediction of the original (a no-op)" if res.collapsed_to == "original" \
            else f"behaves exactly like {res.collapsed_to}"
        console.print(f"warning: the chosen {method} setting {what} "
                      f"(flagged as collapsed_to in the output{' and the preset' if update_preset_file else ''})")


@app.command("tune-presets", epilog=examples(
    "unlearnkit tune-presets bench-out --update-preset src/unlearnkit/presets/digits.json",
))
def tune_presets(
    bench: Path = typer.Argument(..., help="Output directory of a bench whose config has a tuning: block."),
    update_preset_file: Path = typer.Option(..., "--update-preset", help="Preset JSON to merge every tuned method and kind into."),
) -> None:
    """Write a bench's tuned settings (per forget kind) into a preset file, with provenance."""
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.presets import load_presets
    from unlearnkit.meta.tune import presets_from_bench

    if update_preset_file.exists():
        load_presets(path=update_preset_file, methods=METHODS)  # a bad preset file fails before anything is written
    cfg_name = (bench / "config.json")
    if not cfg_name.exists():
        raise UnlearnkitError(f"{bench}: not a bench output directory (no config.json)")
    command = f"unlearnkit bench CONFIG --out {bench.name}; unlearnkit tune-presets {bench.name} --update-preset {update_preset_file.name}"
    written = presets_from_bench(bench, update_preset_file, command=command)
    for model, kind, method in written:
        console.print(f"{model}/{kind}/{method}")
    console.print(f"{len(written)} tuned settings -> {update_preset_file}")
