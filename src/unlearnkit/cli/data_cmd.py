"""``unlearnkit data list|fetch``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.text import Text

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

    # A block per dataset, one place a line: a narrow terminal then breaks between paths and
    # words, never inside a path (unless one path alone is wider than the terminal).
    for name in names or DATASETS.names():
        ds = get_dataset(name)
        ok, where = ds.availability(data_root)
        places = where.removeprefix("looked in: ").split(", ") if where.startswith("looked in: ") else [where]
        status = "[green]available[/]" if ok else "[red]not available[/]"
        console.print(f"[bold]{escape(ds.full_name)}[/]  {status}")
        console.print(f"    [dim]{escape(ds.description)}[/]")
        if not ok:
            console.print("    looked in:")
        for place in places:
            console.print(Text("    " + place, overflow="fold"), highlight=False)


@data_app.command("fetch", epilog=examples("unlearnkit data fetch rotten-tomatoes"))
def fetch(name: str, data_root: str = DATA_ROOT) -> None:
    """Obtain a dataset's files where that is possible here, or say plainly what to do."""
    from unlearnkit.data import get_dataset

    console.print(get_dataset(name).fetch(data_root), highlight=False)
