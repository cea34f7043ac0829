"""``orchestrator quota``, ``orchestrator hints`` and ``orchestrator outbox``."""

from __future__ import annotations

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.cli.output import console, fail_with, print_json, text
from orchestrator.errors import OrchestratorError
from orchestrator.service import hints as hints_service
from orchestrator.service import outbox as outbox_service
from orchestrator.service.profiles import LIMIT_KEYS

quota_app = typer.Typer(help="Hint quotas: profiles and what a student has left.", no_args_is_help=True)
hints_app = typer.Typer(help="Inspect AI hint requests.", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Messages waiting for (or given up on) delivery to the upstreams.", invoke_without_command=True
)

HINT_STATUSES = ("pending", "succeeded", "failed", "cancelled")


def _limit(value) -> str:
    return "unlimited" if value is None else str(value)


@quota_app.command("show")
def quota_show(
    ctx: typer.Context,
    student_id: str = typer.Argument(..., min=0, max=2**63 - 1, help="The student's id."),
    problem_id: str = typer.Argument(..., min=0, max=2**63 - 1, help="The problem's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the quota as JSON (the quota_left shape)."),
) -> None:
    """Show a student's limits, use and what is left on one problem."""
    rt = ctx.obj.runtime
    try:
        data = hints_service.quota_left(rt.db, rt.quota_profiles, student_id=student_id, problem_id=problem_id)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json(data)
        return
    _, source = rt.quota_profiles.match(problem_id)
    table = Table(title=f"quota of {student_id} on {problem_id}", caption=f"limits from {source}")
    for column in ("", "limit", "used", "left"):
        table.add_column(column, justify="right" if column else "left")
    for key in LIMIT_KEYS:
        table.add_row(key, _limit(data["limits"][key]), str(data["used"][key]), _limit(data["left"][key]))
    console.print(table)


@quota_app.command("grant")
def quota_grant(
    ctx: typer.Context,
    student_id: str = typer.Argument(..., help="The student's id."),
    problem_id: str = typer.Argument(..., help="The problem's id."),
    hint_type: str = typer.Option(..., "--type", help="plan, debug or optimize."),
    count: int = typer.Option(1, "--count", min=1, max=100, help="How many extra hints."),
    reason: str = typer.Option(None, "--reason", help="Why (kept for the report)."),
    as_json: bool = typer.Option(False, "--json", help="Print the new quota as JSON."),
) -> None:
    """Give a student extra hints of one type on a problem, on top of the quota profile.

    Raises that type's limit (and the overall limit, when it is not unlimited) by COUNT.
    """
    rt = ctx.obj.runtime
    try:
        data = hints_service.grant_quota(rt.db, rt.quota_profiles, student_id=student_id, problem_id=problem_id,
                                         hint_type=hint_type, count=count, reason=reason, granted_by="cli")
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json(data)
        return
    console.print(f"granted {count} more {text(hint_type)} hint{'s' if count != 1 else ''}; "
                  f"{text(hint_type)} left: {_limit(data['left'][hint_type])}")


@quota_app.command("profiles")
def quota_profiles(
    ctx: typer.Context,
    problem: str = typer.Option(None, "--problem", help="Also say which limits apply to this problem id."),
    as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON."),
) -> None:
    """Validate the quota profiles and print the effective limits per problem pattern."""
    profiles = ctx.obj.runtime.quota_profiles  # loading validates; an error exits non-zero
    rows = [("(default)", profiles.default, profiles.default_source)]
    rows += [(o.pattern, o.limits, o.source) for o in profiles.overrides]
    if as_json:
        data = {"files": list(profiles.files),
                "profiles": [{"pattern": p, "source": s, **l.as_dict()} for p, l, s in rows]}
        if problem is not None:
            limits, source = profiles.match(problem)
            data["problem"] = {"problem_id": problem, "source": source, **limits.as_dict()}
        print_json(data)
        return
    table = Table(title="quota profiles (first matching pattern wins)")
    table.add_column("problem pattern", style="bold")
    for key in LIMIT_KEYS:
        table.add_column(key, justify="right")
    table.add_column("from", style="dim")
    for pattern, limits, source in rows:
        table.add_row(text(pattern), *(_limit(getattr(limits, k)) for k in LIMIT_KEYS), text(source))
    console.print(table)
    if problem is not None:
        limits, source = profiles.match(problem)
        console.print(f"{text(problem)}: " + ", ".join(f"{k} {_limit(getattr(limits, k))}" for k in LIMIT_KEYS)
                      + f" [dim]({source})[/]")


@hints_app.command("list")
def hints_list(
    ctx: typer.Context,
    student: str = typer.Option(None, "--student", help="Only this student's requests."),
    problem: str = typer.Option(None, "--problem", help="Only requests on this problem."),
    status: str = typer.Option(None, "--status", help=f"Only requests in this state: {', '.join(HINT_STATUSES)}."),
    limit: int = typer.Option(50, min=1, max=10000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the requests as JSON."),
) -> None:
    """List hint requests, newest first."""
    if status is not None and status not in HINT_STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(HINT_STATUSES)}", param_hint="--status")
    try:
        with ctx.obj.runtime.db.scope() as session:
            rows = hints_service.list_hints(session, student_id=student, problem_id=problem, status=status,
                                            limit=limit)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json([_summary(row) for row in rows])
        return
    table = Table(title=f"{len(rows)} hint requests")
    for column in ("id", "time", "student", "problem", "type", "status", "polls", "rated"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id), row.created_at.strftime("%Y-%m-%d %H:%M:%S"), text(row.student_id), text(row.problem_id),
            text(row.hint_type), _status_text(row), str(row.poll_count),
            {True: "helpful", False: "not helpful", None: ""}[row.is_hint_helpful],
        )
    console.print(table)


