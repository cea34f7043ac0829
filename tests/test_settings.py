from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.settings import DEFAULT_MAX_BODY_BYTES, load_settings


def settings(env=None, tmp_path: Path | None = None):
    return load_settings(env or {}, env_dir=tmp_path or Path("/nonexistent"))


def test_defaults_use_an_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = settings()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'orchestrator.db'}"
    assert s.is_sqlite and s.auto_migrate
    assert s.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 10 * 1024 * 1024
    assert s.instructor_auth == "token"
    assert s.smtp is None
    assert s.upstream.problems.endswith("/query/programming_problems/")


def test_old_db_variables_build_a_postgresql_url_with_escaped_password():
    s = settings({"DB_NAME": "hints", "DB_USERNAME": "svc", "DB_PASSWORD": "p@ss/word",
                  "DB_HOST": "db.internal", "DB_PORT": "6543"})
    assert s.database_url == "postgresql+psycopg2://svc:p%40ss%2Fword@db.internal:6543/hints"
    assert not s.is_sqlite and not s.auto_migrate
    assert "p@ss" not in str(s.public_view())


def test_db_user_wins_over_db_username_and_database_url_over_db_name():
    assert "://a@" in settings({"DB_NAME": "x", "DB_USER": "a", "DB_USERNAME": "b"}).database_url
    s = settings({"DATABASE_URL": "postgres://u@h/d", "DB_NAME": "other"})
    assert s.database_url == "postgresql://u@h/d"


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"DATABASE_URL": "mysql://u@h/d"}, "DATABASE_URL"),
        ({"DATABASE_URL": "::::"}, "DATABASE_URL"),
        ({"DB_NAME": "x", "DB_PORT": "five"}, "DB_PORT"),
        ({"DB_HOST": "db"}, "DB_HOST"),
        ({"BACKEND_HINT_ADD_REQUEST_URL": "ftp://x/"}, "BACKEND_HINT_ADD_REQUEST_URL"),
        ({"BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL": "not a url"}, "BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL"),
        ({"BACKEND_HINT_ADD_REFLECTION_URL": "http://h:99999/x/"}, "BACKEND_HINT_ADD_REFLECTION_URL"),
        ({"ORCHESTRATOR_MAX_BODY_BYTES": "10MB"}, "ORCHESTRATOR_MAX_BODY_BYTES"),
        ({"ORCHESTRATOR_MAX_BODY_BYTES": "0"}, "ORCHESTRATOR_MAX_BODY_BYTES"),
        ({"ORCHESTRATOR_INSTRUCTOR_AUTH": "maybe"}, "ORCHESTRATOR_INSTRUCTOR_AUTH"),
        ({"ORCHESTRATOR_TRUSTED_PROXIES": "10.0.0.1,proxy.local"}, "ORCHESTRATOR_TRUSTED_PROXIES"),
        ({"ORCHESTRATOR_CORS_ORIGINS": "localhost:5173"}, "ORCHESTRATOR_CORS_ORIGINS"),
        ({"DJANGO_CORS_ALLOWED_ORIGINS": "http://a.example/path"}, "DJANGO_CORS_ALLOWED_ORIGINS"),
        ({"ORCHESTRATOR_SERVICE_TOKEN": "short"}, "ORCHESTRATOR_SERVICE_TOKEN"),
        ({"ORCHESTRATOR_ADMIN_TOKEN": "short"}, "ORCHESTRATOR_ADMIN_TOKEN"),
        ({"ORCHESTRATOR_SMTP_HOST": "mail", "ORCHESTRATOR_SMTP_TLS": "tls1.3"}, "ORCHESTRATOR_SMTP_TLS"),
        ({"ORCHESTRATOR_SMTP_HOST": "mail"}, "ORCHESTRATOR_SMTP_FROM"),
        ({"ORCHESTRATOR_SMTP_PORT": "25"}, "ORCHESTRATOR_SMTP_PORT"),
        ({"NOTIFICATION_SENDER_EMAIL": "a@b.c"}, "NOTIFICATION_SENDER_PASSWORD"),
        ({"ORCHESTRATOR_UPSTREAM_READ_TIMEOUT": "-1"}, "ORCHESTRATOR_UPSTREAM_READ_TIMEOUT"),
        ({"ORCHESTRATOR_UPSTREAM_READ_TIMEOUT": "inf"}, "ORCHESTRATOR_UPSTREAM_READ_TIMEOUT"),
        ({"ORCHESTRATOR_AUTO_MIGRATE": "perhaps"}, "ORCHESTRATOR_AUTO_MIGRATE"),
        ({"ORCHESTRATOR_LOG_LEVEL": "loud"}, "ORCHESTRATOR_LOG_LEVEL"),
        ({"ORCHESTRATOR_ENV_FILE": "/no/such/file"}, "ORCHESTRATOR_ENV_FILE"),
    ],
)
def test_a_bad_value_fails_with_a_message_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as excinfo:
        settings(env)
    assert variable in str(excinfo.value)


