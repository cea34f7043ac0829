"""The benchmark: every hot endpoint against the framework floor, in one run.

    python bench/run.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                        [--duration 10] [--connections 32] [--big] [--only NAME ...]

On loopback it starts the simulators, `orchestrator serve` with its production defaults
(sync workers, 2 per core) on a fresh PostgreSQL database, and a bare Falcon app returning
a small static JSON under the same gunicorn settings (the floor). It seeds data, then
drives each endpoint with wrk (Debian's package; `apt-get install wrk`) — a separate
process — and prints requests/s, p50 and p99 latency, errors, and the ratio to the floor
measured in the same run. `--big` adds 1,000,000 hint requests of other students and
measures quota_left and query_all_hint again. `--json FILE` saves the results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests
import sqlalchemy as sa

from orchestrator.simulators.server import start_simulators, upstream_environment
from orchestrator.store import schema
from orchestrator.store.db import make_engine

FLOOR_APP = textwrap.dedent('''
    import falcon

    class Floor:
        def on_get(self, req, resp):
            resp.media = {"request_id": 1234567890123, "job_finished": False, "hint": None}

    app = falcon.App()
    app.add_route("/floor", Floor())
''')

POST_SCRIPT = textwrap.dedent('''
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    counter = 0
    request = function()
        counter = counter + 1
        local body = string.format(%s, %s)
        return wrk.format(nil, nil, nil, body)
    end
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, *, duration: int, connections: int, script: str | None, workdir: Path,
        headers: list[str] | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for header in headers or []:
        command += ["-H", header]
    if script is not None:
        path = workdir / f"script-{abs(hash(script))}.lua"
        path.write_text(script)
        command += ["-s", str(path)]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latencies = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", output))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(x) for x in match.groups())
    return {"rps": rps, "p50_ms": _ms(latencies.get("50")), "p99_ms": _ms(latencies.get("99")), "errors": errors}


def _ms(text: str | None) -> float | None:
    if text is None:
        return None
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return round(float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit], 2)


def fresh_database(base_url: str) -> str:
    base = sa.engine.make_url(base_url).set(drivername="postgresql+psycopg2")
    name = f"orch_bench_{os.getpid()}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    admin.dispose()


def seed(base: str, engine, problems_url: str) -> dict:
    """Data the endpoints read: a finished and a pending hint, a student with 20 hints, an execution."""
    def post(path, body):
        response = requests.post(base + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    ids = [post("/ai_hint/add_request/", {"student_id": "bench-20", "problem_id": "sum_two", "hint_type": "debug",
                                          "student_program": "x"})["request_id"] for _ in range(20)]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hint_request SET status = 'succeeded', job_finished_successfully = true, "
                             "returned_hint = 'Look at the loop bounds.', returned_time = now(), finished_at = now() "
                             "WHERE student_id = 'bench-20'"))
    pending = post("/ai_hint/add_request/", {"student_id": "bench-pending", "problem_id": "sum_two",
                                             "hint_type": "plan", "student_program": "x"})["request_id"]
    execution = post("/problems/execute_program/", {"problem_id": "sum_two", "student_program": "print(1)",
                                                    "student_id": "bench"})["execution_id"]
    # Requests waiting for a reflection, one per add_reflection call of the benchmark.
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO hint_request (id, student_id, problem_id, hint_type, student_program, created_at, status,
                                      is_cancelled, poll_count)
            SELECT 5000000000 + g, 'reflecting-' || g, 'sum_two', 'debug', 'x', now(), 'pending', false, 0
            FROM generate_series(1, 200000) g"""))
    time.sleep(0.5)
    return {"finished": ids[0], "pending": pending, "execution": execution, "reflect_base": 5000000000}


