"""Hint flows against real `orchestrator serve` and `orchestrator worker` processes."""

import os
import signal
import subprocess
import sys
import threading

import pytest
import requests
import sqlalchemy as sa

from conftest import free_port, wait_until
from orchestrator.simulators.server import start_simulators, upstream_environment

pytestmark = pytest.mark.e2e


def student_flow(base, student, problem="sum_two", hint_type="debug", timeout=30):
    added = requests.post(f"{base}/ai_hint/add_request/", timeout=10, json={
        "student_id": student, "problem_id": problem, "hint_type": hint_type, "student_program": "x = 1\n"})
    assert added.status_code == 200, added.text
    request_id = added.json()["request_id"]
    reflected = requests.post(f"{base}/ai_hint/add_reflection/", timeout=10, json={
        "request_id": request_id, "reflection_question": "Why?", "reflection_answer": "Because."})
    assert reflected.status_code == 200

    def finished():
        result = requests.get(f"{base}/ai_hint/query_hint/", params={"request_id": request_id}, timeout=10)
        return result if result.status_code != 200 or result.json()["job_finished"] else None

    return request_id, wait_until(finished, timeout=timeout, interval=0.2, message="the hint")


def test_demo_serves_the_whole_hint_flow(serve_process):
    server = serve_process("--demo", "--workers", "2", "--problems-port", str(free_port()),
                           "--hint-port", str(free_port()))
    request_id, result = student_flow(server.url, "demo-student")
    assert result.status_code == 200 and result.json()["hint"]
    listed = requests.get(f"{server.url}/ai_hint/query_all_hint/", timeout=5,
                          params={"student_id": "demo-student", "problem_id": "sum_two"}).json()
    assert [h["request_id"] for h in listed] == [request_id]


def test_concurrent_requests_never_pass_the_quota(serve_process):
    """20 simultaneous plan requests (limit 1) for one student and problem, several runs."""
    server = serve_process("--workers", "4", "--no-dispatcher")
    for run in range(5):
        barrier = threading.Barrier(20)
        statuses = []
        lock = threading.Lock()

        def one():
            session = requests.Session()
            barrier.wait()
            response = session.post(f"{server.url}/ai_hint/add_request/", timeout=30, json={
                "student_id": f"racer-{run}", "problem_id": "sum_two", "hint_type": "plan",
                "student_program": ""})
            with lock:
                statuses.append(response.status_code)

        threads = [threading.Thread(target=one) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(statuses) == [200] + [429] * 19, f"run {run}: {sorted(statuses)}"
        quota = requests.get(f"{server.url}/ai_hint/quota_left/", timeout=5,
                             params={"student_id": f"racer-{run}", "problem_id": "sum_two"}).json()
        assert quota["used"]["plan"] == 1


def race(count, call):
    """Run ``call(i)`` in ``count`` threads released at once; returns their results in order."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def one(index):
        barrier.wait()
        results[index] = call(index)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_reflections_store_one_and_queue_it_once(serve_process, base_env):
    """16 simultaneous reflections on one request, half with one answer and half with
    another: one answer wins (its senders get 200, the others 409), one message is queued."""
    server = serve_process("--workers", "4", "--no-dispatcher")
    engine = sa.create_engine(base_env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"))
    try:
        for run in range(4):
            request_id = requests.post(f"{server.url}/ai_hint/add_request/", timeout=10, json={
                "student_id": f"reflector-{run}", "problem_id": "sum_two", "hint_type": "debug",
                "student_program": ""}).json()["request_id"]

            def reflect(index):
                session = requests.Session()
                return session.post(f"{server.url}/ai_hint/add_reflection/", timeout=30, json={
                    "request_id": request_id, "reflection_question": "q",
                    "reflection_answer": "AB"[index % 2]}).status_code

            statuses = race(16, reflect)
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT reflection_answer FROM hint_request WHERE id = :id"),
                                      {"id": request_id}).scalar()
                queued = conn.execute(sa.text(
                    "SELECT count(*) FROM outbox_message WHERE hint_request_id = :id AND kind = 'hint.add_reflection'"),
                    {"id": request_id}).scalar()
            winners = {"AB"[i % 2] for i, status in enumerate(statuses) if status == 200}
            assert winners == {stored}, f"run {run}: {statuses}, stored {stored!r}"
            assert sorted(statuses) == [200] * 8 + [409] * 8, f"run {run}: {statuses}"
            assert queued == 1
    finally:
        engine.dispose()


def test_killing_the_dispatcher_mid_delivery_loses_nothing(serve_process, base_env, tmp_path):
    problems, hints = start_simulators(hint_delay=0.2)
    try:
        timing = {"ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT": "1", "ORCHESTRATOR_UPSTREAM_READ_TIMEOUT": "5",
                  "ORCHESTRATOR_OUTBOX_LEASE_SECONDS": "7", "ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS": "0.1"}
        env_extra = {**upstream_environment(problems, hints), **timing}
        server = serve_process("--workers", "2", "--no-dispatcher", env=env_extra)
        hints.simulator.configure({"callback_url": f"{server.url}/ai_hint/save/"})
        requests.put(f"{hints.url}/_sim/faults", json={"latency": 2.5}, timeout=5)

        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        env.pop("DATABASE_URL", None)
        env.update(base_env)
        env.update(env_extra)

        def worker():
            return subprocess.Popen([sys.executable, "-m", "orchestrator", "worker"], env=env, cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        added = requests.post(f"{server.url}/ai_hint/add_request/", timeout=10, json={
            "student_id": "kill", "problem_id": "sum_two", "hint_type": "debug", "student_program": ""}).json()
        request_id = added["request_id"]
        requests.post(f"{server.url}/ai_hint/add_reflection/", timeout=10, json={
            "request_id": request_id, "reflection_question": "q", "reflection_answer": "a"})

        engine = sa.create_engine(base_env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"))

        def claimed_attempts():
            with engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT attempts FROM outbox_message WHERE hint_request_id = :id ORDER BY id LIMIT 1"),
                    {"id": request_id}).scalar()

        first = worker()
        wait_until(lambda: claimed_attempts() == 1, timeout=20, message="the first worker's claim")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        requests.put(f"{hints.url}/_sim/faults", json={"latency": 0.0}, timeout=5)

        second = worker()
        try:
            def finished():
                result = requests.get(f"{server.url}/ai_hint/query_hint/", params={"request_id": request_id},
                                      timeout=5)
                return result if result.json().get("job_finished") else None

            result = wait_until(finished, timeout=40, interval=0.2, message="delivery after the kill")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
        assert result.status_code == 200 and result.json()["hint"]
        assert claimed_attempts() == 2
        with engine.connect() as conn:
            statuses = conn.execute(sa.text(
                "SELECT status, lease_owner FROM outbox_message WHERE hint_request_id = :id ORDER BY id"),
                {"id": request_id}).all()
        assert [tuple(r) for r in statuses] == [("delivered", None), ("delivered", None)]
        assert hints.simulator.received_stats()["callbacks"]["statuses"] == {"204": 1}
        engine.dispose()
    finally:
        hints.stop()
        problems.stop()
