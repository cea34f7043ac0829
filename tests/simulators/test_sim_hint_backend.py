"""The AI Hint backend simulator over real HTTP: messages, callbacks, bookkeeping."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from orchestrator.simulators.hint_backend import compose_hint


def add_request(server, request_id, *, hint_type="debug", problem_id="sum_two", program="print(1)", **data):
    body = {
        "request_id": request_id,
        "type": "add_request",
        "data": {"problem_id": problem_id, "student_program": program, "hint_type": hint_type, **data},
    }
    return requests.post(f"{server.url}/ai_hint/add_request/", json=body, timeout=5)


def add_reflection(server, request_id, *, question="What did you try?", answer="I printed a constant."):
    body = {
        "request_id": request_id,
        "type": "add_reflection",
        "data": {"reflection_question": question, "reflection_answer": answer},
    }
    return requests.post(f"{server.url}/ai_hint/add_reflection/", json=body, timeout=5)


def stats(server):
    return requests.get(f"{server.url}/_sim/stats", timeout=5).json()


def test_callback_after_request_and_reflection(hints, receiver):
    assert add_request(hints, 41, hint_type="plan", problem_id="fizzbuzz").json() == {"status": "ok"}
    time.sleep(0.3)  # well past hint_delay: nothing may be sent without the reflection
    assert receiver.calls == []

    started = time.monotonic()
    assert add_reflection(hints, 41).status_code == 200
    calls = receiver.wait_for(1)
    assert len(calls) == 1
    call = calls[0]
    assert call["at"] - started >= 0.05  # hint_delay
    assert call["path"] == "/ai_hint/save/"
    assert "authorization" not in call["headers"]
    body = call["body"]
    assert set(body) == {
        "request_id",
        "hint",
        "job_finished_successfully",
        "generation_error_message",
        "other_hint_data",
    }
    assert body["request_id"] == 41
    assert body["job_finished_successfully"] is True
    assert body["generation_error_message"] is None
    assert "plan" in body["hint"] and "fizzbuzz" in body["hint"]
    assert body["hint"] == compose_hint("plan", "fizzbuzz", "print(1)")
    assert body["other_hint_data"]["model"] == "simulator"
    assert body["other_hint_data"]["reflection_received"] is True

    assert hints.simulator.wait_idle(5)
    callbacks = stats(hints)["callbacks"]
    assert callbacks["sent"] == 1 and callbacks["pending"] == 0
    assert callbacks["statuses"] == {"204": 1}
    assert callbacks["log"][0]["outcome"] == "delivered"


def test_hint_text_is_deterministic_and_depends_on_type():
    assert compose_hint("debug", "p", "x = 1\n") == compose_hint("debug", "p", "x = 1\n")
    assert compose_hint("debug", "p", "x") != compose_hint("optimize", "p", "x")
    assert "optimize" in compose_hint("optimize", "max_list", "")


def test_bearer_token_is_sent_when_configured(start_hint_backend, receiver):
    server = start_hint_backend(callback_token="s3cret")
    add_request(server, 1)
    add_reflection(server, 1)
    [call] = receiver.wait_for(1)
    assert call["headers"]["authorization"] == "Bearer s3cret"


def test_callback_when_request_needs_no_reflection(start_hint_backend, receiver):
    server = start_hint_backend(callback_when="request")
    add_request(server, 7, hint_type="optimize")
    [call] = receiver.wait_for(1)
    assert call["body"]["request_id"] == 7
    assert call["body"]["other_hint_data"]["reflection_received"] is False
    assert add_reflection(server, 7).status_code == 200
    assert server.simulator.wait_idle(5)
    time.sleep(0.2)
    assert len(receiver.calls) == 1


def test_generation_failure(start_hint_backend, receiver):
    server = start_hint_backend(generation_failure_rate=1.0)
    add_request(server, 3)
    add_reflection(server, 3)
    [call] = receiver.wait_for(1)
    body = call["body"]
    assert body["hint"] is None
    assert body["job_finished_successfully"] is False
    assert body["generation_error_message"]


def test_callback_retried_on_5xx_until_success(hints, receiver):
    receiver.statuses = [500, 500]  # then the default 204
    add_request(hints, 9)
    add_reflection(hints, 9)
    calls = receiver.wait_for(3)
    assert len(calls) == 3
    assert calls[0]["body"] == calls[1]["body"] == calls[2]["body"]
    assert calls[1]["at"] - calls[0]["at"] >= 0.02  # the first backoff
    assert hints.simulator.wait_idle(5)
    callbacks = stats(hints)["callbacks"]
    assert callbacks["attempts"] == 3
    assert callbacks["statuses"] == {"204": 1}
    assert callbacks["log"][0]["attempts"] == 3
    time.sleep(0.2)
    assert len(receiver.calls) == 3


@pytest.mark.parametrize("status", [409, 400, 401])
def test_4xx_is_a_final_answer(hints, receiver, status):
    receiver.statuses = [status]
    add_request(hints, 11)
    add_reflection(hints, 11)
    receiver.wait_for(1)
    assert hints.simulator.wait_idle(5)
    time.sleep(0.2)  # several backoffs: a retry would have happened by now
    assert len(receiver.calls) == 1
    log = stats(hints)["callbacks"]["log"]
    assert log[0]["status"] == status and log[0]["outcome"] == "rejected"


def test_callback_gives_up_after_the_configured_attempts(start_hint_backend, receiver):
    receiver.default_status = 503
    server = start_hint_backend(callback_attempts=3)
    add_request(server, 12)
    add_reflection(server, 12)
    assert server.simulator.wait_idle(5)
    assert len(receiver.calls) == 3
    log = stats(server)["callbacks"]["log"]
    assert log[0]["outcome"] == "gave_up" and log[0]["status"] == 503


def test_unreachable_callback_is_retried(start_hint_backend):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_hint_backend(callback_url=f"http://127.0.0.1:{port}/ai_hint/save/", callback_attempts=2)
    add_request(server, 13)
    add_reflection(server, 13)
    assert server.simulator.wait_idle(5)
    callbacks = stats(server)["callbacks"]
    assert callbacks["attempts"] == 2
    assert callbacks["log"][0]["outcome"] == "gave_up"
    assert callbacks["log"][0]["status"] is None
    assert callbacks["statuses"] == {"none": 1}


def test_duplicates_are_counted_and_do_not_cause_a_second_callback(hints, receiver):
    add_request(hints, 21)
    add_request(hints, 21)
    add_reflection(hints, 21)
    add_reflection(hints, 21)
    add_reflection(hints, 21)
    receiver.wait_for(1)
    assert hints.simulator.wait_idle(5)
    time.sleep(0.2)
    assert len(receiver.calls) == 1
    body = stats(hints)
    assert body["duplicates"] == {
        "count": 3,
        "by_request_id": {"21": {"add_request": 1, "add_reflection": 2}},
    }
    assert body["received"]["add_request"] == 2 and body["received"]["add_reflection"] == 3
    assert body["out_of_order"]["count"] == 0


def test_reflection_before_request_is_counted_out_of_order(hints, receiver):
    add_request(hints, 30)
    add_reflection(hints, 30)
    assert add_reflection(hints, 31).status_code == 200
    add_request(hints, 31)
    calls = receiver.wait_for(2)
    assert sorted(c["body"]["request_id"] for c in calls) == [30, 31]
    body = stats(hints)
    assert body["out_of_order"] == {"count": 1, "request_ids": [31]}
    assert [(m["type"], m["request_id"]) for m in body["received"]["messages"]] == [
        ("add_request", 30),
        ("add_reflection", 30),
        ("add_reflection", 31),
        ("add_request", 31),
    ]


def test_notebook_may_be_an_object_or_absent_and_is_recorded(hints):
    notebook = {"cells": [{"cell_type": "code", "source": "print(1)"}], "nbformat": 4}
    assert add_request(hints, 50, student_notebook=notebook).status_code == 200
    assert add_request(hints, 51, student_notebook=None).status_code == 200
    assert add_request(hints, 52).status_code == 200
    messages = stats(hints)["received"]["messages"]
    assert messages[0]["data"]["student_notebook"] == notebook


def test_unexpected_fields_are_recorded(hints):
    add_request(hints, 60, student_id="s1")
    assert stats(hints)["received"]["unexpected_fields"] == {"data.student_id": 1}


GOOD_DATA = {"problem_id": "p", "student_program": "x", "hint_type": "plan"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1, 2], "JSON object"),
        ({"type": "add_request", "data": GOOD_DATA}, "missing field: request_id"),
        ({"request_id": "1", "type": "add_request", "data": GOOD_DATA}, "request_id must be an integer"),
        ({"request_id": True, "type": "add_request", "data": GOOD_DATA}, "request_id must be an integer"),
        ({"request_id": 1, "type": "add_reflection", "data": GOOD_DATA}, 'type must be "add_request"'),
        ({"request_id": 1, "data": GOOD_DATA}, "missing field: type"),
        ({"request_id": 1, "type": "add_request", "data": "x"}, "data must be an object"),
        ({"request_id": 1, "type": "add_request", "data": {**GOOD_DATA, "hint_type": "solve"}}, "hint_type"),
        ({"request_id": 1, "type": "add_request", "data": {"problem_id": "p", "hint_type": "plan"}},
         "missing field: data.student_program"),
        ({"request_id": 1, "type": "add_request", "data": {**GOOD_DATA, "student_notebook": "nb"}},
         "student_notebook"),
    ],
)
def test_add_request_rejects_malformed_bodies(hints, receiver, body, fragment):
    response = requests.post(f"{hints.url}/ai_hint/add_request/", json=body, timeout=5)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert stats(hints)["received"]["add_request"] == 0


@pytest.mark.parametrize(
    "data",
    [
        {"reflection_question": "q"},
        {"reflection_question": "q", "reflection_answer": None},
        {"reflection_question": 1, "reflection_answer": ""},
    ],
)
def test_add_reflection_rejects_malformed_data(hints, data):
    body = {"request_id": 1, "type": "add_reflection", "data": data}
    response = requests.post(f"{hints.url}/ai_hint/add_reflection/", json=body, timeout=5)
    assert response.status_code == 400
    assert "reflection_" in response.json()["error"]


def test_empty_reflection_answer_is_accepted(hints):
    assert add_reflection(hints, 70, answer="").status_code == 200


def test_config_round_trips_and_validates(hints):
    url = f"{hints.url}/_sim/config"
    changed = requests.put(url, json={"hint_delay": 0.5, "callback_when": "request"}, timeout=5)
    assert changed.status_code == 200
    assert changed.json()["hint_delay"] == 0.5 and changed.json()["callback_when"] == "request"
    assert requests.get(url, timeout=5).json() == changed.json()
    for bad in ({"callback_when": "never"}, {"hint_delay": -1}, {"colour": "red"}, {"callback_attempts": 1.5}):
        response = requests.put(url, json=bad, timeout=5)
        assert response.status_code == 400, bad
    assert requests.get(url, timeout=5).json() == changed.json()
