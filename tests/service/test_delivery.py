"""Reliable delivery to the AI Hint backend: retries, order, give-up, leases, deadlines."""

import threading
import time

import pytest
from sqlmodel import select

from api.test_hints import ask, messages, poll_until_done, quota, reflect, row
from conftest import wait_until
from orchestrator.service.dispatch import build_dispatcher
from orchestrator.service.outbox import DeliveryPolicy
from orchestrator.store.models import OutboxMessage


def attempts(runtime, request_id):
    return [(m.kind.split(".")[1], m.status, m.attempts) for m in messages(runtime, request_id)]


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS": "200"}])
def test_backend_down_then_back_delivers_request_then_reflection(stack_env, stack):
    stack.simulators.set_faults("hints", refuse_rate=1.0)
    request_id = ask(stack.client).json["request_id"]
    assert reflect(stack.client, request_id).status_code == 200

    wait_until(lambda: attempts(stack.runtime, request_id)[0][2] >= 3, timeout=15,
               message="a few failed attempts")
    (_, req_status, _), (_, refl_status, refl_attempts) = attempts(stack.runtime, request_id)
    assert req_status == refl_status == "pending"
    assert refl_attempts == 0, "the reflection must wait for its request"
    assert stack.client.simulate_get("/ai_hint/query_hint/", params={"request_id": str(request_id)}).json[
        "job_finished"] is False

    stack.simulators.set_faults("hints", refuse_rate=0.0)
    done = poll_until_done(stack.client, request_id)
    assert done.status_code == 200 and done.json["hint"]
    backend = stack.simulators.stats("hints")
    assert backend["out_of_order"]["count"] == 0
    kinds = [m.get("type") for m in backend["received"]["messages"]]
    assert kinds == ["add_request", "add_reflection"]
    assert [s for _, s, _ in attempts(stack.runtime, request_id)] == ["delivered", "delivered"]


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS": "3"}])
def test_backend_down_past_the_retry_budget_fails_the_hint_and_returns_the_quota(stack_env, stack):
    stack.simulators.set_faults("hints", error_rate=1.0)
    request_id = ask(stack.client, hint_type="plan").json["request_id"]
    reflect(stack.client, request_id)
    assert quota(stack.client)["used"]["plan"] == 1
    failed = poll_until_done(stack.client, request_id)
    assert failed.status_code == 500
    assert "delivery to the hint backend failed after 3 attempts" in failed.json["info"]["reason"]
    assert attempts(stack.runtime, request_id) == [("add_request", "failed", 3), ("add_reflection", "cancelled", 0)]
    assert quota(stack.client)["used"]["plan"] == 0
    assert ask(stack.client, hint_type="plan").status_code == 200
    assert stack.simulators.stats("hints")["received"]["add_reflection"] == 0


def test_a_permanent_refusal_is_not_retried(make_settings, httpserver, simulators):
    from orchestrator.runtime import build_runtime

    httpserver.expect_request("/hint/request/").respond_with_json({"error": "bad request"}, status=400)
    env = {**simulators.env, "BACKEND_HINT_ADD_REQUEST_URL": httpserver.url_for("/hint/request/")}
    runtime = build_runtime(make_settings(**env))
    from falcon import testing

    from orchestrator.api.app import create_app

    client = testing.TestClient(create_app(runtime.settings, runtime))
    request_id = ask(client).json["request_id"]
    dispatcher = build_dispatcher(runtime)
    dispatcher.run_once()
    assert attempts(runtime, request_id) == [("add_request", "failed", 1)]
    assert row(runtime, request_id).status == "failed"
    assert len(httpserver.log) == 1
    dispatcher.close()
    runtime.close()


def test_a_dispatcher_claims_no_more_than_it_can_deliver_at_once(stack):
    stack.stop_dispatcher()
    for n in range(10):
        ask(stack.client, student=f"batch{n}")
    dispatcher = build_dispatcher(stack.runtime, threads=3)
    assert len(dispatcher.claim()) == 3
    dispatcher.close()


def test_claims_look_past_the_oldest_messages_when_none_of_them_is_due(stack, monkeypatch):
    """The oldest pending messages are searched first; when all of those wait out a
    backoff (or behind their request), a newer due message is still claimed, oldest first."""
    from datetime import timedelta

    from sqlalchemy import update

    from orchestrator.service import outbox
    from orchestrator.store.models import utcnow

    monkeypatch.setattr(outbox, "CLAIM_WINDOW", 3)
    stack.stop_dispatcher()
    waiting = [ask(stack.client, student=f"backoff{n}").json["request_id"] for n in range(4)]
    for request_id in waiting[:2]:
        reflect(stack.client, request_id)  # blocked behind its request
    due = [ask(stack.client, student=f"due{n}").json["request_id"] for n in range(2)]
    with stack.runtime.db.scope() as session:
        session.connection().execute(
            update(OutboxMessage.__table__)
            .where(OutboxMessage.__table__.c.hint_request_id.in_(waiting))
            .where(OutboxMessage.__table__.c.kind == "hint.add_request")
            .values(next_attempt_at=utcnow() + timedelta(minutes=5)))
    dispatcher = build_dispatcher(stack.runtime, threads=1)
    claimed = dispatcher.claim()
    assert [m.hint_request_id for m in claimed] == [due[0]]
    assert [m.hint_request_id for m in dispatcher.claim()] == [due[1]]
    assert dispatcher.claim() == []
    dispatcher.close()


