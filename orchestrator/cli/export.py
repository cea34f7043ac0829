"""``orchestrator export``: tidy files for research, with a data dictionary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from orchestrator.cli.output import console, err_console, fail_with, print_json
from orchestrator.errors import OrchestratorError
from orchestrator.service import export as export_service
from orchestrator.service.reports import parse_since


def export(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Directory to write into (created if missing)."),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    since: str = typer.Option(None, "--since", help="Only records since then: 7d, 12h, 30m or an ISO date."),
    pseudonymize: bool = typer.Option(
        False, "--pseudonymize",
        help="Replace student ids and e-mail addresses by keyed hashes (ORCHESTRATOR_PSEUDONYM_KEY).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rows written per file as JSON."),
) -> None:
    """Write hint requests, reflections, ratings, poll statistics, escalations and
    executions, one file each, plus data_dictionary.md. Rows are streamed, so memory
    stays flat for millions of rows."""
    settings = ctx.obj.settings
    try:
        since_time = parse_since(since)
        with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, disable=as_json) as progress:
            tasks: dict[str, int] = {}

            def report(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                progress.update(tasks[name], completed=done)

            written = export_service.export(
                ctx.obj.runtime.db, out, fmt=fmt, since=since_time,
                pseudonymize_key=settings.pseudonym_key or "" if pseudonymize else None, progress=report,
            )
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({"out": str(out), "format": fmt, "rows": written})
        return
    table = Table(title=f"exported to {out}")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for name, count in written.items():
        table.add_row(f"{name}.{fmt}", str(count))
    table.add_row("data_dictionary.md", "")
    console.print(table)
