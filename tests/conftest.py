"""Shared fixtures: a real database per test, settings, an in-process client, a real server.

The suite runs twice (see .ci/run): on SQLite (the default) and on PostgreSQL when
``ORCHESTRATOR_TEST_DATABASE_URL`` names a PostgreSQL database. Tests marked
``postgres`` skip in the SQLite pass. Under ``CI=true`` an unreachable PostgreSQL
fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from falcon import testing
from typer.testing import CliRunner

from orchestrator.api.app import create_app
from orchestrator.cli.main import app as cli_app
from orchestrator.runtime import build_runtime
from orchestrator.settings import load_settings
from orchestrator.store import schema
from orchestrator.store.db import make_engine

TEST_DATABASE_URL = os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL", "").strip()
BACKEND = "postgresql" if TEST_DATABASE_URL.startswith("postgres") else "sqlite"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_report_header(config) -> str:
    return f"orchestrator test database: {BACKEND} ({TEST_DATABASE_URL or 'temporary files'})"


def pytest_collection_modifyitems(config, items) -> None:
    if BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: runs in the PostgreSQL pass")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- databases


class PostgresServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url).set(drivername="postgresql+psycopg2")
        self.admin = sa.create_engine(
            self.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )

    def create(self, *, template: str | None = None) -> str:
        name = f"orch_t_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{clause}')
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if BACKEND != "postgresql":
        yield None
        return
    server = PostgresServer(TEST_DATABASE_URL)
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL at {TEST_DATABASE_URL} is unreachable: {exc.orig}"
        if IN_CI:
            pytest.exit(message, returncode=3)
        pytest.skip(message)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session")
def _migrated_template(postgres_server, tmp_path_factory) -> Iterator[str]:
    """A database (PostgreSQL) or file (SQLite) migrated once, copied for each test."""
    if postgres_server is None:
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        schema.upgrade(engine)
        engine.dispose()
        yield str(path)
        return
    url = postgres_server.create()
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    yield sa.engine.make_url(url).database
    postgres_server.drop(url)


@pytest.fixture
def empty_database_url(postgres_server, tmp_path) -> Iterator[str]:
    """A database with no tables at all."""
    if postgres_server is None:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = postgres_server.create()
    yield url
    postgres_server.drop(url)


@pytest.fixture
def database_url(postgres_server, _migrated_template, tmp_path) -> Iterator[str]:
    """A fresh database at the migration head, private to this test."""
    if postgres_server is None:
        path = tmp_path / "orchestrator.db"
        shutil.copyfile(_migrated_template, path)
        yield f"sqlite:///{path}"
        return
    url = postgres_server.create(template=_migrated_template)
    yield url
    postgres_server.drop(url)


# --------------------------------------------------------------------------- settings and app


@pytest.fixture
def base_env(database_url, tmp_path) -> dict[str, str]:
    """Environment variables for a service on this test's database, logging into tmp."""
    return {
        "DATABASE_URL": database_url,
        "ORCHESTRATOR_LOG_DIR": str(tmp_path / "logs"),
    }


@pytest.fixture
def make_settings(base_env, tmp_path):
    def build(**overrides: str):
        return load_settings({**base_env, **overrides}, env_dir=tmp_path)

    return build


@pytest.fixture
def runtime(make_settings):
    rt = build_runtime(make_settings())
    yield rt
    rt.close()


@pytest.fixture
def client(runtime) -> testing.TestClient:
    return testing.TestClient(create_app(runtime.settings, runtime))


# --------------------------------------------------------------------------- real processes


_issued_ports: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never the same twice in one test run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class ServerProcess:
    """A real ``orchestrator serve`` child process and where it logs."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cwd = cwd
        self.output_path = cwd / "serve-output.log"
        self._output = open(self.output_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port), *args],
            env=env, cwd=cwd, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=timeout, message=f"serve on port {self.port}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._output.close()
        return self.proc.returncode


@pytest.fixture
def serve_process(tmp_path, base_env):
    """Start ``orchestrator serve`` processes; each is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> ServerProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_"))}
        full_env.pop("DATABASE_URL", None)
        full_env.update(base_env)
        full_env.update(env or {})
        server = ServerProcess(list(args), full_env, tmp_path, free_port())
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- simulated upstreams


class Simulators:
    """Both simulators on free ports, and the settings that point the orchestrator at them."""

    def __init__(self, problems, hints) -> None:
        self.problems = problems
        self.hints = hints
        from orchestrator.simulators.server import upstream_environment

        self.env = upstream_environment(problems, hints)

    def set_faults(self, which: str, **faults) -> None:
        server = self.problems if which == "problems" else self.hints
        response = requests.put(f"{server.url}/_sim/faults", json=faults, timeout=5)
        assert response.status_code == 200, response.text

    def stats(self, which: str) -> dict:
        server = self.problems if which == "problems" else self.hints
        return requests.get(f"{server.url}/_sim/stats", timeout=5).json()