def test_an_expired_lease_is_taken_over_so_a_crash_loses_nothing(stack):
    stack.stop_dispatcher()
    request_id = ask(stack.client).json["request_id"]
    reflect(stack.client, request_id)
    crashed = build_dispatcher(stack.runtime)
    crashed.policy = DeliveryPolicy(lease_seconds=0.5)
    claimed = crashed.claim()
    assert [m.kind for m in claimed] == ["hint.add_request"]  # the reflection waits behind it
    # The crashed dispatcher never delivers. Before the lease ends nobody else may take it ...
    other = build_dispatcher(stack.runtime)
    assert other.claim() == []
    time.sleep(0.6)
    # ... after, another dispatcher does, and the flow completes.
    stack.start_dispatcher()
    done = poll_until_done(stack.client, request_id)
    assert done.status_code == 200
    assert [(k, s) for k, s, _ in attempts(stack.runtime, request_id)] == [
        ("add_request", "delivered"), ("add_reflection", "delivered")]
    assert messages(stack.runtime, request_id)[0].attempts == 2
    crashed.close()
    other.close()


def test_several_dispatchers_deliver_each_message_once_and_in_order(stack):
    stack.stop_dispatcher()
    stack.simulators.set_faults("hints", latency=0.02)
    ids = []
    for n in range(12):
        request_id = ask(stack.client, student=f"s{n}").json["request_id"]
        reflect(stack.client, request_id)
        ids.append(request_id)
    stop = threading.Event()
    dispatchers = [build_dispatcher(stack.runtime) for _ in range(3)]
    threads = [threading.Thread(target=d.run_forever, args=(stop,), kwargs={"interval": 0.02}) for d in dispatchers]
    for thread in threads:
        thread.start()
    try:
        for request_id in ids:
            assert poll_until_done(stack.client, request_id, timeout=30).status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for d in dispatchers:
            d.close()
    backend = stack.simulators.stats("hints")
    assert backend["out_of_order"]["count"] == 0
    assert backend["duplicates"]["count"] == 0
    assert backend["received"]["add_request"] == backend["received"]["add_reflection"] == 12
    with stack.runtime.db.scope() as session:
        owners = {m.attempts for m in session.exec(select(OutboxMessage))}
    assert owners == {1}


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_HINT_RESULT_DEADLINE_SECONDS": "1"}])
def test_no_result_before_the_deadline_fails_the_hint_and_a_late_one_is_kept(stack_env, stack):
    stack.simulators.hints.simulator.configure({"hint_delay": 2.5})
    request_id = ask(stack.client, hint_type="optimize").json["request_id"]
    reflect(stack.client, request_id)
    failed = poll_until_done(stack.client, request_id, timeout=15)
    assert failed.status_code == 500 and "no hint arrived" in failed.json["info"]["reason"]
    assert quota(stack.client)["used"]["optimize"] == 0
    late = wait_until(lambda: row(stack.runtime, request_id).late_result, timeout=15,
                      message="the late result")
    assert late["hint"]
    assert stack.simulators.stats("hints")["callbacks"]["statuses"] == {"204": 1}
    assert stack.client.simulate_get("/ai_hint/query_hint/", params={"request_id": str(request_id)}).status_code == 500


@pytest.mark.parametrize("stack_env", [{"ORCHESTRATOR_REFLECTION_DEADLINE_SECONDS": "1"}])
def test_a_request_that_never_gets_a_reflection_is_failed(stack_env, stack):
    request_id = ask(stack.client).json["request_id"]
    failed = poll_until_done(stack.client, request_id, timeout=15)
    assert failed.status_code == 500 and "no reflection" in failed.json["info"]["reason"]
    # A cancelled request that never got its reflection still counts (the app assumes so).
    cancelled = ask(stack.client, hint_type="debug").json["request_id"]
    stack.client.simulate_post("/ai_hint/cancel_request/", json={"request_id": cancelled})
    wait_until(lambda: row(stack.runtime, cancelled).status == "failed", timeout=15, message="the sweep")
    assert quota(stack.client)["used"] == {"overall": 1, "plan": 0, "debug": 1, "optimize": 0}
