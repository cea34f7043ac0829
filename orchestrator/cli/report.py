"""``orchestrator report``: the first figures a course team and a researcher ask for."""

from __future__ import annotations

import typer
from rich.table import Table

from orchestrator.cli.output import console, fail_with, print_json, text
from orchestrator.errors import OrchestratorError
from orchestrator.service import reports


def _num(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and unit == "%":
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value}{unit}"


def report(
    ctx: typer.Context,
    since: str = typer.Option(None, "--since", help="Only since then: 7d, 12h, 30m or an ISO date."),
    problem: str = typer.Option(None, "--problem", help="Only this problem."),
    within: int = typer.Option(30, "--within", min=1, max=10080,
                               help="Minutes after a hint in which a correct run counts as following it."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON (as GET /admin/report)."),
) -> None:
    """Hint requests by type and outcome, helpfulness, time to hint, escalations and
    instructor answer times, feedback helpfulness, students served, and how often a hint
    was followed by a correct run of the same problem."""
    try:
        data = reports.build_report(ctx.obj.runtime.db, since=reports.parse_since(since), problem_id=problem,
                                    followed_within_minutes=within)
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json(data)
        return
    scope = ", ".join(f"{k} {v}" for k, v in data["filters"].items() if v is not None and k != "followed_within_minutes")
    console.print(f"[bold]{data['hint_requests']}[/] hint requests from [bold]{data['students_served']}[/] "
                  f"students{' (' + text(scope) + ')' if scope else ''}")
    table = Table(title="AI hints by type")
    for column in ("type", "requests", "succeeded", "failed", "pending", "cancelled", "helpful",
                   "time to hint (median / p90)", f"correct run within {within} min"):
        table.add_column(column, justify="right" if column != "type" else "left")
    for hint_type, row in data["by_type"].items():
        times = row["time_to_hint_seconds"]
        table.add_row(hint_type, str(row["requests"]), str(row["succeeded"]), str(row["failed"]), str(row["pending"]),
                      str(row["cancelled"]), f"{_num(row['helpfulness_rate'], '%')} of {row['rated']}",
                      f"{_num(times['median'], 's')} / {_num(times['p90'], 's')}",
                      f"{row['followed_by_correct_run']} ({_num(row['followed_by_correct_run_rate'], '%')})")
    console.print(table)
    escalations = Table(title="instructor escalations")
    for column in ("escalations", "rate", "answered", "answer time (median / p90)", "feedback helpful"):
        escalations.add_column(column, justify="right")
    answer = data["instructor_answer_seconds"]
    escalations.add_row(str(data["escalations"]), _num(data["escalation_rate"], "%"), str(data["answered_escalations"]),
                        f"{_num(answer['median'], 's')} / {_num(answer['p90'], 's')}",
                        f"{_num(data['feedback_helpfulness_rate'], '%')} of {data['feedback_rated']}")
    console.print(escalations)
    if data["quota_grants"]:
        console.print("quota grants: " + ", ".join(f"{k} +{v}" for k, v in data["quota_grants"].items()))
