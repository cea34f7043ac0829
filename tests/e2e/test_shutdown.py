"""SIGTERM under load: in-flight requests and deliveries finish, leases are released."""

import os
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import ServerProcess, free_port
from orchestrator.simulators.problem_handler import SOLUTIONS
from orchestrator.simulators.server import start_simulators, upstream_environment

pytestmark = pytest.mark.e2e


def test_sigterm_lets_in_flight_work_finish(base_env, tmp_path):
    problems, hints = start_simulators(execution_delay=0.05, hint_delay=0.1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.pop("DATABASE_URL", None)
    env.update(base_env, **upstream_environment(problems, hints), ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS="0.1")
    server = ServerProcess(["--workers", "2", "--graceful-timeout", "20"], env, tmp_path, free_port())
    hints.simulator.configure({"callback_url": f"{server.url}/ai_hint/save/"})
    try:
        server.wait_healthy()
        # Deliveries in flight: the hint backend takes 1.5 s to acknowledge.
        requests.put(f"{hints.url}/_sim/faults", json={"latency": 1.5}, timeout=5)
        hint_ids = [requests.post(f"{server.url}/ai_hint/add_request/", timeout=10, json={
            "student_id": f"s{n}", "problem_id": "sum_two", "hint_type": "plan", "student_program": ""}
        ).json()["request_id"] for n in range(3)]
        # Requests in flight: the Problem Handler takes 1.5 s to start an execution.
        requests.put(f"{problems.url}/_sim/faults", json={"latency": 1.5}, timeout=5)
        results: list = []

        def execute(n):
            try:
                response = requests.post(f"{server.url}/problems/execute_program/", timeout=30, json={
                    "problem_id": "sum_two", "student_program": SOLUTIONS["sum_two"], "student_id": f"s{n}"})
                results.append(response.status_code)
            except requests.RequestException as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=execute, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop(timeout=40) == 0
        for thread in threads:
            thread.join(30)
        print(f"\nshutdown took {time.monotonic() - started:.1f}s; in-flight answers {results}")
        assert results == [200, 200], "in-flight requests must finish"
        engine = sa.create_engine(base_env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as conn:
            executions = conn.execute(sa.text("SELECT count(*) FROM program_execution WHERE execution_id IS NOT NULL")
                                      ).scalar()
            leased = conn.execute(sa.text("SELECT count(*) FROM outbox_message WHERE lease_owner IS NOT NULL")).scalar()
            orphans = conn.execute(sa.text(
                "SELECT count(*) FROM hint_request h WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox_message m WHERE m.hint_request_id = h.id)")).scalar()
            delivered = conn.execute(sa.text(
                "SELECT count(*) FROM outbox_message WHERE status = 'delivered'")).scalar()
        engine.dispose()
        assert executions == 2, "both executions that answered 200 are recorded"
        assert leased == 0, "no lease is left behind"
        assert orphans == 0, "no request is half-applied"
        assert delivered >= 1, "the delivery in flight finished"
        assert len(hint_ids) == 3
    finally:
        server.stop()
        hints.stop()
        problems.stop()


