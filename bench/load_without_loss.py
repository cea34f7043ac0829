"""Load without loss: many simulated students run the whole hint flow while faults flap.

    python bench/load_without_loss.py --students 200 --duration 60 [--database-url URL]

Starts the simulated upstreams (in this process) and a real `orchestrator serve`
(gunicorn workers + dispatcher) on a fresh database, then runs, concurrently:

- N students: ask for a hint (random type), reflect, poll until it ends, rate it, and now
  and then escalate it to an instructor;
- a few instructors: fetch the next escalation and answer it;
- a fault injector: flapping errors, latency and refused connections on both upstreams.

When the time is up it stops the load, lets the service settle (deliveries retried,
deadlines passed), and checks the invariants:

1. every accepted hint request is in a terminal state (succeeded or failed);
2. every delivered hint is stored exactly once (one result per request; the backend's
   204 callbacks match the stored results, late ones included);
3. no student ever had more requests counting against a quota than its limit;
4. no escalation was handed to two instructors.

It prints the counts as JSON and exits non-zero if an invariant is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

from orchestrator.simulators.server import start_simulators, upstream_environment
from orchestrator.store import schema
from orchestrator.store.db import make_engine

LIMITS = {"plan": 1, "debug": 3, "optimize": 1}
PROBLEMS = ["sum_two", "reverse_string", "fizzbuzz", "max_list"]
INSTRUCTORS = ["1", "2", "3"]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    accepted: list[int] = field(default_factory=list)
    finished: Counter = field(default_factory=Counter)
    escalations: list[int] = field(default_factory=list)
    assignments: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    answered: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        with self.lock:
            self.statuses[what] += 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def student(base: str, number: int, stop: threading.Event, tally: Tally, rng: random.Random) -> None:
    session = requests.Session()
    while not stop.is_set():
        problem = rng.choice(PROBLEMS)
        hint_type = rng.choice(list(LIMITS))
        try:
            added = session.post(f"{base}/ai_hint/add_request/", timeout=30, json={
                "student_id": f"student-{number}", "problem_id": problem, "hint_type": hint_type,
                "student_program": f"# attempt by student {number}\nprint(input())\n"})
        except requests.RequestException as exc:
            tally.count(f"add_request:{type(exc).__name__}")
            time.sleep(0.5)
            continue
        tally.count(f"add_request:{added.status_code}")
        if added.status_code == 429:
            time.sleep(rng.uniform(0.5, 2))
            continue
        if added.status_code != 200:
            time.sleep(0.5)
            continue
        request_id = added.json()["request_id"]
        with tally.lock:
            tally.accepted.append(request_id)
        _call(session, tally, "add_reflection", "post", f"{base}/ai_hint/add_reflection/",
              json={"request_id": request_id, "reflection_question": "What did you try?", "reflection_answer": "loops"})
        outcome = _poll(session, base, request_id, stop, tally)
        if outcome == "succeeded":
            _call(session, tally, "rating", "post", f"{base}/ai_hint/save_hint_rating/",
                  json={"request_id": request_id, "is_hint_helpful": rng.random() < 0.6})
            if rng.random() < 0.15:
                response = _call(session, tally, "escalate", "post", f"{base}/instructor_feedback/add_request/",
                                 json={"request_id": request_id, "student_notes": "still stuck"})
                if response is not None and response.status_code == 200:
                    with tally.lock:
                        tally.escalations.append(response.json()["instructor_request_id"])
        time.sleep(rng.uniform(0.2, 1.0))


def _poll(session, base, request_id, stop, tally) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            result = session.get(f"{base}/ai_hint/query_hint/", params={"request_id": request_id}, timeout=30)
        except requests.RequestException:
            time.sleep(0.5)
            continue
        if result.status_code == 500:
            with tally.lock:
                tally.finished["failed"] += 1
            return "failed"
        if result.status_code == 200 and result.json()["job_finished"]:
            with tally.lock:
                tally.finished["succeeded"] += 1
            return "succeeded"
        time.sleep(0.5 if not stop.is_set() else 1.0)
    return "pending"


def _call(session, tally, name, method, url, **kwargs):
    try:
        response = session.request(method, url, timeout=30, **kwargs)
    except requests.RequestException as exc:
        tally.count(f"{name}:{type(exc).__name__}")
        return None
    tally.count(f"{name}:{response.status_code}")
    return response


def instructor(base: str, instructor_id: str, stop: threading.Event, tally: Tally) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            item = session.get(f"{base}/instructor_feedback/fetch_request/",
                               params={"instructor_id": instructor_id}, timeout=30)
        except requests.RequestException:
            time.sleep(0.5)
            continue
        if item.status_code != 200 or not item.json():
            time.sleep(0.5)
            continue
        feedback_id = item.json()["instructor_request_id"]
        with tally.lock:
            tally.assignments[feedback_id].add(instructor_id)
        saved = _call(session, tally, "save_feedback", "post", f"{base}/instructor_feedback/save_feedback/",
                      json={"instructor_request_id": feedback_id, "instructor_id": instructor_id,
                            "feedback": "Have a look at the loop bounds."})
        if saved is not None and saved.status_code == 200:
            with tally.lock:
                tally.answered += 1


def flap_faults(problems, hints, stop: threading.Event, rng: random.Random, log: list) -> None:
    """Every few seconds, switch the upstreams between healthy and one fault."""
    faults = [{}, {"error_rate": 0.5}, {"latency": 0.8}, {"refuse_rate": 0.5}, {"non_json_rate": 0.3}, {}]
    while not stop.wait(rng.uniform(1.5, 4.0)):
        for name, server in (("problems", problems), ("hints", hints)):
            chosen = rng.choice(faults)
            reset = {"error_rate": 0.0, "latency": 0.0, "refuse_rate": 0.0, "non_json_rate": 0.0}
            requests.put(f"{server.url}/_sim/faults", json={**reset, **chosen}, timeout=5)
            log.append((name, chosen))
    for server in (problems, hints):
        requests.put(f"{server.url}/_sim/faults", timeout=5,
                     json={"error_rate": 0.0, "latency": 0.0, "refuse_rate": 0.0, "non_json_rate": 0.0})


def fresh_database(url: str | None, workdir: Path) -> str:
    if url is None:
        return f"sqlite:///{workdir / 'load.db'}"
    base = sa.engine.make_url(url).set(drivername="postgresql+psycopg2")
    name = f"orch_load_{os.getpid()}_{int(time.time())}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def run(*, students: int, duration: float, database_url: str | None = None, workers: int = 4,
        seed: int = 7, settle_seconds: float = 60.0, quiet: bool = False) -> dict:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="orch-load-"))
    url = fresh_database(database_url, workdir)
    engine = make_engine(url)
    schema.upgrade(engine)
    (workdir / "instructors.yaml").write_text(
        "instructors:\n" + "".join(f"  - {{id: {i}, name: I{i}, email: i{i}@course.example}}\n" for i in INSTRUCTORS)
        + "feedback_timeout: 30\n")
    profiles = workdir / "profiles"
    profiles.mkdir()
    (profiles / "default.yaml").write_text("default: {overall: null, plan: 1, debug: 3, optimize: 1}\n")

    problems, hints = start_simulators(execution_delay=0.1, hint_delay=0.3, seed=seed)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.update(upstream_environment(problems, hints), DATABASE_URL=url,
               ORCHESTRATOR_LOG_DIR=str(workdir / "logs"), ORCHESTRATOR_LOG_LEVEL="WARNING",
               ORCHESTRATOR_INSTRUCTOR_CONFIG=str(workdir / "instructors.yaml"),
               ORCHESTRATOR_INSTRUCTOR_AUTH="none", ORCHESTRATOR_QUOTA_PROFILES=str(profiles),
               ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT="1", ORCHESTRATOR_UPSTREAM_READ_TIMEOUT="2",
               ORCHESTRATOR_OUTBOX_LEASE_SECONDS="5", ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS="8",
               ORCHESTRATOR_DELIVERY_BACKOFF_SECONDS="0.2", ORCHESTRATOR_DELIVERY_BACKOFF_MAX_SECONDS="2",
               ORCHESTRATOR_HINT_RESULT_DEADLINE_SECONDS="20", ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS="0.1")
    server_errors = open(workdir / "serve.err", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port), "--workers", str(workers)],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=server_errors, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    hints.simulator.configure({"callback_url": f"{base}/ai_hint/save/", "callback_attempts": 30,
                               "callback_backoff_max": 1.0})
    try:
        _wait_healthy(base, server)
        tally = Tally()
        stop = threading.Event()
        fault_log: list = []
        threads = [threading.Thread(target=student, args=(base, n, stop, tally, random.Random(seed + n)))
                   for n in range(students)]
        threads += [threading.Thread(target=instructor, args=(base, i, stop, tally)) for i in INSTRUCTORS]
        faults = threading.Thread(target=flap_faults, args=(problems, hints, stop, rng, fault_log))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        faults.start()
        time.sleep(duration)
        stop.set()
        faults.join()
        for thread in threads:
            thread.join(180)
        load_seconds = time.monotonic() - started
        settled = _settle(engine, hints, settle_seconds)
        report = _check(engine, tally, hints, load_seconds, settled, len(fault_log))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        server_errors.close()
        hints.stop()
        problems.stop()
        engine.dispose()
        _drop_database(url)
    if not quiet:
        print(json.dumps(report, indent=2))
    return report


def _drop_database(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    admin.dispose()


def _wait_healthy(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve exited with {server.returncode}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("serve did not become ready")


def _settle(engine, hints, limit: float) -> float:
    """Wait until no hint request is pending and the backend has no callback in flight."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with engine.connect() as conn:
            pending = conn.execute(sa.text("SELECT count(*) FROM hint_request WHERE status = 'pending'")).scalar()
        if pending == 0 and hints.simulator.wait_idle(0.1):
            return time.monotonic() - started
        time.sleep(0.5)
    return time.monotonic() - started


