"""``unlearnkit forget-set random`` and ``unlearnkit forget-set class``: the simple forget sets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from unlearnkit.cli.app import DATA_ROOT, OVERWRITE, console, examples, flag, forget_app
from unlearnkit.errors import UnlearnkitError

if TYPE_CHECKING:
    from unlearnkit.data import DataBundle, ForgetSet

RUN = typer.Option(..., "--run", "-r", help="Run directory whose training set the indices refer to.")
OUT = typer.Option(..., "--out", "-o", help="Forget file to write: .txt (indices) or .json (with provenance).")


def _run_data(run: Path, data_root: str | None) -> DataBundle:
    from unlearnkit.runs import load_data_for, load_meta

    return load_data_for(load_meta(run), run, data_root)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a bad or existing --out before any work is done."""
    from unlearnkit.io import check_new_file

    if out.suffix not in (".txt", ".json"):
        raise UnlearnkitError(f"{out}: forget files end in .txt or .json")
    check_new_file(out, overwrite)


def _write(out: Path, fs: ForgetSet) -> None:
    from unlearnkit.data import save_forget

    save_forget(out, fs)
    console.print(f"wrote {len(fs)} forget indices ({fs.kind}) -> {out}")


@forget_app.command("random", epilog=examples(
    "unlearnkit forget-set random --run runs/orig --size 100 --seed 0 --out f-random.json",
    "unlearnkit forget-set random -r runs/orig -n 100 --class-balanced -o f-balanced.txt",
))
def forget_random(
    run: Path = RUN,
    size: int = typer.Option(..., "--size", "-n", help="Number of training examples to forget."),
    seed: int = typer.Option(0, "--seed"),
    class_balanced: bool = flag("--class-balanced", help="The same number from every class."),
    out: Path = OUT,
    data_root: str = DATA_ROOT,
    overwrite: bool = OVERWRITE,
) -> None:
    """A uniformly random forget set of SIZE training examples."""
    from unlearnkit.data.forget import random_forget_set

    _check_out(out, overwrite)
    _write(out, random_forget_set(_run_data(run, data_root), size, seed, class_balanced=class_balanced))


@forget_app.command("class", epilog=examples(
    "unlearnkit forget-set class --run runs/orig --class 3 --out f-class3.json",
))
def forget_class(
    run: Path = RUN,
    cls: int = typer.Option(..., "--class", "-c", help="Class label to forget entirely."),
    out: Path = OUT,
    data_root: str = DATA_ROOT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Every training example of one class."""
    from unlearnkit.data.forget import class_forget_set

    _check_out(out, overwrite)
    _write(out, class_forget_set(_run_data(run, data_root), cls))
