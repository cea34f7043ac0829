"""Property-based fuzzing (schemathesis) of a live `orchestrator serve` with the simulators.

Every documented operation gets generated inputs, valid and invalid. Checks: no 5xx
(except the documented failed-hint 500 of query_hint), status codes as documented,
bodies and content types as documented. ORCHESTRATOR_FUZZ_EXAMPLES sets the number of
examples per operation (the suite's default is small; docs/security.md names a longer run).
"""

import os
import shutil

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import INSTRUCTORS_YAML, LiveApp, ServerProcess, free_port
from orchestrator.api.resources.openapi import openapi_document
from orchestrator.simulators.server import start_simulators, upstream_environment
from orchestrator.store.db import make_engine

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("ORCHESTRATOR_FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(max_examples=EXAMPLES, allow_x00=True)

FAILED_HINT = "The hint could not be generated"


@schemathesis.check
def no_server_error(ctx, response, case):
    """No 5xx, except query_hint's documented answer for a failed hint."""
    if response.status_code < 500:
        return True
    if case.path == "/ai_hint/query_hint/" and response.status_code == 500:
        body = response.json()
        assert body.get("error") == FAILED_HINT, f"unexpected 500 body: {body}"
        return True
    raise AssertionError(f"{response.status_code} for {case.method} {case.path}: {response.text[:300]}")


@pytest.fixture(scope="module")
def live(postgres_server, _migrated_template, tmp_path_factory):
    """A real server on a database of its own, with the simulators as its upstreams."""
    workdir = tmp_path_factory.mktemp("fuzz")
    if postgres_server is None:
        shutil.copyfile(_migrated_template, workdir / "fuzz.db")
        database_url = f"sqlite:///{workdir / 'fuzz.db'}"
    else:
        database_url = postgres_server.create(template=_migrated_template)
    (workdir / "instructors.yaml").write_text(INSTRUCTORS_YAML)
    problems, hints = start_simulators(execution_delay=0.05, hint_delay=0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DB_", "BACKEND_"))}
    env.pop("DATABASE_URL", None)
    env.update(upstream_environment(problems, hints), DATABASE_URL=database_url,
               ORCHESTRATOR_LOG_DIR=str(workdir / "logs"),
               ORCHESTRATOR_INSTRUCTOR_CONFIG=str(workdir / "instructors.yaml"),
               ORCHESTRATOR_UPSTREAM_READ_TIMEOUT="2", ORCHESTRATOR_UPSTREAM_RETRIES="0")
    server = ServerProcess(["--workers", "2"], env, workdir, free_port())
    hints.simulator.configure({"callback_url": f"{server.url}/ai_hint/save/"})
    server.wait_healthy()
    yield server
    server.stop()
    hints.stop()
    problems.stop()
    if postgres_server is not None:
        make_engine(database_url).dispose()
        postgres_server.drop(database_url)


@schema.parametrize()
def test_no_input_breaks_the_api(case, live):
    case.call_and_validate(
        base_url=live.url,
        checks=[no_server_error, status_code_conformance, response_schema_conformance, content_type_conformance],
        timeout=30,
    )



def test_the_fuzzer_catches_a_broken_handler(runtime, monkeypatch):
    """The checks above can fail: a handler that breaks on some inputs is found."""
    from hypothesis import given, settings

    from orchestrator.api.app import create_app
    from orchestrator.service import hints

    real = hints.quota_left

    def broken(db, profiles, *, student_id, problem_id):
        if any(not c.isalnum() for c in student_id):
            raise RuntimeError("deliberately broken")
        return real(db, profiles, student_id=student_id, problem_id=problem_id)

    monkeypatch.setattr(hints, "quota_left", broken)
    live_app = LiveApp(create_app(runtime.settings, runtime))
    operation = schema["/ai_hint/quota_left/"]["GET"]

    @given(case=operation.as_strategy())
    @settings(max_examples=100, deadline=None, database=None)
    def fuzz(case):
        case.call_and_validate(base_url=live_app.url, checks=[no_server_error])

    try:
        # schemathesis reports a FailureGroup (a BaseExceptionGroup).
        with pytest.raises(BaseException) as excinfo:
            fuzz()
        assert "no_server_error" in str(excinfo.value) and "quota_left" in str(excinfo.value)
    finally:
        live_app.stop()
