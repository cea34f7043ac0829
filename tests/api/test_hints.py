"""The AI hint part of the contract, with the dispatcher delivering to the simulated backend."""

import pytest
from sqlmodel import select

from conftest import wait_until
from orchestrator.store.models import HintRequest, OutboxMessage

ADD = "/ai_hint/add_request/"
REFLECT = "/ai_hint/add_reflection/"
QUERY = "/ai_hint/query_hint/"
ALL = "/ai_hint/query_all_hint/"
SAVE = "/ai_hint/save/"
RATE = "/ai_hint/save_hint_rating/"
QUOTA = "/ai_hint/quota_left/"
EVER = "/ai_hint/has_ever_requested/"
CANCEL = "/ai_hint/cancel_request/"


def ask(client, student="stu", problem="sum_two", hint_type="plan", **extra):
    body = {"student_id": student, "problem_id": problem, "hint_type": hint_type,
            "student_program": "print('hi')\n", **extra}
    return client.simulate_post(ADD, json=body)


def reflect(client, request_id, question="What did you try?", answer="A loop"):
    return client.simulate_post(REFLECT, json={"request_id": request_id, "reflection_question": question,
                                               "reflection_answer": answer})


def poll_until_done(client, request_id, timeout=20):
    def done():
        result = client.simulate_get(QUERY, params={"request_id": str(request_id)})
        if result.status_code == 200 and not result.json["job_finished"]:
            assert result.json == {"request_id": request_id, "job_finished": False, "hint": None}
            return None
        return result

    return wait_until(done, timeout=timeout, interval=0.05, message=f"hint {request_id} to finish")


def row(runtime, request_id) -> HintRequest:
    with runtime.db.scope() as session:
        return session.get(HintRequest, request_id)


def messages(runtime, request_id):
    with runtime.db.scope() as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.hint_request_id == request_id)
                                 .order_by(OutboxMessage.id)))


def quota(client, student="stu", problem="sum_two"):
    result = client.simulate_get(QUOTA, params={"student_id": student, "problem_id": problem})
    assert result.status_code == 200
    return result.json


def test_the_full_student_flow(stack):
    client = stack.client
    assert client.simulate_get(EVER, params={"student_id": "stu"}).json == {"student_id": "stu",
                                                                            "ever_requested": False}
    before = quota(client)
    assert before == {
        "student_id": "stu", "problem_id": "sum_two",
        "limits": {"overall": None, "plan": 1, "debug": 3, "optimize": 1},
        "used": {"overall": 0, "plan": 0, "debug": 0, "optimize": 0},
        "left": {"overall": None, "plan": 1, "debug": 3, "optimize": 1},
    }

    added = ask(client, hint_type="debug", student_notebook={"cells": [{"source": "x = 1"}]})
    assert added.status_code == 200 and set(added.json) == {"request_id"}
    request_id = added.json["request_id"]
    assert isinstance(request_id, int) and request_id < 2**53

    assert client.simulate_get(EVER, params={"student_id": "stu"}).json["ever_requested"] is True
    after = quota(client)
    assert after["used"]["debug"] == 1 and after["used"]["overall"] == 1 and after["left"]["debug"] == 2

    pending = client.simulate_get(QUERY, params={"request_id": str(request_id)})
    assert pending.json == {"request_id": request_id, "job_finished": False, "hint": None}
    assert reflect(client, request_id).json == {"request_id": request_id}

    done = poll_until_done(client, request_id)
    assert done.status_code == 200 and done.json["job_finished"] is True
    assert isinstance(done.json["hint"], str) and done.json["hint"]
    assert client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json[0][
        "is_hint_helpful"] is None

    rated = client.simulate_post(RATE, json={"request_id": request_id, "is_hint_helpful": True})
    assert rated.status_code == 204

    listed = client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json
    assert len(listed) == 1
    item = listed[0]
    assert set(item) == {"id", "request_id", "hint_type", "job_finished_successfully", "returned_hint",
                         "is_hint_helpful", "created_at", "returned_time"}
    assert item["id"] == item["request_id"] == request_id
    assert (item["hint_type"], item["job_finished_successfully"], item["returned_hint"], item["is_hint_helpful"]) == (
        "debug", True, done.json["hint"], True)
    assert item["created_at"].endswith("+00:00") and item["returned_time"] > item["created_at"]

    stored = row(stack.runtime, request_id)
    assert stored.poll_count >= 2 and stored.first_polled_at <= stored.last_polled_at
    assert stored.result_returned_at is not None and stored.rated_at is not None
    assert stored.delivered_at is not None and stored.reflection_delivered_at >= stored.delivered_at
    assert [m.status for m in messages(stack.runtime, request_id)] == ["delivered", "delivered"]

    backend = stack.simulators.stats("hints")
    received = str(backend)
    assert "x = 1" in received  # the notebook reached the backend
    assert backend["out_of_order"]["count"] == 0 and backend["duplicates"]["count"] == 0
    assert backend["callbacks"]["statuses"] == {"204": 1}


