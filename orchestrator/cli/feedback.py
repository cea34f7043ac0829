"""``orchestrator feedback``: the instructor's terminal for escalated requests.

Every command works locally (on the server, against the database) or remotely
(``--url`` of a running orchestrator and an instructor token), with the same output.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import typer
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.cli.output import console, fail, fail_with, print_json, text
from orchestrator.errors import OrchestratorError

feedback_app = typer.Typer(
    help="Answer escalated requests: queue, next, show, answer, release. Local by default; "
         "--url and a token talk to a running orchestrator instead.",
    no_args_is_help=True,
)


class QueueAccess(Protocol):
    def queue(self) -> dict[str, Any]: ...
    def fetch(self, instructor_id: str) -> dict[str, Any]: ...
    def show(self, instructor_request_id: int) -> dict[str, Any]: ...
    def answer(self, instructor_request_id: int, instructor_id: str, text: str) -> None: ...
    def release(self, instructor_request_id: int, instructor_id: str) -> None: ...


class LocalAccess:
    """The service functions, on this machine's database (what the API calls too)."""

    def __init__(self, runtime) -> None:
        self._rt = runtime

    def queue(self) -> dict[str, Any]:
        from orchestrator.service import feedback

        return feedback.queue(self._rt.db, self._rt.instructor_config)

    def fetch(self, instructor_id: str) -> dict[str, Any]:
        from orchestrator.service import feedback

        return feedback.next_work_item(self._rt.db, self._rt.instructor_config,
                                       problem_client=self._rt.problem_handler, catalog=self._rt.catalog,
                                       instructor_id=instructor_id)

    def show(self, instructor_request_id: int) -> dict[str, Any]:
        return self._describe(instructor_request_id, full=True)

    def answer(self, instructor_request_id: int, instructor_id: str, text: str) -> None:
        from orchestrator.service import feedback

        feedback.save_answer(self._rt.db, self._rt.instructor_config, self._rt.notifier,
                             instructor_request_id=instructor_request_id, instructor_id=instructor_id, feedback=text)

    def release(self, instructor_request_id: int, instructor_id: str) -> None:
        from orchestrator.service import feedback

        feedback.release(self._rt.db, self._rt.instructor_config, instructor_request_id=instructor_request_id,
                         instructor_id=instructor_id)

    def _describe(self, instructor_request_id: int, *, full: bool) -> dict[str, Any]:
        from orchestrator.service import feedback

        return feedback.describe(self._rt.db, self._rt.instructor_config, problem_client=self._rt.problem_handler,
                                 catalog=self._rt.catalog, instructor_request_id=instructor_request_id, full=full)


class Context:
    def __init__(self, state, url: str | None, token: str | None, instructor: str | None) -> None:
        self.state, self.url, self.token, self.instructor = state, url, token, instructor

    def access(self) -> QueueAccess:
        if self.url:
            from orchestrator.clients.orchestrator_api import OrchestratorClient

            return OrchestratorClient(self.url, token=self.token)
        return LocalAccess(self.state.runtime)

    def instructor_id(self) -> str:
        if not self.instructor:
            fail("say who you are: --instructor ID (or ORCHESTRATOR_INSTRUCTOR_ID)", code=2)
        if not self.url:
            config = self.state.runtime.instructor_config
            if config.instructors and config.get(self.instructor) is None:
                fail(f"no instructor {self.instructor!r} in {config.source}", code=2)
        return self.instructor


@feedback_app.callback()
def options(
    ctx: typer.Context,
    url: str = typer.Option(None, "--url", envvar="ORCHESTRATOR_URL", show_envvar=True,
                            help="A running orchestrator's base URL; without it, work on the local database."),
    token: str = typer.Option(None, "--token", envvar="ORCHESTRATOR_INSTRUCTOR_TOKEN", show_envvar=True,
                              help="Your instructor token (remote mode)."),
    instructor: str = typer.Option(None, "--instructor", envvar="ORCHESTRATOR_INSTRUCTOR_ID", show_envvar=True,
                                   help="Your instructor id (as in the instructor YAML)."),
) -> None:
    ctx.obj = Context(ctx.obj, url, token, instructor)


def _run(call):
    try:
        return call()
    except OrchestratorError as exc:
        fail_with(exc)


@feedback_app.command("queue")
def queue_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the queue as JSON."),
) -> None:
    """Counts, and the waiting and assigned requests with their age, oldest first."""
    data = _run(lambda: ctx.obj.access().queue())
    if as_json:
        print_json(data)
        return
    console.print(f"waiting: [bold]{data['waiting']}[/]  assigned: [bold]{data['assigned']}[/]  "
                  f"answered: [bold]{data['answered']}[/]")
    table = Table(title="open requests (oldest first)")
    for column in ("id", "problem", "hint type", "state", "instructor", "age"):
        table.add_column(column)
    for item in data["items"]:
        table.add_row(str(item["instructor_request_id"]), text(item["problem_id"]), text(item["hint_type"]),
                      text(item["state"]), text(item["instructor_id"]), _age(item["created_at"]))
    console.print(table)


