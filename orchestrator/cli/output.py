"""Where the CLI writes: data to stdout, diagnostics to stderr, errors as a plain message and an exit code."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from orchestrator import errors

console = Console()
err_console = Console(stderr=True)

EXIT_CODES: list[tuple[type[errors.OrchestratorError], int]] = [
    (errors.ConfigError, 2),
    (errors.ValidationError, 2),
    (errors.SchemaNotCurrentError, 3),
    (errors.DatabaseUnavailableError, 4),
    (errors.UpstreamError, 5),
]


def fail(message: str, *, code: int = 1, hint: str | None = None) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err_console.print(escape(hint), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_with(exc: errors.OrchestratorError) -> NoReturn:
    code = next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), 1)
    fail(exc.message, code=code)


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def text(value) -> str:
    """Data shown inside rich markup (tables, panels): its brackets are not markup."""
    return escape("" if value is None else str(value))
