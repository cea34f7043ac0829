"""Fixtures for the simulator tests: live simulators on free ports and a callback receiver.

Everything here speaks real HTTP on loopback; nothing is mocked.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
import requests

from orchestrator.simulators.hint_backend import HintBackend
from orchestrator.simulators.problem_handler import ProblemHandler
from orchestrator.simulators.server import SimulatorServer


class CallbackReceiver:
    """A tiny HTTP server standing in for the orchestrator's ``/ai_hint/save/``.

    It records every POST (path, headers, JSON body) and answers with the
    statuses queued in :attr:`statuses`, then with :attr:`default_status`.
    """

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.default_status = 204
        self.calls: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    receiver.calls.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(raw),
                            "at": time.monotonic(),
                        }
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                    receiver._cond.notify_all()
                self.send_response(status)
                if status == 204:
                    self.end_headers()
                    return
                body = json.dumps({"error": "receiver says no"} if status >= 400 else {}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01})
        self._thread.daemon = True
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/ai_hint/save/"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` calls arrived; return all calls so far."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.calls) >= count, timeout)
            return list(self.calls)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    r = CallbackReceiver()
    yield r
    r.close()


@pytest.fixture
def start_problem_handler() -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: a running Problem Handler on a free port (fast defaults for tests)."""
    servers: list[SimulatorServer] = []

    def start(**options: Any) -> SimulatorServer:
        options.setdefault("execution_delay", 0.05)
        options.setdefault("case_timeout", 2.0)
        server = SimulatorServer(ProblemHandler(**options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def problems(start_problem_handler: Callable[..., SimulatorServer]) -> SimulatorServer:
    return start_problem_handler()


@pytest.fixture
def start_hint_backend(receiver: CallbackReceiver) -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: a running AI Hint backend calling back ``receiver`` (short delays)."""
    servers: list[SimulatorServer] = []

    def start(**options: Any) -> SimulatorServer:
        options.setdefault("callback_url", receiver.url)
        options.setdefault("hint_delay", 0.05)
        options.setdefault("callback_backoff", 0.02)
        options.setdefault("callback_backoff_max", 0.1)
        server = SimulatorServer(HintBackend(**options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def hints(start_hint_backend: Callable[..., SimulatorServer]) -> SimulatorServer:
    return start_hint_backend()


@pytest.fixture
def run_program(problems: SimulatorServer) -> Callable[..., requests.Response]:
    """Submit a program to the ``problems`` simulator and poll until it finishes."""
    return lambda problem_id, program, **kw: execute_and_wait(problems.url, problem_id, program, **kw)


def execute_and_wait(base_url: str, problem_id: str, program: str, timeout: float = 10.0) -> requests.Response:
    response = requests.post(
        f"{base_url}/execution/execute_program/",
        json={"problem_id": problem_id, "student_program": program},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    deadline = time.monotonic() + timeout
    while True:
        result = requests.get(
            f"{base_url}/execution/get_execution_result/", params={"execution_id": execution_id}, timeout=5
        )
        if result.status_code != 200 or result.json()["job_finished"]:
            return result
        assert time.monotonic() < deadline, "execution did not finish in time"
        time.sleep(0.02)


@pytest.fixture
def execute_and_poll() -> Callable[..., requests.Response]:
    """The polling helper for tests that start their own Problem Handler."""
    return execute_and_wait
