"""``orchestrator worker``: the outbox dispatcher on its own."""

from __future__ import annotations

import signal
import threading

import typer

from orchestrator.cli.output import err_console, fail_with
from orchestrator.errors import OrchestratorError
from orchestrator.logs import configure_logging
from orchestrator.service.dispatch import build_dispatcher
from orchestrator.service.health import check_readiness


def worker(
    ctx: typer.Context,
    threads: int = typer.Option(4, min=1, max=64, help="Deliveries in flight at once."),
    interval: float = typer.Option(
        None, min=0.01, help="Seconds between polls of an idle outbox [default: ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS]."
    ),
) -> None:
    """Deliver outbox messages (hint requests, reflections) until SIGTERM or Ctrl-C.

    `orchestrator serve` runs one of these beside gunicorn unless --no-dispatcher; run
    it alone to place dispatchers elsewhere. Any number may run against one
    PostgreSQL database: claims are leased and never overlap. On SIGTERM it finishes
    the deliveries in flight and exits.
    """
    settings = ctx.obj.settings
    # Each delivery thread may hold a connection, plus one for claims and sweeps.
    ctx.obj.build_runtime(connections=threads + 1)
    try:
        check_readiness(ctx.obj.runtime.db)
    except OrchestratorError as exc:
        fail_with(exc)
    configure_logging(level=settings.log_level, log_dir=settings.log_dir, role="worker")
    dispatcher = build_dispatcher(ctx.obj.runtime, threads=threads)
    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    err_console.print(f"dispatcher {dispatcher.owner} delivering", highlight=False)
    dispatcher.run_forever(stop, interval=interval or settings.dispatcher_interval_seconds)
    dispatcher.close()
    ctx.obj.runtime.close()