@feedback_app.command("next")
def next_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the request as JSON."),
) -> None:
    """Take the next request (or the one you already hold) and show it."""
    instructor_id = ctx.obj.instructor_id()
    item = _run(lambda: ctx.obj.access().fetch(instructor_id))
    if as_json:
        print_json(item)
        return
    if not item:
        console.print("Nothing to do: the queue is empty.")
        return
    _render(item)
    console.print(f"Answer with: orchestrator feedback answer {item['instructor_request_id']}")


@feedback_app.command("show")
def show_command(
    ctx: typer.Context,
    instructor_request_id: int = typer.Argument(..., min=0, max=2**63 - 1, help="The request's id."),
    as_json: bool = typer.Option(False, "--json", help="Print the request as JSON."),
) -> None:
    """Show one request: problem, program, reflection, AI hint, notes, state and answer."""
    item = _run(lambda: ctx.obj.access().show(instructor_request_id))
    if as_json:
        print_json(item)
        return
    _render(item)


@feedback_app.command("answer")
def answer_command(
    ctx: typer.Context,
    instructor_request_id: int = typer.Argument(..., min=0, max=2**63 - 1, help="The request's id."),
    file: Path = typer.Option(None, "--file", "-f", help="Read the answer from this file ('-' for stdin)."),
    message: str = typer.Option(None, "--message", "-m", help="The answer itself."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Send without asking for confirmation."),
) -> None:
    """Answer a request: from --message, --file (or stdin with '-f -'), else in $EDITOR.

    Shows what will be sent and asks before sending (unless --yes).
    """
    instructor_id = ctx.obj.instructor_id()
    text = _answer_text(file, message)
    if not text.strip():
        fail("the answer is empty; nothing sent", code=2)
    console.print(Panel(Markdown(text), title=f"answer to request {instructor_request_id}", title_align="left"))
    if not yes and not typer.confirm("Send this answer?", default=False):
        fail("not sent", code=1)
    _run(lambda: ctx.obj.access().answer(instructor_request_id, instructor_id, text))
    console.print(f"Sent. Request {instructor_request_id} is answered.")


@feedback_app.command("release")
def release_command(
    ctx: typer.Context,
    instructor_request_id: int = typer.Argument(..., min=0, max=2**63 - 1, help="The request's id."),
) -> None:
    """Give a request you hold back to the queue (it keeps its place)."""
    instructor_id = ctx.obj.instructor_id()
    _run(lambda: ctx.obj.access().release(instructor_request_id, instructor_id))
    console.print(f"Released request {instructor_request_id}; it is waiting again.")


def _answer_text(file: Path | None, message: str | None) -> str:
    if message is not None and file is not None:
        fail("give --message or --file, not both", code=2)
    if message is not None:
        return message
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read()
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", code=2)
    edited = typer.edit("\n# Write your answer above. Lines starting with '#' are dropped.\n")
    if edited is None:
        fail("no answer written; nothing sent", code=1)
    return "\n".join(line for line in edited.splitlines() if not line.startswith("#")).strip() + "\n"


def _render(item: dict[str, Any]) -> None:
    header = f"[bold]request {item['instructor_request_id']}[/]: {text(item['hint_type'])} hint on " \
             f"[bold]{text(item['name'])}[/] ({text(item['problem_id'])})"
    if item.get("state"):
        header += f", {text(item['state'])}" + (f" by {text(item['instructor_id'])}" if item.get("instructor_id") else "")
    console.print(header)
    if item.get("problem_description"):
        console.print(Panel(Markdown(item["problem_description"]), title="problem", title_align="left"))
    console.print(Panel(Syntax(item.get("student_program") or "", "python", line_numbers=True),
                        title="student program", title_align="left"))
    if item.get("reflection_question") is not None:
        answer = text(item.get("reflection_answer")) or "[dim](empty)[/]"
        reflection = f"[bold]{text(item['reflection_question'])}[/]\n{answer}"
    else:
        reflection = "[dim](the student did not reflect)[/]"
    console.print(Panel(reflection, title="reflection", title_align="left"))
    console.print(Panel(text(item.get("ai_hint")) or "[dim](no hint)[/]", title="AI hint", title_align="left"))
    console.print(Panel(text(item.get("student_notes")) or "[dim](none)[/]", title="student notes",
                        title_align="left"))
    if item.get("instructor_feedback"):
        console.print(Panel(Markdown(item["instructor_feedback"]), title="answer", title_align="left"))


def _age(iso: str) -> str:
    seconds = int((datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