def test_lists_are_parsed_and_normalised():
    s = settings({
        "DJANGO_CORS_ALLOWED_ORIGINS": "http://localhost:5173, HTTPS://Student.Example.org/",
        "ORCHESTRATOR_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
    })
    assert s.cors_origins == ("http://localhost:5173", "https://student.example.org")
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    # The new name wins over the old one.
    s = settings({"DJANGO_CORS_ALLOWED_ORIGINS": "http://old.example",
                  "ORCHESTRATOR_CORS_ORIGINS": "http://new.example"})
    assert s.cors_origins == ("http://new.example",)


def test_notification_sender_means_gmail_over_ssl():
    s = settings({"NOTIFICATION_SENDER_EMAIL": "course@gmail.com", "NOTIFICATION_SENDER_PASSWORD": "app-pw"})
    assert (s.smtp.host, s.smtp.port, s.smtp.tls, s.smtp.user, s.smtp.from_addr) == (
        "smtp.gmail.com", 465, "ssl", "course@gmail.com", "course@gmail.com")
    assert s.public_view()["smtp"]["password"] == "***"


def test_explicit_smtp_settings_take_precedence_and_default_the_port_by_tls_mode():
    s = settings({"ORCHESTRATOR_SMTP_HOST": "mail.uni.example", "ORCHESTRATOR_SMTP_TLS": "none",
                  "ORCHESTRATOR_SMTP_FROM": "hints@uni.example",
                  "NOTIFICATION_SENDER_EMAIL": "x@gmail.com", "NOTIFICATION_SENDER_PASSWORD": "pw"})
    assert (s.smtp.host, s.smtp.port, s.smtp.tls, s.smtp.user) == ("mail.uni.example", 25, "none", None)


def test_env_local_is_preferred_to_env_and_real_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("ORCHESTRATOR_MAX_BODY_BYTES=111\n")
    assert settings({}, tmp_path).max_body_bytes == 111
    (tmp_path / ".env.local").write_text(
        "ORCHESTRATOR_MAX_BODY_BYTES=222\nORCHESTRATOR_LOG_LEVEL=debug\n"
    )
    s = settings({}, tmp_path)
    assert (s.max_body_bytes, s.log_level) == (222, "DEBUG")
    assert settings({"ORCHESTRATOR_MAX_BODY_BYTES": "333"}, tmp_path).max_body_bytes == 333


def test_an_explicit_env_file_is_read(tmp_path):
    path = tmp_path / "prod.env"
    path.write_text("ORCHESTRATOR_SERVICE_TOKEN=0123456789abcdef0123\n")
    s = settings({"ORCHESTRATOR_ENV_FILE": str(path)})
    assert s.service_token == "0123456789abcdef0123"
    assert s.public_view()["service_token"] == "***"
    assert "0123456789abcdef" not in repr(s)
