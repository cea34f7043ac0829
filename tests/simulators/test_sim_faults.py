"""Fault injection on live simulators, driven through the /_sim/faults control API."""

from __future__ import annotations

import time

import pytest
import requests

from orchestrator.simulators.faults import Faults

# A protocol request for each simulator that is valid (answers 200) without faults.
PROBES = {
    "problems": ("GET", "/query/programming_problems/", None),
    "hints": (
        "POST",
        "/ai_hint/add_request/",
        {
            "request_id": 1,
            "type": "add_request",
            "data": {"problem_id": "sum_two", "student_program": "", "hint_type": "plan"},
        },
    ),
}


@pytest.fixture(params=sorted(PROBES))
def sim(request):
    """Each test runs once against each simulator: ``(server, probe)``."""
    server = request.getfixturevalue(request.param)
    method, path, body = PROBES[request.param]

    def probe(**kw):
        return requests.request(method, server.url + path, json=body, timeout=kw.pop("timeout", 5), **kw)

    return server, probe


def set_faults(server, **fields):
    response = requests.put(f"{server.url}/_sim/faults", json=fields, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_no_faults_by_default(sim):
    server, probe = sim
    assert requests.get(f"{server.url}/_sim/faults", timeout=5).json() == {
        "latency": 0.0,
        "error_rate": 0.0,
        "non_json_rate": 0.0,
        "refuse_rate": 0.0,
        "seed": None,
    }
    assert probe().status_code == 200


def test_error_rate_one_answers_500_json(sim):
    server, probe = sim
    set_faults(server, error_rate=1)
    response = probe()
    assert response.status_code == 500
    assert response.json() == {"error": "simulated failure"}


def test_non_json_rate_one_answers_html(sim):
    server, probe = sim
    set_faults(server, non_json_rate=1)
    response = probe()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_refuse_rate_one_drops_the_connection(sim):
    server, probe = sim
    set_faults(server, refuse_rate=1)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        probe(timeout=5)
    assert time.monotonic() - started < 4  # dropped, not left hanging until the timeout


def test_latency_delays_the_answer(sim):
    server, probe = sim
    set_faults(server, latency=0.3)
    started = time.monotonic()
    assert probe().status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faulted_requests_never_reach_the_simulator(hints, receiver):
    set_faults(hints, error_rate=1)
    _, path, body = PROBES["hints"]
    assert requests.post(hints.url + path, json=body, timeout=5).status_code == 500
    set_faults(hints, error_rate=0, refuse_rate=1)
    with pytest.raises(requests.ConnectionError):
        requests.post(hints.url + path, json=body, timeout=5)
    stats = requests.get(f"{hints.url}/_sim/stats", timeout=5).json()
    assert stats["received"]["add_request"] == 0
    assert stats["requests"] == {path: 2}
    assert stats["faults"] == {"latency": 0, "refuse": 1, "error": 1, "non_json": 0}


def test_control_paths_are_exempt_and_put_replaces_only_given_fields(sim):
    server, probe = sim
    set_faults(server, refuse_rate=1, latency=0.5)
    started = time.monotonic()
    after = set_faults(server, error_rate=0.25)
    assert time.monotonic() - started < 0.5  # the control path is never delayed or refused
    assert after == {"latency": 0.5, "error_rate": 0.25, "non_json_rate": 0.0, "refuse_rate": 1.0, "seed": None}
    assert requests.get(f"{server.url}/_sim/faults", timeout=5).json() == after
    stats = requests.get(f"{server.url}/_sim/stats", timeout=5).json()
    assert not any(path.startswith("/_sim/") for path in stats["requests"])


@pytest.mark.parametrize(
    "fields",
    [{"error_rate": 1.5}, {"refuse_rate": -0.1}, {"latency": "slow"}, {"error_rate": True}, {"colour": 1},
     {"seed": 1.5}],
)
def test_invalid_fault_settings_are_400_and_change_nothing(problems, fields):
    response = requests.put(f"{problems.url}/_sim/faults", json=fields, timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()
    assert requests.get(f"{problems.url}/_sim/faults", timeout=5).json()["error_rate"] == 0.0


def test_seed_makes_the_fault_sequence_repeat(problems):
    def pattern():
        return [
            requests.get(f"{problems.url}/query/programming_problems/", timeout=5).status_code for _ in range(24)
        ]

    set_faults(problems, error_rate=0.5, seed=1234)
    first = pattern()
    set_faults(problems, seed=1234)  # restarts the sequence
    second = pattern()
    assert first == second
    assert {200, 500} == set(first)


def test_faults_object_validates_and_draws():
    faults = Faults(error_rate=1.0, latency=0.1)
    assert faults.draw() == (0.1, "error")
    faults.update(error_rate=0.0, refuse_rate=1.0)
    assert faults.draw() == (0.1, "refuse")
    with pytest.raises(ValueError):
        faults.update(non_json_rate=2)
    assert faults.as_dict()["non_json_rate"] == 0.0


def test_initial_faults_can_be_given_to_the_simulator(start_problem_handler):
    server = start_problem_handler(faults={"error_rate": 1.0})
    response = requests.get(f"{server.url}/query/programming_problems/", timeout=5)
    assert response.status_code == 500
