"""``orchestrator serve``: the API under gunicorn, supervised beside its helpers.

``serve`` is a small supervisor: it checks the database (migrating the embedded
SQLite file itself), starts gunicorn as a child process and, with ``--demo``, the
simulated upstreams; it forwards SIGINT/SIGTERM to its children and exits with
gunicorn's exit status. Settings reach the children through the environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import typer
from sqlalchemy.exc import OperationalError

from orchestrator.cli.output import err_console, fail
from orchestrator.cli.state import State
from orchestrator.logs import configure_logging
from orchestrator.settings import Settings
from orchestrator.store import schema

DEFAULT_WORKERS = 2 * (os.cpu_count() or 1)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for all interfaces)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        DEFAULT_WORKERS, min=1, help="gunicorn worker processes (default: 2 per CPU core)."
    ),
    threads: int = typer.Option(
        1, min=1, help="Threads per worker; more than 1 switches to gthread workers (sync is faster here)."
    ),
    timeout: int = typer.Option(30, min=1, help="Seconds a worker may spend on one request before it is restarted."),
    graceful_timeout: int = typer.Option(30, min=1, help="Seconds in-flight requests get to finish on shutdown."),
    keepalive: int = typer.Option(5, min=0, help="Seconds to hold an idle keep-alive connection."),
    demo: bool = typer.Option(
        False, "--demo", help="Also run the simulated Problem Handler and AI Hint backend and use them."
    ),
    problems_port: int = typer.Option(8002, min=1, max=65535, help="With --demo: Problem Handler simulator port."),
    hint_port: int = typer.Option(8001, min=1, max=65535, help="With --demo: AI Hint simulator port."),
    no_dispatcher: bool = typer.Option(
        False, "--no-dispatcher",
        help="Do not run the outbox dispatcher here (run `orchestrator worker` elsewhere instead).",
    ),
) -> None:
    """Run the HTTP API under gunicorn (default 127.0.0.1:8000).

    With no database configured the SQLite file orchestrator.db in the working
    directory is created and migrated; a PostgreSQL database must have been
    migrated with `orchestrator migrate` first. Quota profiles and every setting are
    validated before anything starts.

    Beside gunicorn it runs the outbox dispatcher (`orchestrator worker`), which
    delivers hint requests to the AI Hint backend, and restarts it if it dies.
    """
    env = dict(os.environ)
    state = ctx.obj
    if demo:
        env.update(_demo_environment(problems_port, hint_port))
        state = State(env)
    settings: Settings = state.settings
    configure_logging(level=settings.log_level, log_dir=settings.log_dir, role="serve")
    _prepare_database(state.runtime.db.engine, settings)
    state.runtime.close()
    if settings.instructor_auth == "none":
        err_console.print(
            "[yellow]warning:[/] ORCHESTRATOR_INSTRUCTOR_AUTH=none: the instructor endpoints accept anyone "
            "who can reach this service. Use it on a closed network only.",
            highlight=False, soft_wrap=True,
        )
    if not settings.service_token:
        err_console.print(
            "[yellow]warning:[/] ORCHESTRATOR_SERVICE_TOKEN is not set: /ai_hint/save/ accepts any caller "
            "on a loopback or private address. Set a token on shared networks.",
            highlight=False, soft_wrap=True,
        )

    # One directory for every process's metrics (gunicorn workers and the dispatcher).
    metrics_dir = tempfile.mkdtemp(prefix="orchestrator-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    supervisor = Supervisor()
    try:
        if demo:
            supervisor.start(
                "simulators",
                [sys.executable, "-m", "orchestrator", "simulate", "--host", "127.0.0.1",
                 "--problems-port", str(problems_port), "--hint-port", str(hint_port),
                 "--orchestrator-url", f"http://{_connectable(host)}:{port}"],
                env,
            )
            for sim_port in (problems_port, hint_port):
                supervisor.wait_for_port("127.0.0.1", sim_port, timeout=15)
        if not no_dispatcher:
            supervisor.start("dispatcher", [sys.executable, "-m", "orchestrator", "worker"], env,
                             restart=True)
        supervisor.start("gunicorn", gunicorn_command(
            host=host, port=port, workers=workers, threads=threads, timeout=timeout,
            graceful_timeout=graceful_timeout, keepalive=keepalive,
        ), env)
        err_console.print(
            f"orchestrator listening on http://{host}:{port} "
            f"({workers} worker{'s' if workers != 1 else ''}, database {_shown(settings)})"
            + (f"; simulators on ports {problems_port} and {hint_port}" if demo else ""),
            highlight=False,
        )
        code = supervisor.run(main="gunicorn")
    finally:
        supervisor.stop_all()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    raise typer.Exit(code)


def gunicorn_command(
    *, host: str, port: int, workers: int, threads: int, timeout: int,
    graceful_timeout: int, keepalive: int,
) -> list[str]:
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "gthread" if threads > 1 else "sync",
        "--threads", str(threads),
        "--timeout", str(timeout),
        "--graceful-timeout", str(graceful_timeout),
        "--keep-alive", str(keepalive),
        # The largest request line gunicorn allows: two 255-character ids of 4-byte
        # characters, percent-encoded, must fit in a query string.
        "--limit-request-line", "8190",
        # The app logs one structured line per request itself.
        "--config", "python:orchestrator.api.gunicorn_hooks",
        "--error-logfile", "-",
        "--log-level", "warning",
        "orchestrator.api.wsgi:app",
    ]


def _prepare_database(engine, settings: Settings) -> None:
    shown = _shown(settings)
    try:
        if settings.auto_migrate:
            before = schema.current_revision(engine)
            status = schema.upgrade(engine)
            if before != status.current:
                err_console.print(f"migrated {shown} from {before or '(empty)'} to {status.current}")
            return
        status = schema.schema_status(engine)
    except OperationalError as exc:
        fail(f"cannot reach the database at {shown}: {str(exc.orig).strip()}", code=4)
    if not status.is_current:
        fail(
            f"the database at {shown} is not migrated "
            f"(revision {status.current or 'none'}, code expects {status.head}).",
            code=3,
            hint="Run `orchestrator migrate` first (or set ORCHESTRATOR_AUTO_MIGRATE=true).",
        )


def _shown(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _connectable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _demo_environment(problems_port: int, hint_port: int) -> dict[str, str]:
    problems = f"http://127.0.0.1:{problems_port}"
    hints = f"http://127.0.0.1:{hint_port}"
    return {
        "BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL": f"{problems}/query/programming_problems/",
        "BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL": f"{problems}/execution/execute_program/",
        "BACKEND_PROBLEM_HANDLER_GET_EXECUTION_RESULT_URL": f"{problems}/execution/get_execution_result/",
        "BACKEND_HINT_ADD_REQUEST_URL": f"{hints}/ai_hint/add_request/",
        "BACKEND_HINT_ADD_REFLECTION_URL": f"{hints}/ai_hint/add_reflection/",
    }


@dataclass
class Supervisor:
    """Child processes started by ``serve``, stopped together."""

    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    _stopping: bool = False
    _restart: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    _restart_at: dict[str, float] = field(default_factory=dict)
    _restart_delay: dict[str, float] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str], *, restart: bool = False) -> None:
        """Start a child; with ``restart`` it is started again (with backoff) whenever it dies."""
        self.children[name] = subprocess.Popen(command, env=env)
        if restart:
            self._restart[name] = (command, env)

    def wait_for_port(self, host: str, port: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, child in self.children.items():
                if child.poll() is not None:
                    fail(f"{name} exited with status {child.returncode} during start-up")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        fail(f"nothing listens on {host}:{port} after {timeout:.0f}s")

    def run(self, *, main: str) -> int:
        """Wait for ``main`` to exit, forwarding SIGINT/SIGTERM to every child."""

        def forward(signum, _frame):
            self._stopping = True
            for child in self.children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        main_child = self.children[main]
        while True:
            code = main_child.poll()
            if code is not None:
                return code if not self._stopping else 0
            for name, child in list(self.children.items()):
                if name == main or child.poll() is None or self._stopping:
                    continue
                if name in self._restart:
                    self._maybe_restart(name, child.returncode)
                else:
                    err_console.print(f"{name} exited with status {child.returncode}; stopping")
                    forward(signal.SIGTERM, None)
            time.sleep(0.2)

    def _maybe_restart(self, name: str, code: int) -> None:
        now = time.monotonic()
        if name not in self._restart_at:
            delay = min(30.0, self._restart_delay.get(name, 0.5) * 2)
            self._restart_delay[name] = delay
            self._restart_at[name] = now + delay
            err_console.print(f"{name} exited with status {code}; restarting in {delay:.0f}s")
            return
        if now >= self._restart_at[name]:
            del self._restart_at[name]
            command, env = self._restart[name]
            self.children[name] = subprocess.Popen(command, env=env)

    def stop_all(self, timeout: float = 35.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
