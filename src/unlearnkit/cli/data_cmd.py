"""``unlearnkit data list|fetch``."""

from __future__ import annotations

from rich.table import Table

from unlearnkit.cli.app import DATA_ROOT, console, data_app
from unlearnkit.data import DATASETS, get_dataset


@data_app.command("list")
def list_datasets(data_root: str = DATA_ROOT) -> None:
    """Show every dataset, whether it is available here and where it was found or looked for."""
    table = Table("dataset", "available", "where", "description")
    for name in DATASETS.names():
        ds = get_dataset(name)
        ok, where = ds.availability(data_root)
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", where, ds.description)
    console.print(table)


@data_app.command("fetch")
def fetch(name: str, data_root: str = DATA_ROOT) -> None:
    """Obtain a dataset's files where that is possible here, or say what to do."""
    console.print(get_dataset(name).fetch(data_root))