def big_table(engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"""
            INSERT INTO hint_request (id, student_id, problem_id, hint_type, student_program, created_at, status,
                                      is_cancelled, poll_count)
            SELECT 9000000000 + g, 'other-' || (g % 20000), 'problem-' || (g % 40),
                   (ARRAY['plan','debug','optimize'])[1 + g % 3], 'x', now() - (g || ' seconds')::interval,
                   'succeeded', false, 0
            FROM generate_series(1, {rows}) g"""))
        conn.execute(sa.text("ANALYZE hint_request"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--big", action="store_true", help="also measure with 1,000,000 other rows")
    parser.add_argument("--only", nargs="*", help="run only these endpoint names")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    url = fresh_database(args.database_url)
    engine = make_engine(url)
    schema.upgrade(engine)
    profiles = workdir / "profiles"
    profiles.mkdir()
    (profiles / "default.yaml").write_text("default: {overall: null, plan: null, debug: null, optimize: null}\n")
    (workdir / "floor.py").write_text(FLOOR_APP)
    (workdir / "instructors.yaml").write_text("instructors:\n  - {id: 1, name: Bench, email: bench@course.example}\n")
    problems, hints = start_simulators(execution_delay=0.0, hint_delay=3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.update(upstream_environment(problems, hints), DATABASE_URL=url, ORCHESTRATOR_QUOTA_PROFILES=str(profiles),
               ORCHESTRATOR_LOG_DIR=str(workdir / "logs"), ORCHESTRATOR_LOG_LEVEL="WARNING",
               ORCHESTRATOR_INSTRUCTOR_CONFIG=str(workdir / "instructors.yaml"))
    port, floor_port = free_port(), free_port()
    processes = []
    try:
        serve = subprocess.Popen([sys.executable, "-m", "orchestrator", "serve", "--port", str(port),
                                  "--workers", str(args.workers)], env=env, cwd=workdir,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        processes.append(serve)
        floor = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{floor_port}",
                                  "--workers", str(args.workers), "--worker-class", "sync", "--keep-alive", "5",
                                  "--log-level", "warning", "--chdir", str(workdir), "floor:app"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        processes.append(floor)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", serve)
        wait_ready(f"http://127.0.0.1:{floor_port}/floor", floor)
        ids = seed(base, engine, problems.url)
        token = json.loads(subprocess.run(
            [sys.executable, "-m", "orchestrator", "instructors", "add", "1", "--json"], env=env, cwd=workdir,
            capture_output=True, text=True, check=True).stdout)["token"]

        add_body = '\'{"student_id": "load-%d", "problem_id": "sum_two", "hint_type": "debug", "student_program": "x"}\''
        reflect_body = '\'{"request_id": %d, "reflection_question": "q", "reflection_answer": "a"}\''
        endpoints = [
            ("floor", f"http://127.0.0.1:{floor_port}/floor", None),
            ("query_hint finished", f"{base}/ai_hint/query_hint/?request_id={ids['finished']}", None),
            ("query_hint pending", f"{base}/ai_hint/query_hint/?request_id={ids['pending']}", None),
            ("quota_left", f"{base}/ai_hint/quota_left/?student_id=bench-20&problem_id=sum_two", None),
            ("query_all_hint (20)", f"{base}/ai_hint/query_all_hint/?student_id=bench-20&problem_id=sum_two", None),
            ("problems list", f"{base}/problems/programming_problems/", None),
            ("problem single", f"{base}/problems/programming_problems/?problem_id=sum_two&include_description=true",
             None),
            ("get_execution_result", f"{base}/problems/get_execution_result/?execution_id={ids['execution']}", None),
            ("fetch_request (empty)", f"{base}/instructor_feedback/fetch_request/?instructor_id=1", None),
            ("add_request", f"{base}/ai_hint/add_request/", POST_SCRIPT % (add_body, "counter")),
            ("add_reflection", f"{base}/ai_hint/add_reflection/", POST_SCRIPT % (reflect_body, f"{ids['reflect_base']} + counter")),
        ]
        results = {}
        for name, target, script in endpoints:
            if args.only and name not in args.only and name != "floor":
                continue
            headers = [f"Authorization: Bearer {token}"] if "fetch_request" in name else None
            results[name] = wrk(target, duration=args.duration, connections=args.connections, script=script,
                                workdir=workdir, headers=headers)
            print(f"  {name:<28} {results[name]}", file=sys.stderr, flush=True)
        if args.big:
            big_table(engine, 1_000_000)
            for name in ("quota_left", "query_all_hint (20)"):
                target = dict((n, t) for n, t, _ in endpoints)[name]
                results[f"{name} +1M rows"] = wrk(target, duration=args.duration, connections=args.connections,
                                                  script=None, workdir=workdir)
        floor_rps = results["floor"]["rps"]
        for result in results.values():
            result["ratio_to_floor"] = round(result["rps"] / floor_rps, 3)
        print(f"\n{'endpoint':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'floor':>8}")
        for name, r in results.items():
            print(f"{name:<30}{r['rps']:>10.0f}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['errors']:>8}"
                  f"{r['ratio_to_floor'] * 100:>7.1f}%")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        hints.stop()
        problems.stop()
        engine.dispose()
        drop_database(url)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
