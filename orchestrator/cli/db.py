"""``orchestrator migrate``: apply, show or check the database migrations."""

from __future__ import annotations

import typer
from alembic.util import CommandError
from sqlalchemy.exc import OperationalError

from orchestrator.cli.output import console, err_console, fail, print_json
from orchestrator.store import schema


def migrate(
    ctx: typer.Context,
    show_current: bool = typer.Option(
        False, "--show-current", help="Print the database's revision and the code's head; change nothing."
    ),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 if the database is not at the head revision; change nothing."
    ),
    revision: str = typer.Option("head", help="Migrate up to this revision instead of the newest."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply the database migrations (DATABASE_URL or DB_*; the SQLite file by default).

    Safe to run again: a database already at the head revision is left as it is.
    """
    engine = ctx.obj.runtime.db.engine
    shown_url = engine.url.render_as_string(hide_password=True)
    try:
        before = schema.schema_status(engine)
        if show_current or check:
            after = before
        else:
            with err_console.status(f"Migrating {shown_url} ..."):
                after = schema.upgrade(engine, revision)
    except OperationalError as exc:
        fail(f"cannot reach the database at {shown_url}: {str(exc.orig).strip()}", code=4)
    except CommandError as exc:
        fail(f"cannot migrate to {revision!r}: {exc}", code=2)

    result = {
        "database": shown_url,
        "before": before.current,
        "current": after.current,
        "head": after.head,
        "is_current": after.is_current,
        "changed": before.current != after.current,
    }
    if as_json:
        print_json(result)
    elif show_current or check:
        state = "[green]up to date[/]" if after.is_current else "[yellow]behind[/]"
        console.print(f"{shown_url}: revision {after.current or '(none)'}, head {after.head}: {state}")
    elif result["changed"]:
        console.print(
            f"{shown_url}: migrated from {before.current or '(empty)'} to [bold]{after.current}[/]"
        )
    else:
        console.print(f"{shown_url}: already at {after.current}; nothing to do")
    if check and not after.is_current:
        raise typer.Exit(1)
