"""``unlearnkit data list|fetch``."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from unlearnkit.cli.app import DATA_ROOT, console, data_app, examples


@data_app.command("list", epilog=examples(
    "unlearnkit data list", "unlearnkit data list fashion-mnist npz:my-data.npz --data-root ~/data",
))
def list_datasets(
    names: list[str] = typer.Argument(None, help="Datasets to check (e.g. npz:my.npz); default: all."),
    data_root: str = DATA_ROOT,
) -> None:
    """Show each dataset, whether it is available here and where it was found or looked for."""
    from unlearnkit.data import DATASETS, get_dataset

    # Paths are folded, never cut: where it looked is the useful part.
    table = Table(
        Column("dataset", no_wrap=True), "available", Column("where", overflow="fold", ratio=3),
        Column("description", ratio=2),
    )
    for name in names or DATASETS.names():
        ds = get_dataset(name)
        ok, where = ds.availability(data_root)
        table.add_row(ds.full_name, "[green]yes[/]" if ok else "[red]no[/]", where, ds.description)
    console.print(table)


@data_app.command("fetch", epilog=examples("unlearnkit data fetch rotten-tomatoes"))
def fetch(name: str, data_root: str = DATA_ROOT) -> None:
    """Obtain a dataset's files where that is possible here, or say plainly what to do."""
    from unlearnkit.data import get_dataset

    console.print(get_dataset(name).fetch(data_root), highlight=False)
