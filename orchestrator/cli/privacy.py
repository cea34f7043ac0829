"""``orchestrator students forget`` and ``orchestrator prune``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer
from rich.table import Table

from orchestrator.cli.output import console, fail, fail_with, print_json
from orchestrator.errors import OrchestratorError
from orchestrator.service import privacy

students_app = typer.Typer(help="Data about one student.", no_args_is_help=True)


def _table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, str(count))
    return table


@students_app.command("forget")
def forget(
    ctx: typer.Context,
    student_id: str = typer.Argument(..., help="The student's id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows removed as JSON."),
) -> None:
    """Remove everything about a student: hint requests, reflections, ratings, polls,
    escalations, executions, quota grants and the messages that carried them."""
    db = ctx.obj.runtime.db
    try:
        with db.scope() as session:
            counts = privacy.forget_counts(session, student_id=student_id)
        if not as_json:
            console.print(_table(f"everything about {student_id!r}", counts))
        if not any(counts.values()):
            if as_json:
                print_json({"student_id": student_id, "removed": counts})
            else:
                console.print("Nothing is stored about this student.")
            return
        if not yes and not typer.confirm("Delete all of it? This cannot be undone", default=False):
            fail("nothing deleted", code=1)
        with db.scope(immediate=True) as session:
            removed = privacy.forget(session, student_id=student_id)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({"student_id": student_id, "removed": removed})
    else:
        console.print(f"Removed {sum(removed.values())} rows.")


def prune(
    ctx: typer.Context,
    older_than: int = typer.Option(None, "--older-than", min=1, max=36500,
                                   help="Days; default ORCHESTRATOR_RETENTION_DAYS."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows changed as JSON."),
) -> None:
    """Anonymise records older than the retention period: student ids become unlinkable
    pseudonyms, e-mail addresses are removed, finished outbox messages deleted."""
    days = older_than or ctx.obj.settings.retention_days
    if days is None:
        fail("say how old: --older-than DAYS (or set ORCHESTRATOR_RETENTION_DAYS)", code=2)
    before = datetime.now(timezone.utc) - timedelta(days=days)
    if not yes and not as_json and not typer.confirm(f"Anonymise everything created before {before:%Y-%m-%d %H:%M} UTC?",
                                                     default=False):
        fail("nothing changed", code=1)
    try:
        with ctx.obj.runtime.db.scope(immediate=True) as session:
            changed = privacy.prune(session, before=before)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({"before": before.isoformat(), "changed": changed})
    else:
        console.print(_table(f"anonymised before {before:%Y-%m-%d}", changed))
