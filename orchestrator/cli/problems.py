"""``orchestrator problems`` and ``orchestrator executions``: the catalog and the executions log."""

from __future__ import annotations

from urllib.parse import urlencode

import typer
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.cli.output import console, err_console, fail_with, print_json, text
from orchestrator.errors import OrchestratorError
from orchestrator.service import executions as executions_service
from orchestrator.service import problems as problems_service

problems_app = typer.Typer(help="Browse the problem catalog of the Problem Handler.", no_args_is_help=True)
executions_app = typer.Typer(help="Inspect recorded program executions.", no_args_is_help=True)


def _catalog(ctx: typer.Context, query: str):
    rt = ctx.obj.runtime
    try:
        with err_console.status("Asking the Problem Handler ..."):
            return problems_service.get_catalog(client=rt.problem_handler, cache=rt.catalog, query_string=query)
    except OrchestratorError as exc:
        fail_with(exc)


@problems_app.command("list")
def list_problems(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON."),
) -> None:
    """List the problems: id and name."""
    catalog = _catalog(ctx, "")
    if as_json:
        print_json(catalog)
        return
    table = Table(title=f"{len(catalog)} problems")
    table.add_column("problem_id", style="bold")
    table.add_column("name")
    for problem in catalog:
        table.add_row(text(problem.get("problem_id")), text(problem.get("name")))
    console.print(table)


@problems_app.command("show")
def show_problem(
    ctx: typer.Context,
    problem_id: str = typer.Argument(..., help="The problem's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the problem as JSON."),
) -> None:
    """Show one problem: its task description and template code."""
    problem = _catalog(ctx, urlencode({"problem_id": problem_id, "include_description": "true"}))
    if as_json:
        print_json(problem)
        return
    console.print(f"[bold]{text(problem.get('name', problem_id))}[/] [dim]({text(problem.get('problem_id', problem_id))})[/]")
    description = problem.get("task_description")
    if isinstance(description, str):
        console.print(Panel(Markdown(description), title="task description", title_align="left"))
    else:
        console.print(f"[yellow]no task description:[/] {text(problem.get('task_description_error', 'not given'))}")
    template = problem.get("template_code")
    if isinstance(template, str):
        console.print(Panel(Syntax(template, "python", line_numbers=True), title="template code",
                            title_align="left"))
    else:
        console.print(f"[yellow]no template code:[/] {text(problem.get('template_code_error', 'not given'))}")


@executions_app.command("list")
def list_executions(
    ctx: typer.Context,
    student: str = typer.Option(None, "--student", help="Only this student's executions."),
    problem: str = typer.Option(None, "--problem", help="Only executions of this problem."),
    limit: int = typer.Option(50, min=1, max=10000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the executions as JSON."),
) -> None:
    """List recorded program executions, newest first."""
    try:
        with ctx.obj.runtime.db.scope() as session:
            rows = executions_service.list_executions(
                session, student_id=student, problem_id=problem, limit=limit
            )
    except OrchestratorError as exc:
        fail_with(exc)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    table = Table(title=f"{len(rows)} executions")
    for column in ("time", "student", "problem", "execution_id", "outcome", "elapsed"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            text(row.student_id) or "[dim](instructor)[/]",
            text(row.problem_id),
            str(row.execution_id) if row.execution_id is not None else "[dim]-[/]",
            _outcome(row),
            f"{row.elapsed_time:.3f}s" if row.elapsed_time is not None else "",
        )
    console.print(table)


def _outcome(row) -> str:
    if row.finished_at is None:
        return "[yellow]running[/]" if row.is_success is None else f"[red]poll failed[/] {text(row.error_message)}"
    if not row.is_success:
        return f"[red]failed[/] {text(row.error_message)}"
    return "[green]correct[/]" if row.correctness else "[red]incorrect[/]"