def test_poll_statistics_count_every_poll_without_rows(stack):
    request_id = ask(stack.client).json["request_id"]
    for _ in range(7):
        stack.client.simulate_get(QUERY, params={"request_id": str(request_id)})
    stored = row(stack.runtime, request_id)
    assert stored.poll_count == 7 and stored.result_returned_at is None


def test_cancelled_requests_leave_the_list_but_keep_counting(stack):
    client = stack.client
    first = ask(client, hint_type="debug").json["request_id"]
    reflect(client, first)
    poll_until_done(client, first)
    second = ask(client, hint_type="debug").json["request_id"]
    reflect(client, second)
    poll_until_done(client, second)
    assert client.simulate_post(CANCEL, json={"request_id": second}).status_code == 204
    assert client.simulate_post(CANCEL, json={"request_id": second}).status_code == 204
    listed = client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json
    assert [h["request_id"] for h in listed] == [first]
    assert quota(client)["used"]["debug"] == 2
    assert client.simulate_post(CANCEL, json={"request_id": 123456789}).status_code == 404


def test_pending_requests_are_not_listed(stack):
    request_id = ask(stack.client).json["request_id"]
    assert stack.client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json == []
    assert row(stack.runtime, request_id).status == "pending"


# ----------------------------------------------------------------------------- quotas


def test_per_type_limit_gives_429_and_other_types_go_on(stack):
    client = stack.client
    assert ask(client, hint_type="plan").status_code == 200
    refused = ask(client, hint_type="plan")
    assert refused.status_code == 429
    assert "plan" in refused.json["error"] and refused.json["info"]["limit"] == "plan"
    assert ask(client, hint_type="optimize").status_code == 200
    assert ask(client, hint_type="plan", problem="max_list").status_code == 200
    assert ask(client, hint_type="plan", student="other").status_code == 200
    with stack.runtime.db.scope() as session:
        assert len(list(session.exec(select(HintRequest)))) == 4


@pytest.fixture
def tight_profiles(tmp_path, stack_env):
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "default.yaml").write_text(
        "default: {overall: 2, plan: null, debug: null, optimize: null}\n"
        "problems:\n  'free_*': {overall: null}\n"
    )
    stack_env["ORCHESTRATOR_QUOTA_PROFILES"] = str(directory)


def test_overall_limit_is_checked_first_and_overrides_apply(tight_profiles, stack):
    client = stack.client
    assert ask(client, hint_type="plan").status_code == 200
    assert ask(client, hint_type="debug").status_code == 200
    refused = ask(client, hint_type="optimize")
    assert refused.status_code == 429 and refused.json["info"]["limit"] == "overall"
    assert quota(client)["left"] == {"overall": 0, "plan": None, "debug": None, "optimize": None}
    for _ in range(4):
        assert ask(client, hint_type="plan", problem="free_loops").status_code == 200


