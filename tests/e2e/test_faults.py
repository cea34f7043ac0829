"""Faults against real processes: PostgreSQL restarted under load (on a private cluster)."""

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import ServerProcess, free_port, wait_until
from orchestrator.simulators.server import start_simulators, upstream_environment
from orchestrator.store import schema
from orchestrator.store.db import make_engine

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (initdb as the postgres user, another port)."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not binaries:
            pytest.fail("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)")
        self.bin = os.path.dirname(binaries[-1])
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="orch-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self._as_postgres([f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/faults"

    def _as_postgres(self, command: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"),
                           "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"])

    def stop(self) -> None:
        self._as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop"])

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    pg = PrivateCluster()
    pg.start()
    admin = sa.create_engine(pg.url.replace("/faults", "/postgres").replace("postgresql://", "postgresql+psycopg2://"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE faults")
    admin.dispose()
    engine = make_engine(pg.url)
    schema.upgrade(engine)
    engine.dispose()
    yield pg
    pg.destroy()


def test_postgres_restart_under_load_fails_fast_recovers_and_loses_nothing(cluster, tmp_path):
    problems, hints = start_simulators(hint_delay=0.1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.update(upstream_environment(problems, hints), DATABASE_URL=cluster.url,
               ORCHESTRATOR_LOG_DIR=str(tmp_path / "logs"), ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS="0.1")
    server = ServerProcess(["--workers", "2"], env, tmp_path, free_port())
    hints.simulator.configure({"callback_url": f"{server.url}/ai_hint/save/"})
    server.wait_healthy()

    accepted: list[int] = []
    outcomes: dict[str, int] = {}
    slow_failures: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def student(number: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                response = session.post(f"{server.url}/ai_hint/add_request/", timeout=15, json={
                    "student_id": f"load-{number}-{n}", "problem_id": "sum_two", "hint_type": "debug",
                    "student_program": "x"})
            except requests.RequestException as exc:
                with lock:
                    outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
                continue
            elapsed = time.monotonic() - started
            with lock:
                outcomes[str(response.status_code)] = outcomes.get(str(response.status_code), 0) + 1
                if response.status_code == 200:
                    accepted.append(response.json()["request_id"])
                else:
                    assert response.headers["content-type"].startswith("application/json")
                    assert response.json()["error"]
                    if elapsed > 6:
                        slow_failures.append(elapsed)
            time.sleep(0.02)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: len(accepted) >= 30, timeout=30, message="load before the fault")
        before = len(accepted)
        cluster.stop()
        down_started = time.monotonic()
        wait_until(lambda: outcomes.get("503", 0) >= 5, timeout=20, message="503s while the database is down")
        time.sleep(2)
        cluster.start()
        recovered = wait_until(lambda: len(accepted) >= before + 30 and time.monotonic(), timeout=60,
                               message="recovery without a restart")
        assert server.proc.poll() is None, "the server must not have died"
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    print(f"\nfault test: outcomes {outcomes}; accepted {len(accepted)}; down for "
          f"{recovered - down_started:.1f}s until recovery")
    assert not slow_failures, f"failures should be fast while the database is down: {slow_failures}"
    assert set(outcomes) <= {"200", "503"}, outcomes

    engine = make_engine(cluster.url)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM hint_request")).scalars())
        messages = conn.execute(sa.text("SELECT count(*) FROM outbox_message WHERE kind = 'hint.add_request'")).scalar()
    assert set(accepted) <= stored, "an accepted request was lost"
    assert messages == len(stored), "every request has its outbox message"
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200

    # The dispatcher recovered by itself too: every request reaches the hint backend.
    def undelivered():
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM outbox_message WHERE kind = 'hint.add_request' AND status <> 'delivered'"
            )).scalar()

    wait_until(lambda: undelivered() == 0, timeout=60, message="delivery after the restart")
    engine.dispose()
    server.stop()
    hints.stop()
    problems.stop()
