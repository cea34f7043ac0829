import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from orchestrator.store import schema

@pytest.fixture
def cli(make_cli):
    return make_cli()


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], "migrate"),
        (["serve"], "--demo"),
        (["migrate"], "--show-current"),
        (["simulate"], "--hint-port"),
        (["config"], "--json"),
        (["worker"], "--threads"),
        (["problems"], "show"),
        (["executions", "list"], "--student"),
        (["quota"], "profiles"),
        (["hints", "list"], "--status"),
        (["outbox"], "retry"),
    ],
)
def test_every_command_has_help(cli, command, expected):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert expected in result.output


def test_help_works_even_when_the_environment_is_bad(cli):
    result = cli("serve", "--help", env={"ORCHESTRATOR_MAX_BODY_BYTES": "lots"})
    assert result.exit_code == 0


def test_a_bad_setting_stops_a_command_naming_the_variable(cli):
    result = cli("migrate", env={"ORCHESTRATOR_MAX_BODY_BYTES": "lots"})
    assert result.exit_code == 2
    assert "ORCHESTRATOR_MAX_BODY_BYTES" in result.output


def test_migrate_creates_the_schema_then_is_a_no_op(cli, empty_database_url):
    env = {"DATABASE_URL": empty_database_url}
    check = cli("migrate", "--check", env=env)
    assert check.exit_code == 1 and "behind" in check.output

    first = cli("migrate", "--json", env=env)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["before"] is None and data["current"] == schema.head_revision() and data["changed"]

    engine = sa.create_engine(empty_database_url.replace("postgresql://", "postgresql+psycopg2://"))
    assert "hint_request" in sa.inspect(engine).get_table_names()
    engine.dispose()

    second = cli("migrate", env=env)
    assert second.exit_code == 0 and "nothing to do" in second.output
    assert json.loads(cli("migrate", "--json", env=env).stdout)["changed"] is False
    shown = cli("migrate", "--show-current", env=env)
    assert shown.exit_code == 0 and schema.head_revision() in shown.output and "up to date" in shown.output
    assert cli("migrate", "--check", env=env).exit_code == 0


def test_migrate_reports_an_unreachable_database(cli):
    result = cli("migrate", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.exit_code == 4
    assert "cannot reach the database" in result.output


def test_config_shows_settings_with_secrets_masked(cli):
    secret = "s3cret-service-token-value"
    result = cli("config", "--json", env={"ORCHESTRATOR_SERVICE_TOKEN": secret,
                                         "DB_NAME": "hints", "DB_PASSWORD": "dbpass-hidden"})
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["service_token"] == "***"
    assert secret not in result.output and "dbpass-hidden" not in result.output
    table = cli("config", env={"ORCHESTRATOR_SERVICE_TOKEN": secret})
    assert table.exit_code == 0 and "upstream.problems" in table.output and secret not in table.output


def test_serve_refuses_an_unmigrated_database(empty_database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(DATABASE_URL=empty_database_url, ORCHESTRATOR_AUTO_MIGRATE="false",
               ORCHESTRATOR_LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve", "--port", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3
    assert "not migrated" in proc.stderr and "orchestrator migrate" in proc.stderr


def test_commands_on_an_unmigrated_database_say_so(cli, empty_database_url):
    for command in (["hints", "list"], ["outbox"], ["executions", "list"]):
        result = cli(*command, env={"DATABASE_URL": empty_database_url})
        assert result.exit_code == 3 and "orchestrator migrate" in result.output, command


def test_migrate_to_an_unknown_revision_is_a_clean_error(cli, empty_database_url):
    result = cli("migrate", "--revision", "bogus", env={"DATABASE_URL": empty_database_url})
    assert result.exit_code == 2 and "bogus" in result.output


def test_worker_refuses_an_unmigrated_database(cli, empty_database_url):
    result = cli("worker", env={"DATABASE_URL": empty_database_url})
    assert result.exit_code == 3 and "orchestrator migrate" in result.output