def test_a_failed_hint_gives_its_quota_back(stack):
    client = stack.client
    stack.simulators.hints.simulator.configure({"generation_failure_rate": 1.0})
    request_id = ask(client, hint_type="plan").json["request_id"]
    assert ask(client, hint_type="plan").status_code == 429
    reflect(client, request_id)
    failed = poll_until_done(client, request_id)
    assert failed.status_code == 500
    assert failed.json["error"] == "The hint could not be generated"
    assert quota(client)["used"]["plan"] == 0
    listed = client.simulate_get(ALL, params={"student_id": "stu", "problem_id": "sum_two"}).json
    assert listed[0]["job_finished_successfully"] is False and listed[0]["returned_hint"] is None
    assert ask(client, hint_type="plan").status_code == 200


# ----------------------------------------------------------------------------- the callback


def save(client, request_id, hint="Try a loop.", ok=True, headers=None, **extra):
    body = {"request_id": request_id, "hint": hint, "job_finished_successfully": ok, **extra}
    return client.simulate_post(SAVE, json=body, headers=headers or {})


@pytest.fixture
def quiet_stack(stack):
    """The stack with the dispatcher stopped: results arrive only when the test saves them."""
    stack.stop_dispatcher()
    return stack


def test_save_is_idempotent_and_refuses_a_different_result(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    first = save(client, request_id, other_hint_data={"model": "m1"})
    assert first.status_code == 204 and first.text == ""
    stored = row(quiet_stack.runtime, request_id)
    assert save(client, request_id, other_hint_data={"model": "m1"}).status_code == 204
    assert row(quiet_stack.runtime, request_id).returned_time == stored.returned_time
    conflict = save(client, request_id, hint="Something else.")
    assert conflict.status_code == 409 and "different result" in conflict.json["error"]
    assert row(quiet_stack.runtime, request_id).returned_hint == "Try a loop."
    assert client.simulate_get(QUERY, params={"request_id": str(request_id)}).json["hint"] == "Try a loop."


def test_save_unknown_and_malformed(quiet_stack):
    client = quiet_stack.client
    assert save(client, 4242424242).status_code == 404
    request_id = ask(client).json["request_id"]
    assert save(client, request_id, hint=None).status_code == 400
    assert save(client, request_id, hint="   ").status_code == 400
    assert save(client, request_id, ok="yes").status_code == 400
    assert save(client, request_id, other_hint_data=[1]).status_code == 400
    assert client.simulate_post(SAVE, json={"hint": "x", "job_finished_successfully": True}).status_code == 400
    assert row(quiet_stack.runtime, request_id).status == "pending"
    failed = save(client, request_id, hint=None, ok=False, generation_error_message="model overloaded")
    assert failed.status_code == 204
    assert client.simulate_get(QUERY, params={"request_id": str(request_id)}).status_code == 500


def test_a_late_result_is_kept_without_changing_what_the_student_saw(quiet_stack):
    from orchestrator.service.hints import fail_request

    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    with quiet_stack.runtime.db.scope() as session:
        assert fail_request(session, request_id=request_id, reason="test deadline")
    assert client.simulate_get(QUERY, params={"request_id": str(request_id)}).status_code == 500
    assert save(client, request_id, hint="Late hint").status_code == 204
    assert save(client, request_id, hint="Late hint").status_code == 204
    assert save(client, request_id, hint="Another late hint").status_code == 409
    stored = row(quiet_stack.runtime, request_id)
    assert stored.status == "failed" and stored.returned_hint is None
    assert stored.late_result["hint"] == "Late hint" and stored.late_result_at is not None
    assert client.simulate_get(QUERY, params={"request_id": str(request_id)}).status_code == 500


TOKEN = "0123456789abcdef-service-token"


@pytest.fixture
def token_stack(stack_env, stack):
    return stack


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_SERVICE_TOKEN": TOKEN}], indirect=False)
def test_save_with_a_service_token_needs_it(stack_env, quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        refused = save(client, request_id, headers=headers)
        assert refused.status_code == 401 and refused.json["error"]
    assert row(quiet_stack.runtime, request_id).status == "pending"
    assert save(client, request_id, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 204
    assert row(quiet_stack.runtime, request_id).status == "succeeded"


def test_without_a_token_only_internal_addresses_may_save(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    body = {"request_id": request_id, "hint": "x", "job_finished_successfully": True}
    outside = client.simulate_post(SAVE, json=body, remote_addr="93.184.216.34")
    assert outside.status_code == 403
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    forged = client.simulate_post(SAVE, json=body, remote_addr="93.184.216.34",
                                  headers={"X-Forwarded-For": "127.0.0.1"})
    assert forged.status_code == 403
    assert row(quiet_stack.runtime, request_id).status == "pending"
    inside = client.simulate_post(SAVE, json=body, remote_addr="10.1.2.3")
    assert inside.status_code == 204


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_TRUSTED_PROXIES": "10.0.0.5"}])
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(stack_env, quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    body = {"request_id": request_id, "hint": "x", "job_finished_successfully": True}
    via_proxy_outside = client.simulate_post(SAVE, json=body, remote_addr="10.0.0.5",
                                             headers={"X-Forwarded-For": "8.8.4.4"})
    assert via_proxy_outside.status_code == 403
    via_proxy_inside = client.simulate_post(SAVE, json=body, remote_addr="10.0.0.5",
                                            headers={"X-Forwarded-For": "8.8.4.4, 192.168.1.20"})
    assert via_proxy_inside.status_code == 204


# ----------------------------------------------------------------------------- reflections and ratings


def test_reflection_rules(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    assert reflect(client, request_id, answer="").status_code == 200
    assert reflect(client, request_id, answer="").status_code == 200
    conflict = reflect(client, request_id, answer="changed my mind")
    assert conflict.status_code == 409
    assert [m.kind for m in messages(quiet_stack.runtime, request_id)] == ["hint.add_request",
                                                                           "hint.add_reflection"]
    assert reflect(client, 99999999999).status_code == 404
    stored = row(quiet_stack.runtime, request_id)
    assert (stored.reflection_question, stored.reflection_answer) == ("What did you try?", "")


def test_a_reflection_on_an_ended_request_is_stored_but_not_sent(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    assert save(client, request_id).status_code == 204
    assert reflect(client, request_id, answer="late").status_code == 200
    assert [m.kind for m in messages(quiet_stack.runtime, request_id)] == ["hint.add_request"]
    assert row(quiet_stack.runtime, request_id).reflection_answer == "late"
    assert reflect(client, request_id, answer="late").status_code == 200
    assert reflect(client, request_id, answer="other").status_code == 409


def test_a_reflection_on_a_cancelled_pending_request_is_still_sent(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    assert client.simulate_post(CANCEL, json={"request_id": request_id}).status_code == 204
    assert reflect(client, request_id).status_code == 200
    sent = messages(quiet_stack.runtime, request_id)
    assert [(m.kind, m.status) for m in sent] == [("hint.add_request", "pending"), ("hint.add_reflection", "pending")]
    assert sent[0].id < sent[1].id  # the reflection is ordered after its request


def test_rating_rules(quiet_stack):
    client = quiet_stack.client
    request_id = ask(client).json["request_id"]
    assert client.simulate_post(RATE, json={"request_id": request_id, "is_hint_helpful": "yes"}).status_code == 400
    assert client.simulate_post(RATE, json={"request_id": request_id, "is_hint_helpful": 1}).status_code == 400
    assert client.simulate_post(RATE, json={"request_id": 5, "is_hint_helpful": True}).status_code == 404
    assert client.simulate_post(RATE, json={"request_id": request_id, "is_hint_helpful": False}).status_code == 204
    assert row(quiet_stack.runtime, request_id).is_hint_helpful is False


# ----------------------------------------------------------------------------- bad input everywhere


BAD_INPUTS = [
    ("POST", ADD, {"problem_id": "p", "hint_type": "plan", "student_program": ""}),
    ("POST", ADD, {"student_id": "s", "hint_type": "plan", "student_program": ""}),
    ("POST", ADD, {"student_id": "s", "problem_id": "p", "hint_type": "explain", "student_program": ""}),
    ("POST", ADD, {"student_id": "s", "problem_id": "p", "hint_type": "plan"}),
    ("POST", ADD, {"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": 3}),
    ("POST", ADD, {"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": "",
                   "student_notebook": "not an object"}),
    ("POST", ADD, {"student_id": ["s"], "problem_id": "p", "hint_type": "plan", "student_program": ""}),
    ("POST", ADD, {"student_id": "s\x00", "problem_id": "p", "hint_type": "plan", "student_program": ""}),
    ("POST", REFLECT, {"request_id": "12", "reflection_question": "q", "reflection_answer": "a"}),
    ("POST", REFLECT, {"request_id": 12, "reflection_answer": "a"}),
    ("POST", REFLECT, {"request_id": 12, "reflection_question": "q", "reflection_answer": None}),
    ("POST", REFLECT, {"request_id": True, "reflection_question": "q", "reflection_answer": "a"}),
    ("POST", REFLECT, {"request_id": -1, "reflection_question": "q", "reflection_answer": "a"}),
    ("GET", QUERY, ""),
    ("GET", QUERY, "request_id=abc"),
    ("GET", QUERY, "request_id=99999999999999999999999"),
    ("GET", ALL, "student_id=s"),
    ("GET", ALL, "problem_id=p"),
    ("POST", RATE, {"request_id": 1}),
    ("POST", RATE, {"is_hint_helpful": True}),
    ("GET", QUOTA, "student_id=s"),
    ("GET", QUOTA, "problem_id=p"),
    ("GET", EVER, ""),
    ("POST", CANCEL, {}),
    ("POST", CANCEL, {"request_id": "x"}),
    ("POST", SAVE, {"request_id": 1, "hint": 5, "job_finished_successfully": True}),
    ("POST", SAVE, {"request_id": 1, "hint": "h"}),
    ("POST", ADD, b"{not json"),
    ("POST", ADD, b'{"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": "",'
                  b' "student_notebook": {"a": NaN}}'),
    ("POST", ADD, b'{"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": "",'
                  b' "student_notebook": {"a": Infinity}}'),
    ("POST", ADD, b'{"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": "",'
                  b' "student_notebook": {"a": 1e400}}'),
    ("POST", ADD, b'{"student_id": "s", "problem_id": "p", "hint_type": "plan", "student_program": "",'
                  b' "student_notebook": ' + b'{"a": ' * 500 + b'1' + b'}' * 501),
    ("POST", REFLECT, b"[]"),
    ("POST", CANCEL, b""),
    ("DELETE", ADD, None),
    ("PUT", QUERY, None),
    ("POST", QUOTA, None),
]


@pytest.mark.parametrize("method, path, payload", BAD_INPUTS)
def test_bad_input_is_a_4xx_json_error(client, runtime, method, path, payload):
    kwargs = {}
    if isinstance(payload, dict):
        kwargs["json"] = payload
    elif isinstance(payload, bytes):
        kwargs["body"] = payload
    elif isinstance(payload, str):
        kwargs["query_string"] = payload
    result = client.simulate_request(method, path, **kwargs)
    assert 400 <= result.status_code < 500, (result.status_code, result.text)
    assert isinstance(result.json["error"], str) and result.json["error"]
    with runtime.db.scope() as session:
        assert list(session.exec(select(HintRequest))) == []
