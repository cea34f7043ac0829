"""A real `orchestrator serve` process: start-up, health, request logs, limits, shutdown."""

import json
import socket

import pytest
import requests

from conftest import free_port, wait_until
from orchestrator.simulators.problem_handler import SOLUTIONS

pytestmark = pytest.mark.e2e


def log_lines(directory):
    lines = []
    for path in sorted(directory.glob("orchestrator-api-*.log")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines


def test_embedded_default_migrates_sqlite_and_logs_one_line_per_request(serve_process, tmp_path):
    # No DATABASE_URL at all: the SQLite file in the working directory.
    server = serve_process("--workers", "2", env={"DATABASE_URL": ""})
    assert (tmp_path / "orchestrator.db").exists()
    health = requests.get(f"{server.url}/healthz", timeout=5)
    ready = requests.get(f"{server.url}/readyz", timeout=5, headers={"X-Request-ID": "probe-1"})
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.headers["X-Request-ID"] == "probe-1"

    def logged():
        return [entry for entry in log_lines(tmp_path / "logs") if entry.get("event") == "request"]

    entries = wait_until(lambda: [e for e in logged() if e["request_id"] == "probe-1"], timeout=10,
                         message="the request log line")
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/readyz", 200)
    assert entry["duration_ms"] >= 0
    assert any(e["request_id"] == health.headers["X-Request-ID"] for e in logged())
    # The same line goes to stdout.
    assert '"request_id": "probe-1"' in server.output()


def test_served_errors_are_json_and_body_limit_holds_for_chunked_bodies(serve_process):
    server = serve_process("--workers", "1", env={"ORCHESTRATOR_MAX_BODY_BYTES": "1000"})
    missing = requests.get(f"{server.url}/ai_hint/nothing/", timeout=5)
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = requests.post(f"{server.url}/healthz", data=b"{}", timeout=5)
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]

    big = requests.post(f"{server.url}/healthz", data=b"x" * 5000, timeout=5)
    assert big.status_code == 413 and big.json()["error"] == "Request body too large"

    def chunks():
        for _ in range(10):
            yield b"y" * 500

    chunked = requests.post(f"{server.url}/healthz", data=chunks(), timeout=5)
    assert chunked.status_code == 413


def test_sigterm_stops_the_server_cleanly(serve_process):
    server = serve_process("--workers", "2")
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    assert server.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_demo_runs_the_simulated_upstreams(serve_process):
    problems_port, hint_port = free_port(), free_port()
    server = serve_process("--demo", "--workers", "1", "--problems-port", str(problems_port),
                           "--hint-port", str(hint_port))
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    catalog = requests.get(f"http://127.0.0.1:{problems_port}/query/programming_problems/", timeout=5)
    assert catalog.status_code == 200 and isinstance(catalog.json(), list) and catalog.json()
    faults = requests.get(f"http://127.0.0.1:{hint_port}/_sim/faults", timeout=5)
    assert faults.status_code == 200
    # The orchestrator itself talks to them: catalog and an execution end to end.
    via = requests.get(f"{server.url}/problems/programming_problems/", timeout=5)
    assert via.status_code == 200 and via.json() == catalog.json()
    started = requests.post(f"{server.url}/problems/execute_program/", timeout=5, json={
        "problem_id": "sum_two", "student_id": "e2e", "student_program": SOLUTIONS["sum_two"]})
    assert started.status_code == 200

    def finished():
        result = requests.get(f"{server.url}/problems/get_execution_result/", timeout=5,
                              params={"execution_id": started.json()["execution_id"]}).json()
        return result if result["job_finished"] else None

    assert wait_until(finished, timeout=20, message="the demo execution")["correctness"] is True
    assert server.stop() == 0
    for port in (problems_port, hint_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
