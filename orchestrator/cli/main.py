"""The ``orchestrator`` command: one Typer app, one module per command or group."""

from __future__ import annotations

import sys

import typer

from orchestrator import __version__
from orchestrator.cli import (
    config, db, doctor, export, feedback, hints, instructors, privacy, problems, report, serve, simulate, worker,
)
from orchestrator.cli.state import State
from orchestrator.logs import configure_logging, quiet_logging

app = typer.Typer(
    name="orchestrator",
    help=(
        "The orchestrator of the AI-hint platform: the one service the student and "
        "instructor frontends talk to. Run the API, migrate its database, simulate "
        "its upstreams."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orchestrator {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what the command does (JSON lines on stderr)."
    ),
) -> None:
    """Settings come from the environment and .env.local (or .env) in the working directory."""
    if verbose:
        configure_logging(level="DEBUG", log_dir=None, stream=sys.stderr)
    else:
        quiet_logging()
    ctx.obj = State()


app.command("serve")(serve.serve)
app.command("migrate")(db.migrate)
app.command("simulate")(simulate.simulate)
app.command("worker")(worker.worker)
app.command("config")(config.show_config)
app.command("doctor")(doctor.doctor)
app.command("report")(report.report)
app.command("export")(export.export)
app.command("prune")(privacy.prune)
app.add_typer(problems.problems_app, name="problems")
app.add_typer(problems.executions_app, name="executions")
app.add_typer(hints.quota_app, name="quota")
app.add_typer(hints.hints_app, name="hints")
app.add_typer(hints.outbox_app, name="outbox")
app.add_typer(instructors.instructors_app, name="instructors")
app.add_typer(feedback.feedback_app, name="feedback")
app.add_typer(privacy.students_app, name="students")
