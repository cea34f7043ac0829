"""``orchestrator config``: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from rich.table import Table

from orchestrator.cli.output import console, print_json


def show_config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
) -> None:
    """Show the settings this process would run with (environment, .env.local/.env, defaults).

    Validates every value on the way: a bad one is reported with its variable name.
    """
    data = ctx.obj.settings.public_view()
    if as_json:
        print_json(data)
        return
    table = Table(title="Effective settings", show_lines=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    for key, value in _flatten(data):
        table.add_row(key, "[dim](none)[/]" if value in (None, [], "") else str(value))
    console.print(table)


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value
