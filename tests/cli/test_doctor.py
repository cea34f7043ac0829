"""`orchestrator doctor` against a healthy setup and against broken ones."""

import json

import pytest

from conftest import INSTRUCTORS_YAML


@pytest.fixture
def healthy(make_cli, base_env, simulators, mail, tmp_path):
    (tmp_path / "instructors.yaml").write_text(INSTRUCTORS_YAML)
    env = {**base_env, **simulators.env, **mail.env,
           "ORCHESTRATOR_INSTRUCTOR_CONFIG": str(tmp_path / "instructors.yaml"),
           "ORCHESTRATOR_SERVICE_TOKEN": "a-long-service-token-0123"}
    return make_cli(env), env


def checks(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_a_healthy_setup_is_all_ok(healthy):
    cli, _ = healthy
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout
    found = checks(result)
    assert {name: c["status"] for name, c in found.items()} == {
        "settings": "OK", "database": "OK", "quota profiles": "OK", "instructors": "OK", "problem handler": "OK",
        "hint backend (requests)": "OK", "hint backend (reflections)": "OK", "smtp": "OK"}
    table = cli("doctor")
    assert table.exit_code == 0 and "FAIL" not in table.stdout


def test_each_problem_is_named_with_its_fix(healthy, simulators, tmp_path):
    cli, env = healthy
    simulators.hints.stop()
    (tmp_path / "instructors.yaml").write_text("instructors: [{id: 1, name: A, email: nope}]\n")
    result = cli("doctor", "--json", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.exit_code == 1
    found = checks(result)
    assert found["database"]["status"] == "FAIL" and "DATABASE_URL" in found["database"]["fix"]
    assert found["instructors"]["status"] == "FAIL" and "instructors[0].email" in found["instructors"]["detail"]
    assert found["hint backend (requests)"]["status"] == "FAIL"
    assert found["problem handler"]["status"] == "OK"
    text = cli("doctor", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert text.exit_code == 1 and "FAIL" in text.stdout


def test_unmigrated_database_and_bad_settings(healthy, empty_database_url):
    cli, _ = healthy
    found = checks(cli("doctor", "--json", env={"DATABASE_URL": empty_database_url}))
    assert found["database"]["status"] == "FAIL" and found["database"]["fix"] == "run `orchestrator migrate`"
    bad = cli("doctor", "--json", env={"ORCHESTRATOR_MAX_BODY_BYTES": "huge"})
    assert bad.exit_code == 1 and "ORCHESTRATOR_MAX_BODY_BYTES" in checks(bad)["settings"]["detail"]
