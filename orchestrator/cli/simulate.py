"""``orchestrator simulate``: the simulated Problem Handler and AI Hint backend."""

from __future__ import annotations

import os

import typer


def simulate(
    host: str = typer.Option("127.0.0.1", help="Address both simulators listen on."),
    problems_port: int = typer.Option(8002, min=0, max=65535, help="Problem Handler port."),
    hint_port: int = typer.Option(8001, min=0, max=65535, help="AI Hint backend port."),
    orchestrator_url: str = typer.Option(
        "http://127.0.0.1:8000",
        help="Base URL of the orchestrator; hints are posted to <URL>/ai_hint/save/.",
    ),
    execution_delay: float = typer.Option(
        0.5, min=0.0, help="Seconds before an execution result is available."
    ),
    case_timeout: float = typer.Option(
        2.0, min=0.01, help="Seconds one test case may run; longer executions answer HTTP 500."
    ),
    hint_delay: float = typer.Option(
        1.0, min=0.0, help="Seconds between the reflection (see --callback-when) and the hint callback."
    ),
    callback_when: str = typer.Option(
        "reflection", help="Start generating after the 'reflection' arrives, or right after the 'request'."
    ),
    generation_failure_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of hints reported as failed generations."
    ),
    callback_attempts: int = typer.Option(
        8, min=1, help="Attempts to deliver each hint callback (5xx and connection errors are retried)."
    ),
    seed: int = typer.Option(None, help="Seed of the random choices (failures, faults), for repeatable runs."),
    callback_token: str = typer.Option(
        None,
        envvar="ORCHESTRATOR_SERVICE_TOKEN",
        show_envvar=True,
        help="Bearer token sent with each callback (defaults to the orchestrator's service token).",
    ),
) -> None:
    """Run the simulated upstreams as real HTTP servers until interrupted.

    They speak the upstream protocols of the contract: problem list and details,
    program execution (programs really run, with a timeout) and hint generation
    with a callback. Faults (latency, HTTP 500, non-JSON, refused connections)
    can be switched on at run time: PUT /_sim/faults on either port; see
    docs/simulators.md.
    """
    if callback_when not in ("reflection", "request"):
        raise typer.BadParameter("must be 'reflection' or 'request'", param_hint="--callback-when")
    from orchestrator.simulators.server import run_simulators

    run_simulators(
        problems_port=problems_port,
        hint_port=hint_port,
        orchestrator_url=orchestrator_url,
        host=host,
        execution_delay=execution_delay,
        case_timeout=case_timeout,
        hint_delay=hint_delay,
        callback_attempts=callback_attempts,
        seed=seed,
        callback_when=callback_when,
        generation_failure_rate=generation_failure_rate,
        callback_token=callback_token or os.environ.get("ORCHESTRATOR_SERVICE_TOKEN") or None,
    )
