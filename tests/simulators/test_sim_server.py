"""Serving helpers: SimulatorServer, start_simulators, run_simulators in a real process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from orchestrator.simulators.problem_handler import ProblemHandler
from orchestrator.simulators.server import (
    SimulatorServer,
    callback_url_for,
    start_simulators,
    upstream_environment,
)

REPO = Path(__file__).resolve().parents[2]


def test_port_zero_picks_a_free_port_and_stop_releases_it():
    server = SimulatorServer(ProblemHandler())
    assert server.port == 0
    server.start()
    try:
        port = server.port
        assert port > 0
        assert server.url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{server.url}/query/programming_problems/", timeout=5).status_code == 200
    finally:
        server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/query/programming_problems/", timeout=2)
    with SimulatorServer(ProblemHandler(), port=port) as again:  # a restart gets the same port
        assert requests.get(f"{again.url}/query/programming_problems/", timeout=5).status_code == 200


def test_context_manager_and_double_start():
    with SimulatorServer(ProblemHandler()) as server:
        assert requests.get(f"{server.url}/_sim/stats", timeout=5).status_code == 200
        with pytest.raises(RuntimeError):
            server.start()


def test_start_simulators_and_upstream_environment(receiver):
    problems, hints = start_simulators(
        orchestrator_url=receiver.url.removesuffix("/ai_hint/save/"),
        execution_delay=0.0,
        hint_delay=0.0,
        callback_token="tok",
        problem_faults={"latency": 0.01},
    )
    try:
        env = upstream_environment(problems, hints)
        assert env["BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL"] == f"{problems.url}/query/programming_problems/"
        assert requests.get(env["BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL"], timeout=5).status_code == 200
        assert requests.get(f"{problems.url}/_sim/faults", timeout=5).json()["latency"] == 0.01
        assert requests.get(f"{problems.url}/_sim/config", timeout=5).json()["execution_delay"] == 0.0
        request = {"request_id": 5, "type": "add_request",
                   "data": {"problem_id": "sum_two", "student_program": "", "hint_type": "debug"}}
        reflection = {"request_id": 5, "type": "add_reflection",
                      "data": {"reflection_question": "q", "reflection_answer": "a"}}
        assert requests.post(env["BACKEND_HINT_ADD_REQUEST_URL"], json=request, timeout=5).status_code == 200
        assert requests.post(env["BACKEND_HINT_ADD_REFLECTION_URL"], json=reflection, timeout=5).status_code == 200
        [call] = receiver.wait_for(1)
        assert call["path"] == "/ai_hint/save/"
        assert call["headers"]["authorization"] == "Bearer tok"
    finally:
        hints.stop()
        problems.stop()


def test_start_simulators_leaves_nothing_running_when_a_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            start_simulators(problems_port=0, hint_port=taken.getsockname()[1])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/ai_hint/save/"),
        ("http://orch:8000/", "http://orch:8000/ai_hint/save/"),
        ("http://orch:8000/ai_hint/save/", "http://orch:8000/ai_hint/save/"),
    ],
)
def test_callback_url_for(given, expected):
    assert callback_url_for(given) == expected


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_run_simulators_in_the_foreground_stops_on_sigterm():
    code = (
        "from orchestrator.simulators.server import run_simulators\n"
        "run_simulators(0, 0, 'http://127.0.0.1:9', execution_delay=0)\n"
        "print('stopped', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline()
        urls = re.findall(r"http://127\.0\.0\.1:(\d+)/", line)
        assert len(urls) == 3, line  # problems, hints, callback
        problems_port, hint_port = int(urls[0]), int(urls[1])
        assert problems_port > 0 and hint_port > 0 and problems_port != hint_port
        response = requests.get(f"http://127.0.0.1:{problems_port}/query/programming_problems/", timeout=5)
        assert response.status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out.strip() == "stopped"
        assert err == ""  # quiet: no access log lines
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _read_response(stream) -> tuple[int, bytes]:
    """One HTTP/1.1 response from a socket file: (status, body), by its Content-Length."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), stream.read(length)


def test_connections_are_kept_alive_and_survive_unread_bodies():
    with SimulatorServer(ProblemHandler()) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        stream = sock.makefile("rb")
        body = b'{"not": "read by anyone"}'
        # A body sent to a path that never reads it must not run into the next request.
        sock.sendall(b"POST /query/programming_problems/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert _read_response(stream)[0] == 405
        for _ in range(3):
            sock.sendall(b"GET /query/programming_problems/ HTTP/1.1\r\nHost: x\r\n\r\n")
            status, answer = _read_response(stream)
            assert status == 200 and answer.startswith(b"[")
        sock.sendall(b"GET /_sim/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_response(stream)[0] == 200
        assert stream.read() == b""  # closed, as asked
        stream.close()


def test_a_dropped_answer_and_a_stopped_server_close_kept_connections():
    server = SimulatorServer(ProblemHandler()).start()
    try:
        session = requests.Session()
        assert session.put(f"{server.url}/_sim/faults", json={"refuse_rate": 1.0}, timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):
            session.get(f"{server.url}/query/programming_problems/", timeout=5)
        assert session.put(f"{server.url}/_sim/faults", json={"refuse_rate": 0.0}, timeout=5).status_code == 200
        assert session.get(f"{server.url}/query/programming_problems/", timeout=5).status_code == 200
        kept = socket.create_connection(("127.0.0.1", server.port))
        kept.sendall(b"GET /_sim/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        stream = kept.makefile("rb")
        assert _read_response(stream)[0] == 200
    finally:
        server.stop()
    kept.settimeout(5)
    assert stream.read() == b""  # the stopped server hung up the idle kept connection
    stream.close()
    kept.close()
    with pytest.raises(requests.ConnectionError):  # and a pooled connection gets no answer either
        session.get(f"{server.url}/query/programming_problems/", timeout=5)
    session.close()