@hints_app.command("show")
def hints_show(
    ctx: typer.Context,
    request_id: int = typer.Argument(..., min=0, max=2**63 - 1, help="The hint request's id."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Show one hint request: program, reflection, hint, rating, polls and delivery history."""
    try:
        with ctx.obj.runtime.db.scope() as session:
            hint = hints_service.get_hint(session, request_id)
            messages = outbox_service.messages_for_hint(session, request_id)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({**hint.model_dump(mode="json"),
                    "deliveries": [m.model_dump(mode="json") for m in messages]})
        return
    console.print(f"[bold]hint request {hint.id}[/]: {text(hint.hint_type)} hint for {text(hint.student_id)} "
                  f"on {text(hint.problem_id)}, {_status_text(hint)}")
    if hint.failure_reason:
        console.print(f"[red]failure:[/] {text(hint.failure_reason)}")
    console.print(Panel(Syntax(hint.student_program or "", "python", line_numbers=True),
                        title="student program", title_align="left"))
    if hint.reflection_at:
        console.print(Panel(f"[bold]{text(hint.reflection_question)}[/]\n{text(hint.reflection_answer) or '[dim](empty)[/]'}",
                            title=f"reflection ({hint.reflection_at:%Y-%m-%d %H:%M:%S})", title_align="left"))
    else:
        console.print("[dim]no reflection yet[/]")
    if hint.returned_hint is not None:
        console.print(Panel(text(hint.returned_hint), title=f"hint ({hint.returned_time:%Y-%m-%d %H:%M:%S})",
                            title_align="left"))
    elif hint.generation_error_message:
        console.print(f"[red]generation error:[/] {text(hint.generation_error_message)}")
    rating = {True: "helpful", False: "not helpful", None: "not rated"}[hint.is_hint_helpful]
    console.print(f"rating: {rating}; polls: {hint.poll_count}"
                  + (f" (first {hint.first_polled_at:%H:%M:%S}, last {hint.last_polled_at:%H:%M:%S})"
                     if hint.first_polled_at else ""))
    table = Table(title="delivery history")
    for column in ("message", "kind", "status", "attempts", "created", "delivered", "last error"):
        table.add_column(column)
    for m in messages:
        table.add_row(str(m.id), m.kind, m.status, str(m.attempts), f"{m.created_at:%H:%M:%S}",
                      f"{m.delivered_at:%H:%M:%S}" if m.delivered_at else "", text(m.last_error))
    console.print(table)


@outbox_app.callback()
def outbox_list(
    ctx: typer.Context,
    status: list[str] = typer.Option(
        None, "--status", help="Show messages in this state (repeatable): pending, failed, delivered, cancelled."
    ),
    limit: int = typer.Option(100, min=1, max=10000, help="At most this many, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="Print counts and messages as JSON."),
) -> None:
    """Show the outbox: counts by state and the pending and failed messages.

    `orchestrator outbox retry ID` queues a failed message again.
    """
    if ctx.invoked_subcommand is not None:
        return
    statuses = tuple(status or ("pending", "failed"))
    for item in statuses:
        if item not in outbox_service.STATUSES:
            raise typer.BadParameter(f"unknown state {item!r}", param_hint="--status")
    try:
        with ctx.obj.runtime.db.scope() as session:
            counts = outbox_service.counts(session)
            messages = outbox_service.list_messages(session, statuses=statuses, limit=limit)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json({"counts": counts, "messages": [m.model_dump(mode="json") for m in messages]})
        return
    console.print("  ".join(f"{name}: [bold]{count}[/]" for name, count in counts.items()))
    table = Table(title=f"{', '.join(statuses)} messages")
    for column in ("id", "kind", "hint request", "status", "attempts", "next attempt", "last error"):
        table.add_column(column)
    for m in messages:
        table.add_row(str(m.id), m.kind, str(m.hint_request_id or ""), m.status, str(m.attempts),
                      f"{m.next_attempt_at:%H:%M:%S}" if m.status == "pending" else "", text(m.last_error))
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    message_id: int = typer.Argument(..., min=0, max=2**63 - 1, help="The failed message's id."),
) -> None:
    """Queue a failed message again (and the messages cancelled behind it).

    A hint request that failed because this delivery gave up is reopened, so the
    student's poll sees the hint when it comes.
    """
    try:
        with ctx.obj.runtime.db.scope(immediate=True) as session:
            requeued = hints_service.retry_delivery(session, message_id=message_id)
    except OrchestratorError as exc:
        fail_with(exc)
    console.print(f"queued again: {', '.join(map(str, requeued))}")


def _status_text(row) -> str:
    text = {"pending": "[yellow]pending[/]", "succeeded": "[green]succeeded[/]", "failed": "[red]failed[/]"}.get(
        row.status, row.status)
    return text + (" [dim](cancelled)[/]" if row.is_cancelled else "")


def _summary(row) -> dict:
    data = row.model_dump(mode="json", exclude={"student_program", "student_notebook", "other_hint_data",
                                                "late_result"})
    return data
