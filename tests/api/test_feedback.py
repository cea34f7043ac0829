"""Instructor escalation over HTTP: the queue, credentials, and e-mail through a real SMTP server."""

import base64
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from api.test_hints import ask, poll_until_done, reflect
from conftest import issue_token, wait_until
from orchestrator.store.models import InstructorFeedbackRequest

ADD = "/instructor_feedback/add_request/"
QUERY = "/instructor_feedback/query_feedback/"
ALL = "/instructor_feedback/query_all_feedback/"
FETCH = "/instructor_feedback/fetch_request/"
SAVE = "/instructor_feedback/save_feedback/"
RATE = "/instructor_feedback/save_feedback_rating/"
QUEUE = "/instructor_feedback/queue/"
SHOW = "/instructor_feedback/show_request/"
RELEASE = "/instructor_feedback/release_request/"


@pytest.fixture
def stack_env(instructors_file, mail):
    return {"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(instructors_file), **mail.env}


@pytest.fixture
def tokens(stack):
    return {"1": issue_token(stack.runtime, "1"), "2": issue_token(stack.runtime, "2")}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def escalate(client, *, student="stu", email="stu@course.example", notes="I am stuck", hint_type="debug"):
    request_id = ask(client, student=student, hint_type=hint_type).json["request_id"]
    result = client.simulate_post(ADD, json={"request_id": request_id, "student_email": email,
                                             "student_notes": notes})
    assert result.status_code == 200, result.text
    return request_id, result.json["instructor_request_id"]


def fetch(client, instructor, token):
    return client.simulate_get(FETCH, params={"instructor_id": instructor}, headers=bearer(token))


def save(client, instructor, token, feedback_id, text="Look at the loop bounds."):
    return client.simulate_post(SAVE, headers=bearer(token), json={
        "instructor_request_id": feedback_id, "instructor_id": instructor, "feedback": text})


def backdate_assignment(runtime, feedback_id, minutes):
    with runtime.db.scope(immediate=True) as session:
        row = session.get(InstructorFeedbackRequest, feedback_id)
        session.exec(update(InstructorFeedbackRequest).where(InstructorFeedbackRequest.id == feedback_id)
                     .values(assigned_at=row.assigned_at - timedelta(minutes=minutes)))


def test_the_full_escalation_flow_with_e_mail(stack, tokens, mail):
    client = stack.client
    hint_id = ask(client, hint_type="debug").json["request_id"]
    reflect(client, hint_id, answer="I tried a loop")
    hint = poll_until_done(client, hint_id).json["hint"]
    assert client.simulate_post("/ai_hint/save_hint_rating/",
                                json={"request_id": hint_id, "is_hint_helpful": False}).status_code == 204

    added = client.simulate_post(ADD, json={"request_id": hint_id, "student_email": "stu@course.example",
                                            "student_notes": "Still confused"})
    assert added.status_code == 200 and set(added.json) == {"instructor_request_id"}
    feedback_id = added.json["instructor_request_id"]
    assert client.simulate_get(QUERY, params={"instructor_request_id": str(feedback_id)}).json == {
        "instructor_request_id": feedback_id, "job_finished": False, "feedback": None}

    item = fetch(client, "1", tokens["1"])
    assert item.status_code == 200
    assert item.json == {
        "instructor_request_id": feedback_id, "request_id": hint_id, "problem_id": "sum_two",
        "name": "Sum of Two Numbers", "problem_description": item.json["problem_description"],
        "hint_type": "debug", "student_program": "print('hi')\n", "student_notebook": None,
        "reflection_question": "What did you try?", "reflection_answer": "I tried a loop",
        "ai_hint": hint, "student_notes": "Still confused",
    }
    assert isinstance(item.json["problem_description"], str) and item.json["problem_description"]
    assert fetch(client, "1", tokens["1"]).json["instructor_request_id"] == feedback_id  # keeps it
    assert fetch(client, "2", tokens["2"]).json == {}  # nothing else queued

    saved = save(client, "1", tokens["1"], feedback_id, "Check `range(n)`: it stops before n.")
    assert saved.status_code == 200
    assert client.simulate_get(QUERY, params={"instructor_request_id": str(feedback_id)}).json == {
        "instructor_request_id": feedback_id, "job_finished": True,
        "feedback": "Check `range(n)`: it stops before n."}
    listed = client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json
    assert len(listed) == 1
    assert set(listed[0]) == {"instructor_request_id", "ai_hint_request_id", "instructor_feedback",
                              "is_feedback_helpful", "created_at"}
    assert (listed[0]["instructor_request_id"], listed[0]["ai_hint_request_id"], listed[0]["is_feedback_helpful"]) == (
        feedback_id, hint_id, None)
    rated = client.simulate_post(RATE, json={"instructor_request_id": feedback_id, "is_feedback_helpful": True})
    assert rated.status_code == 200
    assert client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json[0][
        "is_feedback_helpful"] is True

    wait_until(lambda: len(mail.messages) >= 5, timeout=15, message="five e-mails")
    time.sleep(0.3)
    by_recipient = {}
    for message in mail.messages:
        assert message["from"] == "hints@course.example" and len(message["to"]) == 1
        by_recipient.setdefault(message["to"][0], []).append(message)
    assert sorted(by_recipient) == ["ada@course.example", "grace@course.example", "stu@course.example"]
    # Each e-mail is a message of its own, delivered by parallel threads: any order.
    ada = sorted((m["subject"], m["body"].strip()) for m in by_recipient["ada@course.example"])
    assert ada == [("0 escalations waiting", "Waiting: 0. In progress: 0."),
                   ("1 escalations waiting", "Waiting: 1. In progress: 0.")]
    [student] = by_recipient["stu@course.example"]
    assert student["subject"] == "Your question on sum_two was answered"
    assert student["body"].strip() == "An instructor answered your question on sum_two."


def test_escalation_rules(stack, tokens, mail):
    client = stack.client
    assert client.simulate_post(ADD, json={"request_id": 987654321}).status_code == 404
    hint_id, feedback_id = escalate(client, email=None)
    again = client.simulate_post(ADD, json={"request_id": hint_id})
    assert again.status_code == 409 and again.json["info"]["instructor_request_id"] == feedback_id
    assert client.simulate_post(ADD, json={"request_id": hint_id, "student_email": "not-an-address"}).status_code == 400
    save(client, "1", tokens["1"], feedback_id)
    wait_until(lambda: len(mail.messages) >= 4, timeout=15, message="instructor e-mails")
    time.sleep(0.3)
    # No address given: only the instructors are told.
    assert {m["to"][0] for m in mail.messages} == {"ada@course.example", "grace@course.example"}


def test_catalog_down_degrades_gracefully(stack, tokens):
    escalate(stack.client)
    stack.simulators.set_faults("problems", refuse_rate=1.0)
    item = fetch(stack.client, "1", tokens["1"])
    assert item.status_code == 200
    assert item.json["name"] == "sum_two" and item.json["problem_description"] is None


def test_the_queue_is_oldest_first(stack, tokens):
    _, first = escalate(stack.client, student="a")
    _, second = escalate(stack.client, student="b")
    assert fetch(stack.client, "2", tokens["2"]).json["instructor_request_id"] == first
    assert fetch(stack.client, "1", tokens["1"]).json["instructor_request_id"] == second


def test_a_timed_out_assignment_goes_to_the_next_instructor(stack, tokens):
    client = stack.client
    _, feedback_id = escalate(client)
    assert fetch(client, "1", tokens["1"]).json["instructor_request_id"] == feedback_id
    assert fetch(client, "2", tokens["2"]).json == {}
    backdate_assignment(stack.runtime, feedback_id, 31)
    assert fetch(client, "2", tokens["2"]).json["instructor_request_id"] == feedback_id
    late = save(client, "1", tokens["1"], feedback_id, "A's late answer")
    assert late.status_code == 409
    assert save(client, "2", tokens["2"], feedback_id, "B's answer").status_code == 200
    assert save(client, "2", tokens["2"], feedback_id, "B's answer").status_code == 200  # idempotent
    assert save(client, "2", tokens["2"], feedback_id, "B changes it").status_code == 409
    assert save(client, "1", tokens["1"], feedback_id, "B's answer").status_code == 409
    assert client.simulate_get(QUERY, params={"instructor_request_id": str(feedback_id)}).json["feedback"] == "B's answer"


def test_an_expired_assignment_nobody_took_can_still_be_answered(stack, tokens):
    _, feedback_id = escalate(stack.client)
    fetch(stack.client, "1", tokens["1"])
    backdate_assignment(stack.runtime, feedback_id, 45)
    assert save(stack.client, "1", tokens["1"], feedback_id).status_code == 200


def test_release_gives_the_request_back(stack, tokens):
    client = stack.client
    _, feedback_id = escalate(client)
    fetch(client, "1", tokens["1"])
    body = {"instructor_request_id": feedback_id, "instructor_id": "2"}
    assert client.simulate_post(RELEASE, json=body, headers=bearer(tokens["2"])).status_code == 403
    body["instructor_id"] = "1"
    assert client.simulate_post(RELEASE, json=body, headers=bearer(tokens["1"])).status_code == 200
    assert client.simulate_post(RELEASE, json=body, headers=bearer(tokens["1"])).status_code == 409
    queue = client.simulate_get(QUEUE, headers=bearer(tokens["2"])).json
    assert (queue["waiting"], queue["assigned"]) == (1, 0) and queue["items"][0]["state"] == "waiting"
    assert fetch(client, "2", tokens["2"]).json["instructor_request_id"] == feedback_id


def test_queue_and_show_extensions(stack, tokens):
    client = stack.client
    _, first = escalate(client, student="a", hint_type="plan")
    _, second = escalate(client, student="b")
    fetch(client, "1", tokens["1"])
    queue = client.simulate_get(QUEUE, headers=bearer(tokens["1"])).json
    assert (queue["waiting"], queue["assigned"], queue["answered"]) == (1, 1, 0)
    assert [(i["instructor_request_id"], i["state"], i["instructor_id"], i["hint_type"]) for i in queue["items"]] == [
        (first, "assigned", "1", "plan"), (second, "waiting", None, "debug")]
    assert all(set(i) == {"instructor_request_id", "problem_id", "hint_type", "state", "instructor_id",
                          "created_at", "assigned_at"} for i in queue["items"])
    save(client, "1", tokens["1"], first, "Answer one")
    shown = client.simulate_get(SHOW, params={"instructor_request_id": str(first)}, headers=bearer(tokens["2"])).json
    assert (shown["state"], shown["instructor_id"], shown["instructor_feedback"]) == ("answered", "1", "Answer one")
    assert shown["answered_at"] and shown["assigned_at"] and shown["name"] == "Sum of Two Numbers"
    assert client.simulate_get(SHOW, params={"instructor_request_id": "5"}, headers=bearer(tokens["2"])).status_code == 404


# ----------------------------------------------------------------------------- credentials


def test_instructor_endpoints_need_a_valid_credential(stack, tokens):
    client = stack.client
    _, feedback_id = escalate(client)
    missing = client.simulate_get(FETCH, params={"instructor_id": "1"})
    assert missing.status_code == 401 and missing.json["error"]
    challenges = missing.headers.get("www-authenticate", "")
    assert "Bearer" in challenges and "Basic" in challenges
    assert fetch(client, "1", "orch_wrong-token").status_code == 401
    assert fetch(client, "1", tokens["2"]).status_code == 403
    wrong_id = save(client, "2", tokens["1"], feedback_id)
    assert wrong_id.status_code == 403
    for path in (QUEUE, SHOW):
        assert client.simulate_get(path, params={"instructor_request_id": str(feedback_id)}).status_code == 401

    basic = base64.b64encode(f"1:{tokens['1']}".encode()).decode()
    ok = client.simulate_get(FETCH, params={"instructor_id": "1"}, headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200 and ok.json["instructor_request_id"] == feedback_id
    other = base64.b64encode(f"2:{tokens['1']}".encode()).decode()
    assert client.simulate_get(FETCH, params={"instructor_id": "2"},
                               headers={"Authorization": f"Basic {other}"}).status_code == 401
    assert client.simulate_get(FETCH, params={"instructor_id": "1"},
                               headers={"Authorization": "Basic !!!"}).status_code == 401

    from orchestrator.service.credentials import revoke

    with stack.runtime.db.scope() as session:
        revoke(session, instructor_id="1")
    assert fetch(client, "1", tokens["1"]).status_code == 401
    with stack.runtime.db.scope() as session:
        assert session.get(InstructorFeedbackRequest, feedback_id).state == "assigned"


@pytest.fixture
def open_stack_env(stack_env):
    stack_env["ORCHESTRATOR_INSTRUCTOR_AUTH"] = "none"
    return stack_env


def test_auth_can_be_turned_off_for_a_closed_network(open_stack_env, stack):
    _, feedback_id = escalate(stack.client)
    item = stack.client.simulate_get(FETCH, params={"instructor_id": "7"})
    assert item.status_code == 200 and item.json["instructor_request_id"] == feedback_id
    answered = stack.client.simulate_post(SAVE, json={"instructor_request_id": feedback_id, "instructor_id": 7,
                                                      "feedback": "ok"})
    assert answered.status_code == 200


# ----------------------------------------------------------------------------- e-mail faults


def test_smtp_down_never_slows_the_api_and_mail_goes_out_when_it_returns(stack, tokens, mail):
    mail.stop()
    started = time.monotonic()
    _, feedback_id = escalate(stack.client)
    save(stack.client, "1", tokens["1"], feedback_id)
    assert time.monotonic() - started < 2.0
    from orchestrator.service.outbox import counts

    wait_until(lambda: _email_attempts(stack.runtime) >= 2, timeout=15, message="failed SMTP attempts")
    assert mail.messages == []
    mail.start()
    wait_until(lambda: len(mail.messages) == 5, timeout=20, message="the queued e-mails")
    with stack.runtime.db.scope() as session:
        assert counts(session)["pending"] == 0


def _email_attempts(runtime):
    from sqlmodel import select

    from orchestrator.store.models import OutboxMessage

    with runtime.db.scope() as session:
        return max([m.attempts for m in session.exec(select(OutboxMessage).where(OutboxMessage.kind == "email"))],
                   default=0)


# ----------------------------------------------------------------------------- bad input


BAD = [
    ("POST", ADD, {}),
    ("POST", ADD, {"request_id": "1"}),
    ("POST", ADD, {"request_id": 1, "student_email": 5}),
    ("POST", ADD, {"request_id": 1, "student_notes": ["x"]}),
    ("POST", ADD, {"request_id": 1, "student_email": "a@b.c\r\nBcc: x@y.z"}),
    ("GET", QUERY, ""),
    ("GET", QUERY, "instructor_request_id=x"),
    ("GET", ALL, "student_id=s"),
    ("POST", RATE, {"instructor_request_id": 1, "is_feedback_helpful": "no"}),
    ("POST", RATE, {"is_feedback_helpful": True}),
    ("GET", FETCH, ""),
    ("POST", SAVE, {"instructor_request_id": 1, "instructor_id": "1"}),
    ("POST", SAVE, {"instructor_request_id": 1, "feedback": "x"}),
    ("POST", SAVE, {"instructor_request_id": "1", "instructor_id": "1", "feedback": "x"}),
    ("POST", SAVE, {"instructor_request_id": 1, "instructor_id": True, "feedback": "x"}),
    ("POST", SAVE, {"instructor_request_id": 1, "instructor_id": int("9" * 300), "feedback": "x"}),
    ("POST", RELEASE, {"instructor_id": "1"}),
    ("GET", SHOW, ""),
    ("POST", SAVE, b"{oops"),
    ("DELETE", FETCH, None),
    ("GET", SAVE, None),
]


@pytest.mark.parametrize("method, path, payload", BAD)
def test_bad_input_is_a_4xx_json_error(make_settings, method, path, payload, instructors_file):
    from falcon import testing

    from orchestrator.api.app import create_app
    from orchestrator.runtime import build_runtime

    runtime = build_runtime(make_settings(ORCHESTRATOR_INSTRUCTOR_CONFIG=str(instructors_file),
                                          ORCHESTRATOR_INSTRUCTOR_AUTH="none"))
    client = testing.TestClient(create_app(runtime.settings, runtime))
    kwargs = {"json": payload} if isinstance(payload, dict) else {"body": payload} if isinstance(payload, bytes) \
        else {"query_string": payload} if isinstance(payload, str) else {}
    result = client.simulate_request(method, path, **kwargs)
    assert 400 <= result.status_code < 500, (result.status_code, result.text)
    assert result.json["error"]
    runtime.close()