def _check(engine, tally: Tally, hints, load_seconds: float, settled: float, fault_switches: int) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, student_id, problem_id, hint_type, status, is_cancelled, returned_time, late_result "
            "FROM hint_request")).all()
        double_assigned_db = conn.execute(sa.text(
            "SELECT count(*) FROM instructor_feedback_request WHERE state = 'answered' AND instructor_id IS NULL"
        )).scalar()
        escalations = conn.execute(sa.text("SELECT count(*), sum(CASE WHEN state = 'answered' THEN 1 ELSE 0 END) "
                                           "FROM instructor_feedback_request")).one()
    by_id = {row.id: row for row in rows}
    accepted = set(tally.accepted)
    lost = sorted(accepted - set(by_id))
    not_terminal = [r.id for r in rows if r.status == "pending"]
    with_result = sum(1 for r in rows if r.returned_time is not None)
    late = sum(1 for r in rows if r.late_result is not None)
    backend = hints.simulator.received_stats()
    callbacks_204 = int(backend["callbacks"]["statuses"].get("204", 0))
    over_quota = []
    counting = defaultdict(Counter)
    for r in rows:
        if r.status != "failed" or r.is_cancelled:
            counting[(r.student_id, r.problem_id)][r.hint_type] += 1
    for key, counts in counting.items():
        for hint_type, limit in LIMITS.items():
            if counts[hint_type] > limit:
                over_quota.append((key, hint_type, counts[hint_type]))
    assigned_twice = {k: sorted(v) for k, v in tally.assignments.items() if len(v) > 1}
    report = {
        "load_seconds": round(load_seconds, 1),
        "settle_seconds": round(settled, 1),
        "fault_switches": fault_switches,
        "responses": dict(sorted(tally.statuses.items())),
        "accepted_hint_requests": len(accepted),
        "stored_hint_requests": len(rows),
        "succeeded": sum(1 for r in rows if r.status == "succeeded"),
        "failed": sum(1 for r in rows if r.status == "failed"),
        "results_stored": with_result,
        "late_results_stored": late,
        "backend_callbacks_answered_204": callbacks_204,
        "backend_duplicate_deliveries": backend["duplicates"]["count"],
        "backend_out_of_order": backend["out_of_order"]["count"],
        "escalations": escalations[0],
        "answered_escalations": int(escalations[1] or 0),
        "invariants": {
            "lost_accepted_requests": len(lost),
            "not_terminal": len(not_terminal),
            "results_not_stored_exactly_once": abs(callbacks_204 - (with_result + late)),
            "over_quota": len(over_quota),
            "escalations_assigned_twice": len(assigned_twice) + int(double_assigned_db or 0),
            "reflections_before_requests": backend["out_of_order"]["count"],
        },
    }
    report["ok"] = not any(report["invariants"].values())
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--database-url", default=os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL"),
                        help="a PostgreSQL server to create a fresh database on (default: SQLite)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    report = run(students=args.students, duration=args.duration, database_url=args.database_url,
                 workers=args.workers, seed=args.seed)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
