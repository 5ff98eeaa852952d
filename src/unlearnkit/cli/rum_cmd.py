"""``unlearnkit rum``: refine a forget set by difficulty and unlearn the groups in sequence."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer
from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, DEVICE, FORGET, OVERWRITE, QUIET, RUN, app, console, examples
from unlearnkit.cli.params import parse_assignments
from unlearnkit.cli.unlearn_cmd import describe_params
from unlearnkit.errors import UnlearnkitError

# meta.rum.DEFAULT_CANDIDATES, repeated so that --help does not import torch
# (tests/test_cli_startup.py checks that the two agree).
CANDIDATES_HELP = "none,finetune,neggrad_plus,salun,l1_sparse"


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@app.command("rum", epilog=examples(
    "unlearnkit rum --run runs/orig --forget f.json --refine-by memorization --methods finetune --out runs/rum-f",
    "unlearnkit rum -r runs/orig -f f.json --methods none,finetune,salun --set high.lr=0.05 -o runs/rum",
    "unlearnkit rum -r runs/orig -f f.json --variant rum --candidates finetune,salun -o runs/rum-search",
))
def rum_cmd(
    run: Path = RUN,
    forget: Path = FORGET,
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    refine_by: str = typer.Option(
        "memorization", "--refine-by", help="Score column of RUN/scores.parquet, or centroid_distance (ES-based)."
    ),
    groups: int = typer.Option(3, "--groups", help="Number of groups K (low/medium/high for 3, else g0..)."),
    order: str = typer.Option(None, "--order", help="Processing order, e.g. low,medium,high (the default)."),
    methods: str = typer.Option("finetune", "--methods", help="M for all groups, or M_low,M_medium,M_high; none skips."),
    sets: list[str] = typer.Option(
        None, "--set", help="Hyperparameter: key=value (all groups) or group.key=value; for --variant rum method.key=value."
    ),
    retain: str = typer.Option("strict", "--retain", help="strict (D minus all of S) | rum (unprocessed groups are retain)."),
    variant: str = typer.Option("rum_f", "--variant", help="vanilla | shuffle | rum_f | rum."),
    candidates: str = typer.Option(
        None, "--candidates", help=f"Methods --variant rum searches (default: those of {CANDIDATES_HELP} that are registered)."
    ),
    seed: int = typer.Option(0, "--seed"),
    data_root: str = DATA_ROOT,
    device: str = DEVICE,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Refine the forget set into groups by a difficulty score and unlearn them one after another (RUM)."""
    from unlearnkit.data import load_forget
    from unlearnkit.meta.rum import default_candidates, rum_run
    from unlearnkit.runs import load_run

    original = load_run(run, data_root=data_root)
    fs = load_forget(forget, original.data)
    params = parse_assignments(sets, "--set", scope="optional", scope_name="GROUP")
    cands: Any = _split(candidates)
    if variant == "rum":
        # For the search, --set addresses candidate methods: finetune.lr=0.01.
        bad = [k for k, v in params.items() if not isinstance(v, dict)]
        if bad:
            raise UnlearnkitError(f"--variant rum: give hyperparameters per candidate method (method.key=value), not {bad[0]}")
        cands = cands or default_candidates()
        unknown = sorted(set(params) - set(cands))
        if unknown:
            raise UnlearnkitError(f"--set names '{unknown[0]}', which is not a candidate ({', '.join(cands)})")
        cands = {c: params.get(c, {}) for c in cands}
        params = {}
    res = rum_run(
        original, fs, out, overwrite=overwrite, refine_by=refine_by, groups=groups, order=_split(order),
        methods=methods, params=params, retain=retain, variant=variant, candidates=cands, seed=seed,
        device=device, quiet=quiet,
    )
    info = res.extra["rum"]
    table = Table(title=f"RUM ({variant}, retain {retain})")
    for col in ("#", "group", "method", "n", "s", "acc group", "acc S", "acc D\\S", "acc test"):
        table.add_column(col, no_wrap=True)
    for s in info["steps"]:
        table.add_row(
            str(s["step"]), s["group"], s["method"], str(s["size"]), f"{s['seconds']:.1f}",
            *(f"{s[k]:.3f}" for k in ("group_acc", "forget_acc", "retain_acc", "test_acc")),
        )
    console.print(table)
    shared = {k: v for k, v in params.items() if not isinstance(v, dict)}
    for s in info["steps"]:
        if s["method"] != "none":  # the resolved hyperparameters of each step, and where they came from
            group = SimpleNamespace(kind="rum_group")  # presets key RUM's groups as '*' kinds
            overrides = {**shared, **params.get(s["group"], {})} if variant != "rum" else {}
            console.print(f"{s['group']}: " + describe_params(original, group, s["method"], s["params"], overrides),
                          highlight=False)
    console.print(f"retain per step: {retain} ({'D minus all of S' if retain == 'strict' else 'unprocessed groups kept'})")
    console.print(f"-> {out} (rum.json: groups, order, methods, params, steps)")
