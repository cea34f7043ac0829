"""``orchestrator instructors``: issue, list and revoke instructor credentials."""

from __future__ import annotations

import typer
from rich.table import Table

from orchestrator.cli.output import console, err_console, fail_with, print_json, text
from orchestrator.errors import OrchestratorError
from orchestrator.service import credentials

instructors_app = typer.Typer(
    help="Instructor credentials. Instructors are listed in the instructor YAML "
         "(ORCHESTRATOR_INSTRUCTOR_CONFIG); these commands issue their tokens.",
    no_args_is_help=True,
)


@instructors_app.command("add")
def add(
    ctx: typer.Context,
    instructor_id: str = typer.Argument(..., help="An instructor id from the instructor YAML."),
    label: str = typer.Option(None, help="A note to tell this token apart (e.g. 'laptop')."),
    as_json: bool = typer.Option(False, "--json", help="Print the new token as JSON."),
) -> None:
    """Issue a token for an instructor. It is shown once; only its hash is stored.

    The instructor sends it as `Authorization: Bearer <token>`, or as the password of
    HTTP Basic with their id as user name (browsers).
    """
    rt = ctx.obj.runtime
    try:
        with rt.db.scope() as session:
            issued = credentials.issue_token(session, rt.instructor_config, instructor_id=instructor_id, label=label)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({"instructor_id": issued.instructor_id, "token": issued.token, "prefix": issued.prefix})
        return
    err_console.print(f"Token for instructor {text(issued.instructor_id)} (shown once; store it now):")
    console.print(issued.token, highlight=False, soft_wrap=True)


@instructors_app.command("list")
def list_instructors(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print instructors and tokens as JSON."),
) -> None:
    """List the configured instructors and their tokens (prefix, created, last used, revoked)."""
    rt = ctx.obj.runtime
    try:
        with rt.db.scope() as session:
            tokens = credentials.list_tokens(session)
    except OrchestratorError as exc:
        fail_with(exc)
    config = rt.instructor_config
    if as_json:
        print_json({
            "source": config.source,
            "timeout_minutes": config.timeout_minutes,
            "instructors": [{"id": i.id, "name": i.name, "email": i.email} for i in config.instructors],
            "tokens": [t.model_dump(mode="json", exclude={"token_hash"}) for t in tokens],
        })
        return
    table = Table(title=f"instructors ({config.source}; assignments last {config.timeout_minutes} min)")
    for column in ("id", "name", "e-mail", "active tokens"):
        table.add_column(column)
    for instructor in config.instructors:
        active = sum(1 for t in tokens if t.instructor_id == instructor.id and t.revoked_at is None)
        table.add_row(text(instructor.id), text(instructor.name), text(instructor.email), str(active))
    console.print(table)
    if tokens:
        tokens_table = Table(title="tokens")
        for column in ("instructor", "token starts", "label", "created", "last used", "revoked"):
            tokens_table.add_column(column)
        for t in tokens:
            tokens_table.add_row(
                text(t.instructor_id), t.prefix + "…", text(t.label), f"{t.created_at:%Y-%m-%d %H:%M}",
                f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "",
                f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
            )
        console.print(tokens_table)


@instructors_app.command("revoke")
def revoke(
    ctx: typer.Context,
    instructor_id: str = typer.Argument(..., help="Whose tokens to revoke."),
    token: str = typer.Option(None, "--token", help="Only the token starting with this (see `instructors list`)."),
) -> None:
    """Revoke an instructor's tokens (all of them, or one with --token); they stop working at once."""
    try:
        with ctx.obj.runtime.db.scope() as session:
            count = credentials.revoke(session, instructor_id=instructor_id, prefix=token)
    except OrchestratorError as exc:
        fail_with(exc)
    console.print(f"revoked {count} token{'s' if count != 1 else ''} of instructor {text(instructor_id)}")
