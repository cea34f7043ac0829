"""Security properties: CORS, headers, failed-login rate limit, odd input, nothing secret in logs."""

import io
import json
import logging

import pytest
from falcon import testing
from sqlmodel import select

from api.test_hints import poll_until_done, reflect
from conftest import INSTRUCTORS_YAML, issue_token
from orchestrator.api.app import create_app
from orchestrator.api.middleware import SECURITY_HEADERS
from orchestrator.logs import configure_logging
from orchestrator.runtime import build_runtime
from orchestrator.store.models import HintRequest, InstructorFeedbackRequest


@pytest.fixture
def app_for(make_settings):
    built = []

    def make(**env):
        runtime = build_runtime(make_settings(**env))
        built.append(runtime)
        return testing.TestClient(create_app(runtime.settings, runtime)), runtime

    yield make
    for runtime in built:
        runtime.close()


# ----------------------------------------------------------------------------- CORS and headers


def test_cors_answers_only_configured_origins_preflight_included(app_for):
    client, _ = app_for(ORCHESTRATOR_CORS_ORIGINS="http://localhost:5173")
    allowed = client.simulate_get("/healthz", headers={"Origin": "http://localhost:5173"})
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
    other = client.simulate_get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.simulate_options("/ai_hint/add_request/", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert "POST" in preflight.headers.get("access-control-allow-methods", "")
    bad_preflight = client.simulate_options("/ai_hint/add_request/", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in bad_preflight.headers


def test_without_configured_origins_there_are_no_cors_headers(app_for):
    client, _ = app_for()
    result = client.simulate_get("/healthz", headers={"Origin": "http://localhost:5173"})
    assert not any(h.startswith("access-control-") for h in result.headers)


def test_security_headers_on_every_response(app_for):
    client, _ = app_for(ORCHESTRATOR_MAX_BODY_BYTES="10")
    responses = [
        client.simulate_get("/healthz"),
        client.simulate_get("/nowhere/"),
        client.simulate_delete("/healthz"),
        client.simulate_post("/ai_hint/add_request/", body=b"x" * 100),
        client.simulate_get("/ai_hint/query_hint/", query_string="request_id=oops"),
    ]
    assert [r.status_code for r in responses] == [200, 404, 405, 413, 400]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name.lower()) == value
        assert response.headers.get("cache-control") == "no-store"


# ----------------------------------------------------------------------------- failed sign-ins


@pytest.fixture
def instructor_env(tmp_path):
    path = tmp_path / "instructors.yaml"
    path.write_text(INSTRUCTORS_YAML)
    return {"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(path), "ORCHESTRATOR_AUTH_FAILURE_LIMIT": "5"}


def test_failed_sign_ins_are_rate_limited_across_instances(app_for, instructor_env):
    first, runtime = app_for(**instructor_env)
    second, _ = app_for(**instructor_env)  # another instance on the same database
    good = issue_token(runtime, "1")

    def fetch(client, token, addr="10.9.8.7"):
        return client.simulate_get("/instructor_feedback/fetch_request/", params={"instructor_id": "1"},
                                   headers={"Authorization": f"Bearer {token}"}, remote_addr=addr)

    for n in range(5):
        assert fetch(first if n % 2 else second, f"orch_guess{n}").status_code == 401
    locked = fetch(first, good)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert fetch(second, good).status_code == 429
    assert fetch(second, good, addr="10.9.8.8").status_code == 200  # another client is not affected
    # Requests without any credential (a browser's first try) do not count.
    for _ in range(10):
        assert first.simulate_get("/instructor_feedback/queue/", remote_addr="10.1.1.1").status_code == 401
    assert fetch(first, good, addr="10.1.1.1").status_code == 200


def test_the_service_token_is_compared_in_constant_time():
    import inspect

    from orchestrator.api import auth

    assert "hmac.compare_digest" in inspect.getsource(auth.require_service)


# ----------------------------------------------------------------------------- odd input


ODD = [
    "'; DROP TABLE hint_request; --",
    "\" OR 1=1 --",
    "%_%",
    "Robert'); DELETE FROM instructor_feedback_request;--",
    "ﺍﻟﻄﺎﻟﺐ\u202eevil\u202c",
    "e\u0301\u0301\u0301 combining",
    "🧑‍💻🐍" * 20,
    "\u200b\ufeffzero-width",
    "x" * 255,
]


@pytest.mark.parametrize("value", ODD)
def test_odd_and_hostile_strings_are_stored_verbatim(client, runtime, value):
    added = client.simulate_post("/ai_hint/add_request/", json={
        "student_id": value, "problem_id": value, "hint_type": "plan", "student_program": value * 3,
        "student_notebook": {"cells": [{"source": value}]}})
    assert added.status_code == 200, added.text
    request_id = added.json["request_id"]
    assert client.simulate_post("/ai_hint/add_reflection/", json={
        "request_id": request_id, "reflection_question": value, "reflection_answer": value}).status_code == 200
    escalated = client.simulate_post("/instructor_feedback/add_request/", json={
        "request_id": request_id, "student_notes": value})
    assert escalated.status_code == 200
    quota = client.simulate_get("/ai_hint/quota_left/", params={"student_id": value, "problem_id": value}).json
    assert quota["used"]["plan"] == 1
    # A LIKE-style pattern must not match anyone else's rows.
    assert client.simulate_get("/ai_hint/quota_left/", params={"student_id": "%", "problem_id": "%"}).json[
        "used"]["overall"] == 0
    with runtime.db.scope() as session:
        row = session.get(HintRequest, request_id)
        assert (row.student_id, row.problem_id, row.student_program) == (value, value, value * 3)
        assert row.student_notebook == {"cells": [{"source": value}]}
        assert len(list(session.exec(select(InstructorFeedbackRequest)))) == 1


def test_oversized_identifiers_are_refused_not_truncated(client, runtime):
    result = client.simulate_post("/ai_hint/add_request/", json={
        "student_id": "s" * 256, "problem_id": "p", "hint_type": "plan", "student_program": ""})
    assert result.status_code == 400
    with runtime.db.scope() as session:
        assert list(session.exec(select(HintRequest))) == []


# ----------------------------------------------------------------------------- nothing secret in logs


SERVICE_TOKEN = "svc-secret-0123456789abcdef"


@pytest.fixture
def stack_env(tmp_path):
    path = tmp_path / "instructors.yaml"
    path.write_text(INSTRUCTORS_YAML)
    return {"ORCHESTRATOR_SERVICE_TOKEN": SERVICE_TOKEN, "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(path)}


def test_no_program_notebook_token_or_email_reaches_the_logs(stack, tmp_path):
    stream = io.StringIO()
    log_dir = tmp_path / "secret-logs"
    configure_logging(level="DEBUG", log_dir=log_dir, role="api", stream=stream)
    try:
        stack.simulators.hints.simulator.configure({"callback_token": SERVICE_TOKEN})
        token = issue_token(stack.runtime, "1")
        client = stack.client
        request_id = client.simulate_post("/ai_hint/add_request/", json={
            "student_id": "stu", "problem_id": "sum_two", "hint_type": "plan",
            "student_program": "PROGRAM_MARKER = 1", "student_notebook": {"cells": ["NOTEBOOK_MARKER"]}},
        ).json["request_id"]
        reflect(client, request_id, answer="REFLECTION_MARKER")
        assert poll_until_done(client, request_id).status_code == 200
        client.simulate_post("/instructor_feedback/add_request/", json={
            "request_id": request_id, "student_email": "EMAIL_MARKER@course.example", "student_notes": "NOTES_MARKER"})
        client.simulate_get("/instructor_feedback/fetch_request/", params={"instructor_id": "1"},
                            headers={"Authorization": f"Bearer {token}"})
        client.simulate_get("/instructor_feedback/fetch_request/", params={"instructor_id": "1"},
                            headers={"Authorization": "Bearer orch_WRONG_TOKEN_MARKER"})
        client.simulate_post("/ai_hint/save/", json={"request_id": request_id, "hint": "x",
                                                     "job_finished_successfully": True},
                             headers={"Authorization": "Bearer WRONG_SERVICE_MARKER"})
        client.simulate_post("/problems/execute_program/", json={
            "problem_id": "sum_two", "student_program": "PROGRAM_MARKER_2", "student_id": "stu"})
        logging.getLogger("orchestrator").handlers[0].flush()
        text = stream.getvalue() + "".join(p.read_text() for p in log_dir.glob("*.log"))
        assert '"event": "request"' in text and '"event": "upstream"' in text
        for secret in ("PROGRAM_MARKER", "NOTEBOOK_MARKER", "REFLECTION_MARKER", "EMAIL_MARKER", "NOTES_MARKER",
                       token, "WRONG_TOKEN_MARKER", SERVICE_TOKEN, "WRONG_SERVICE_MARKER"):
            assert secret not in text, secret
        for line in stream.getvalue().splitlines():
            json.loads(line)  # every line is one JSON object
    finally:
        configure_logging(level="INFO", log_dir=None, stream=io.StringIO())