@pytest.fixture
def simulators() -> Iterator[Simulators]:
    from orchestrator.simulators.server import start_simulators

    problems, hints = start_simulators(execution_delay=0.2, hint_delay=0.2, case_timeout=2.0)
    yield Simulators(problems, hints)
    hints.stop()
    problems.stop()


# Short timeouts and no waiting between retries keep fault tests fast.
FAST_UPSTREAM_ENV = {
    "ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT": "1",
    "ORCHESTRATOR_UPSTREAM_READ_TIMEOUT": "1",
    "ORCHESTRATOR_UPSTREAM_RETRIES": "2",
    "ORCHESTRATOR_DELIVERY_BACKOFF_SECONDS": "0.05",
    "ORCHESTRATOR_DELIVERY_BACKOFF_MAX_SECONDS": "0.3",
    "ORCHESTRATOR_OUTBOX_LEASE_SECONDS": "3",
}


@pytest.fixture
def sim_runtime(make_settings, simulators):
    rt = build_runtime(make_settings(**simulators.env, **FAST_UPSTREAM_ENV))
    yield rt
    rt.close()


@pytest.fixture
def sim_client(sim_runtime) -> testing.TestClient:
    """An in-process client of an orchestrator whose upstreams are the simulators."""
    return testing.TestClient(create_app(sim_runtime.settings, sim_runtime))


class LiveApp:
    """The app on a real HTTP server in a thread, so that simulators can call it back."""

    def __init__(self, app) -> None:
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Threading(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        self._server = make_server("127.0.0.1", 0, app, server_class=Threading, handler_class=Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class HintStack:
    """An orchestrator (in-process client + live HTTP server), its dispatcher, and the simulators."""

    def __init__(self, runtime, simulators, *, dispatcher: bool = True) -> None:
        from orchestrator.service.dispatch import build_dispatcher

        self.runtime = runtime
        self.simulators = simulators
        self.app = create_app(runtime.settings, runtime)
        self.client = testing.TestClient(self.app)
        self.live = LiveApp(self.app)
        simulators.hints.simulator.configure({"callback_url": f"{self.live.url}/ai_hint/save/"})
        self.dispatcher = build_dispatcher(runtime)
        self._stop = threading.Event()
        self._thread = None
        if dispatcher:
            self.start_dispatcher()

    def start_dispatcher(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.dispatcher.run_forever, args=(self._stop,), kwargs={"interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop_dispatcher(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._thread = None

    def close(self) -> None:
        self.stop_dispatcher()
        self.dispatcher.close()
        self.live.stop()


@pytest.fixture
def stack_env():
    """Extra settings for the hint stack; a test may change them before using ``stack``."""
    return {}


@pytest.fixture
def stack(make_settings, simulators, stack_env):
    runtime = build_runtime(make_settings(**simulators.env, **FAST_UPSTREAM_ENV, **stack_env))
    built = HintStack(runtime, simulators)
    yield built
    built.close()
    runtime.close()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def make_cli(monkeypatch, tmp_path):
    """A CLI invoker in a clean working directory, with none of the service's variables
    from the outer environment: only ``base`` plus what each call adds."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_", "NOTIFICATION_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)

    def build(base: dict[str, str] | None = None):
        def invoke(*args, env=None, extra=None, input=None):
            merged = {**(base or {}), **(env or {}), **(extra or {})}
            return CliRunner().invoke(cli_app, list(args), env=merged, input=input, catch_exceptions=False)

        return invoke

    return build


# --------------------------------------------------------------------------- e-mail and instructors


class MailSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives.

    ``start()`` may be called after ``stop()`` to bring "the mail server" back on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict] = []
        self._controller = None

    def start(self) -> "MailSink":
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                sink.messages.append({
                    "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                    "subject": str(parsed["Subject"]), "body": parsed.get_content(),
                })
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def env(self) -> dict[str, str]:
        return {"ORCHESTRATOR_SMTP_HOST": "127.0.0.1", "ORCHESTRATOR_SMTP_PORT": str(self.port),
                "ORCHESTRATOR_SMTP_TLS": "none", "ORCHESTRATOR_SMTP_FROM": "hints@course.example"}


@pytest.fixture
def mail() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


INSTRUCTORS_YAML = """\
instructors:
  - {id: 1, name: Ada Lovelace, email: ada@course.example}
  - {id: 2, name: Grace Hopper, email: grace@course.example}
feedback_timeout: 30
instructor_notification_email:
  subject: "{n_unprocessed_requests} escalations waiting"
  body: "Waiting: {n_unprocessed_requests}. In progress: {n_inprocessing_requests}."
student_notification_email:
  subject: "Your question on {problem_id} was answered"
  body: "An instructor answered your question on {problem_id}."
"""


@pytest.fixture
def instructors_file(tmp_path) -> Path:
    path = tmp_path / "instructors.yaml"
    path.write_text(INSTRUCTORS_YAML)
    return path


def issue_token(runtime, instructor_id: str) -> str:
    from orchestrator.service.credentials import issue_token as issue

    with runtime.db.scope() as session:
        return issue(session, runtime.instructor_config, instructor_id=instructor_id).token
