"""``unlearnkit methods [NAME]``, ``models``, ``scores`` and ``datasets``: what exists here.

``methods NAME`` shows each hyperparameter with its range, its class default and the
value a shipped preset sets for ``--dataset`` / ``--model`` / ``--forget-kind``;
:func:`param_sources` follows the same order as ``Method.resolve_params``.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import typer
from rich.table import Column, Table

from unlearnkit.cli.app import app, console, examples
from unlearnkit.cli.data_cmd import list_datasets


def _first_line(text: str | None) -> str:
    """The first paragraph of a docstring on one line, without reST literal quotes."""
    return " ".join((text or "").strip().split("\n\n")[0].split()).replace("``", "")


def _range(field: Any) -> str:
    """``(0, 1]``-style range of a pydantic field from its ``Gt/Ge/Lt/Le`` constraints; "" if none."""
    lo = hi = None
    lo_open = hi_open = False
    for c in field.metadata:
        for attr, is_lo, is_open in (("gt", True, True), ("ge", True, False), ("lt", False, True), ("le", False, False)):
            v = getattr(c, attr, None)
            if v is not None:
                if is_lo:
                    lo, lo_open = v, is_open
                else:
                    hi, hi_open = v, is_open
    if lo is None and hi is None:
        return ""
    left = "(" if lo is None or lo_open else "["
    right = ")" if hi is None or hi_open else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def param_sources(
    method: str, dataset: str | None, model: str | None, kind: str | None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, tuple[Any, str]], str | None]:
    """``{param: (value, source)}`` with source ``default``, ``preset`` or ``--set``, and the
    preset that applied (``dataset/model/kind`` as the presets name it) or None.

    The same order as :meth:`Method.resolve_params`: class defaults < preset < overrides.
    """
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.presets import lookup

    cls = METHODS.get(method)
    preset, applied, _ = lookup(dataset, method, model, kind, methods=METHODS)
    out: dict[str, tuple[Any, str]] = {}
    for name, field in cls.Params.model_fields.items():
        if overrides and name in overrides:
            out[name] = (overrides[name], "--set")
        elif name in preset:
            out[name] = (preset[name], "preset")
        else:
            out[name] = (field.default, "default")
    return out, applied


@app.command(epilog=examples(
    "unlearnkit methods",
    "unlearnkit methods salun",
    "unlearnkit methods salun --dataset fashion-mnist --model mlp --forget-kind memorization-high",
))
def methods(
    name: str = typer.Argument(None, help="A method: show its hyperparameters (default: list every method)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Show the preset that applies for this dataset."),
    model: str = typer.Option(None, "--model", "-m", help="... and this model family (e.g. mlp, cnn)."),
    forget_kind: str = typer.Option(
        None, "--forget-kind", help="... and this forget-set kind (random, class, memorization-high, ...)."
    ),
) -> None:
    """List the unlearning methods, or one method's hyperparameters: range, default, preset value."""
    from unlearnkit.methods import METHODS

    if name is None:
        table = Table("method", "exact", "needs", Column("hyperparameters", overflow="fold"),
                      Column("what it does", ratio=1))
        for m in METHODS.names():
            cls = METHODS.get(m)
            doc = _first_line(cls.__doc__) or _first_line(sys.modules[cls.__module__].__doc__)
            table.add_row(m, "yes" if cls.exact else "no", ", ".join(sorted(cls.requires)) or "-",
                          ", ".join(cls.Params.model_fields) or "-", doc)
        console.print(table)
        console.print("`unlearnkit methods NAME` shows one method's ranges, defaults and presets.", style="dim")
        return
    cls = METHODS.get(name)
    sources, applied = param_sources(name, dataset, model, forget_kind)
    table = Table(title=f"{name}: hyperparameters (`--set KEY=VALUE` overrides)")
    for col in ("name", "type", "range", "default", "used", "source"):
        table.add_column(col, no_wrap=col != "source")
    table.add_column("meaning", ratio=1)
    for key, field in cls.Params.model_fields.items():
        value, source = sources[key]
        table.add_row(key, _type_name(field.annotation), _range(field), str(field.default), str(value), source,
                      field.description or "")
    console.print(table)
    console.print(f"needs: {', '.join(sorted(cls.requires)) or 'nothing beyond the model and the forget rows'}; "
                  f"{'exact' if cls.exact else 'approximate'}; `unlearnkit tune` grid: "
                  f"{'; '.join(f'{k} ' + '/'.join(map(str, v)) for k, v in cls.tune_grid.items()) or 'none'}", highlight=False)
    if dataset is None:
        console.print("presets: give --dataset (and --model, --forget-kind) to see the one that applies", style="dim")
    else:
        console.print(f"preset for dataset={dataset} model={model or '*'} kind={forget_kind or '*'}: "
                      f"{applied or 'none applies, class defaults'}", highlight=False)


@app.command(epilog=examples("unlearnkit models"))
def models() -> None:
    """List the registered models with their keyword arguments (``--width`` sets ``width``)."""
    from unlearnkit.models import MODELS

    table = Table("model", Column("arguments (default)", overflow="fold"), Column("what it is", ratio=1))
    for m in MODELS.names():
        builder = MODELS.get(m)
        params = list(inspect.signature(builder).parameters.values())[2:]  # after input_shape, num_classes
        args = ", ".join(f"{p.name}={p.default}" for p in params if p.default is not inspect.Parameter.empty)
        table.add_row(m, args or "-", _first_line(builder.__doc__))
    console.print(table)


@app.command(epilog=examples("unlearnkit scores", "unlearnkit score --run runs/orig --scores confidence,loss"))
def scores() -> None:
    """List the per-example difficulty scores: direction, what each needs, its cost."""
    from unlearnkit.difficulty import SCORES

    table = Table("score", "harder when", "needs", Column("cost"), Column("what it measures", ratio=1))
    for s in SCORES.names():
        spec = SCORES.get(s)
        table.add_row(s, "high" if spec.higher_is_harder else "low", ", ".join(spec.needs), spec.cost or "-",
                      spec.description)
    console.print(table)


app.command("datasets", epilog=examples("unlearnkit datasets", "unlearnkit datasets fashion-mnist"),
            help="List the datasets: available here or not, and where they were found or looked for.")(list_datasets)
