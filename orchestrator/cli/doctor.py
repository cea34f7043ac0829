"""``orchestrator doctor``: check settings, database, YAML, upstreams and SMTP."""

from __future__ import annotations

import typer
from rich.table import Table

from orchestrator.cli.output import console, print_json, text
from orchestrator.service.doctor import FAIL, OK, WARN, run_checks

STYLES = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check that this deployment can work: settings, database and migrations, quota and
    instructor YAML, the Problem Handler and the AI Hint backend, SMTP login.

    Prints OK / WARN / FAIL with the fix for each; exits 1 if anything FAILs.
    """
    with console.status("Checking ...") if not as_json else _nothing():
        checks = run_checks()
    failed = any(check.status == FAIL for check in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [check.as_dict() for check in checks]})
    else:
        table = Table(title="orchestrator doctor")
        for column in ("check", "status", "what was seen", "fix"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, f"[{STYLES[check.status]}]{check.status}[/]", text(check.detail), text(check.fix))
        console.print(table)
    if failed:
        raise typer.Exit(1)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
