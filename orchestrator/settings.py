"""The one Settings object: environment variables, an optional ``.env`` file, YAML paths.

``load_settings()`` reads the process environment on top of ``.env.local`` (or,
when that file is absent, ``.env``) in the working directory, validates every
value and returns a frozen :class:`Settings`. A bad value raises
:class:`~orchestrator.errors.ConfigError` whose message names the variable, so the
process stops at start instead of failing on the first request.

The names of the service this one replaces keep working (``DB_NAME``,
``DB_USER``/``DB_USERNAME``, ``BACKEND_*_URL``, ``DJANGO_CORS_ALLOWED_ORIGINS``,
``NOTIFICATION_SENDER_EMAIL``/``_PASSWORD``); new settings are ``ORCHESTRATOR_*``.
Nothing here is read at import time.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from orchestrator.errors import ConfigError

DEFAULT_SQLITE_FILE = "orchestrator.db"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

# The old deployment's upstreams listened on 8002 (Problem Handler) and 8001 (AI
# Hint backend); the simulators use the same ports and paths by default.
DEFAULT_UPSTREAM_URLS = {
    "BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL": "http://127.0.0.1:8002/query/programming_problems/",
    "BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL": "http://127.0.0.1:8002/execution/execute_program/",
    "BACKEND_PROBLEM_HANDLER_GET_EXECUTION_RESULT_URL": "http://127.0.0.1:8002/execution/get_execution_result/",
    "BACKEND_HINT_ADD_REQUEST_URL": "http://127.0.0.1:8001/ai_hint/add_request/",
    "BACKEND_HINT_ADD_REFLECTION_URL": "http://127.0.0.1:8001/ai_hint/add_reflection/",
}

SMTP_TLS_MODES = ("ssl", "starttls", "none")
SMTP_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
INSTRUCTOR_AUTH_MODES = ("token", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str
    user: str | None
    password: str | None = field(repr=False)
    from_addr: str


@dataclass(frozen=True)
class UpstreamUrls:
    problems: str
    execute: str
    execution_result: str
    hint_add_request: str
    hint_add_reflection: str


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, validated. Build it with :func:`load_settings`."""

    database_url: str
    upstream: UpstreamUrls
    db_pool_size: int = 2
    db_max_overflow: int = 3
    upstream_connect_timeout: float = 3.0
    upstream_read_timeout: float = 5.0
    upstream_retries: int = 2
    catalog_cache_seconds: float = 30.0
    # None: ./quota_profiles when it exists, else the built-in default limits.
    quota_profiles_dir: Path | None = None
    instructor_config: Path | None = None
    instructor_auth: str = "token"
    service_token: str | None = field(default=None, repr=False)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    admin_token: str | None = field(default=None, repr=False)
    pseudonym_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = ()
    smtp: SmtpSettings | None = None
    hint_result_deadline_seconds: int = 300
    reflection_deadline_seconds: int = 3600
    delivery_max_attempts: int = 10
    delivery_backoff_seconds: float = 1.0
    delivery_backoff_max_seconds: float = 60.0
    outbox_lease_seconds: float = 30.0
    dispatcher_interval_seconds: float = 0.5
    retention_days: int | None = None
    student_app_dir: Path | None = None
    instructor_app_dir: Path | None = None
    metrics_require_token: bool = False
    auth_failure_limit: int = 10
    auth_failure_window_seconds: int = 300
    auto_migrate: bool = False
    log_dir: Path = Path("logs")
    log_level: str = "INFO"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def public_view(self) -> dict[str, Any]:
        """The settings as plain data with secrets and passwords masked (for display)."""
        data = asdict(self)
        data["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        for key in ("service_token", "admin_token", "pseudonym_key"):
            data[key] = "***" if data[key] else None
        if data["smtp"] and data["smtp"]["password"]:
            data["smtp"]["password"] = "***"
        data["trusted_proxies"] = [str(net) for net in self.trusted_proxies]
        data["cors_origins"] = list(self.cors_origins)
        for key in ("quota_profiles_dir", "instructor_config", "log_dir", "student_app_dir", "instructor_app_dir"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


def read_env_files(directory: Path) -> dict[str, str]:
    """Values of ``.env.local`` in ``directory``, or of ``.env`` when there is no ``.env.local``."""
    for name in (".env.local", ".env"):
        path = directory / name
        if path.is_file():
            return {k: v for k, v in dotenv_values(path).items() if v is not None}
    return {}


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_dir: Path | None = None
) -> Settings:
    """Build and validate the Settings.

    ``environ`` defaults to ``os.environ``; it wins over the values of the env file
    found in ``env_dir`` (default: the working directory). ``ORCHESTRATOR_ENV_FILE``
    names an explicit env file instead.

    Raises:
        ConfigError: a value is invalid; the message names the variable.
    """
    environ = dict(os.environ if environ is None else environ)
    explicit = environ.get("ORCHESTRATOR_ENV_FILE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"ORCHESTRATOR_ENV_FILE: no such file: {explicit}")
        file_values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    else:
        file_values = read_env_files(env_dir or Path.cwd())
    env = _Env({**file_values, **environ})

    database_url = _database_url(env)
    is_sqlite = database_url.startswith("sqlite")
    return Settings(
        database_url=database_url,
        upstream=UpstreamUrls(
            problems=env.url("BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL"),
            execute=env.url("BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL"),
            execution_result=env.url("BACKEND_PROBLEM_HANDLER_GET_EXECUTION_RESULT_URL"),
            hint_add_request=env.url("BACKEND_HINT_ADD_REQUEST_URL"),
            hint_add_reflection=env.url("BACKEND_HINT_ADD_REFLECTION_URL"),
        ),
        db_pool_size=env.integer("ORCHESTRATOR_DB_POOL_SIZE", 2, minimum=1),
        db_max_overflow=env.integer("ORCHESTRATOR_DB_MAX_OVERFLOW", 3, minimum=0),
        upstream_connect_timeout=env.number("ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT", 3.0),
        upstream_read_timeout=env.number("ORCHESTRATOR_UPSTREAM_READ_TIMEOUT", 5.0),
        upstream_retries=env.integer("ORCHESTRATOR_UPSTREAM_RETRIES", 2, minimum=0),
        catalog_cache_seconds=env.number("ORCHESTRATOR_CATALOG_CACHE_SECONDS", 30.0, minimum=0.0),
        quota_profiles_dir=env.path("ORCHESTRATOR_QUOTA_PROFILES"),
        instructor_config=env.path("ORCHESTRATOR_INSTRUCTOR_CONFIG"),
        instructor_auth=env.choice("ORCHESTRATOR_INSTRUCTOR_AUTH", INSTRUCTOR_AUTH_MODES, "token"),
        service_token=env.secret("ORCHESTRATOR_SERVICE_TOKEN"),
        trusted_proxies=env.networks("ORCHESTRATOR_TRUSTED_PROXIES"),
        admin_token=env.secret("ORCHESTRATOR_ADMIN_TOKEN"),
        pseudonym_key=env.secret("ORCHESTRATOR_PSEUDONYM_KEY"),
        max_body_bytes=env.integer("ORCHESTRATOR_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1),
        cors_origins=_cors_origins(env),
        smtp=_smtp(env),
        hint_result_deadline_seconds=env.integer(
            "ORCHESTRATOR_HINT_RESULT_DEADLINE_SECONDS", 300, minimum=1
        ),
        reflection_deadline_seconds=env.integer(
            "ORCHESTRATOR_REFLECTION_DEADLINE_SECONDS", 3600, minimum=1
        ),
        delivery_max_attempts=env.integer("ORCHESTRATOR_DELIVERY_MAX_ATTEMPTS", 10, minimum=1),
        delivery_backoff_seconds=env.number("ORCHESTRATOR_DELIVERY_BACKOFF_SECONDS", 1.0),
        delivery_backoff_max_seconds=env.number("ORCHESTRATOR_DELIVERY_BACKOFF_MAX_SECONDS", 60.0),
        outbox_lease_seconds=_lease(env),
        dispatcher_interval_seconds=env.number("ORCHESTRATOR_DISPATCHER_INTERVAL_SECONDS", 0.5),
        retention_days=env.integer("ORCHESTRATOR_RETENTION_DAYS", 0, minimum=0) or None,
        student_app_dir=env.directory("ORCHESTRATOR_STUDENT_APP_DIR"),
        instructor_app_dir=env.directory("ORCHESTRATOR_INSTRUCTOR_APP_DIR"),
        metrics_require_token=_metrics_protection(env),
        auth_failure_limit=env.integer("ORCHESTRATOR_AUTH_FAILURE_LIMIT", 10, minimum=1),
        auth_failure_window_seconds=env.integer("ORCHESTRATOR_AUTH_FAILURE_WINDOW_SECONDS", 300, minimum=1),
        auto_migrate=env.boolean("ORCHESTRATOR_AUTO_MIGRATE", default=is_sqlite),
        log_dir=Path(env.get("ORCHESTRATOR_LOG_DIR") or "logs"),
        log_level=env.choice("ORCHESTRATOR_LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
    )


class _Env:
    """Typed, validating accessors over the merged variables."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def get(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def secret(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters long (use a random secret)")
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.001) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not value >= minimum or value == float("inf"):
            raise ConfigError(f"{name} must be a finite number >= {minimum}, got {raw!r}")
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, choices: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        raw = self.get(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
        return value

    def url(self, name: str) -> str:
        raw = self.get(name) or DEFAULT_UPSTREAM_URLS[name]
        parts = urlsplit(raw)
        try:
            parts.port  # raises for a port outside 0-65535
        except ValueError:
            raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
        return raw

    def path(self, name: str) -> Path | None:
        raw = self.get(name)
        return Path(raw) if raw else None

    def directory(self, name: str) -> Path | None:
        """A directory holding a built single-page app (with its index.html)."""
        path = self.path(name)
        if path is None:
            return None
        if not (path / "index.html").is_file():
            raise ConfigError(f"{name}: {path} is not a directory with an index.html (a built app)")
        return path.resolve()

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        nets = []
        for item in _split_list(self.get(name)):
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None
        return tuple(nets)


def _split_list(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def _database_url(env: _Env) -> str:
    raw = env.get("DATABASE_URL")
    if raw:
        if raw.startswith("postgres://"):
            raw = "postgresql://" + raw[len("postgres://"):]
        try:
            url = make_url(raw)
        except ArgumentError:
            raise ConfigError("DATABASE_URL is not a valid database URL") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got {url.get_backend_name()!r}"
            )
        if url.get_backend_name() == "postgresql" and not url.database:
            raise ConfigError("DATABASE_URL names no database")
        return url.render_as_string(hide_password=False)

    name = env.get("DB_NAME")
    if name:
        port = env.integer("DB_PORT", 5432, minimum=1)
        if port > 65535:
            raise ConfigError(f"DB_PORT must be at most 65535, got {port}")
        url = URL.create(
            "postgresql+psycopg2",
            username=env.get("DB_USER") or env.get("DB_USERNAME"),
            password=env.get("DB_PASSWORD"),
            host=env.get("DB_HOST") or "localhost",
            port=port,
            database=name,
        )
        return url.render_as_string(hide_password=False)

    for orphan in ("DB_USER", "DB_USERNAME", "DB_PASSWORD", "DB_HOST", "DB_PORT"):
        if env.get(orphan):
            raise ConfigError(f"{orphan} is set but DB_NAME is not; set DB_NAME (or DATABASE_URL)")
    return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_FILE).resolve()}"


def _metrics_protection(env: _Env) -> bool:
    protected = env.boolean("ORCHESTRATOR_METRICS_REQUIRE_TOKEN", default=False)
    if protected and not env.get("ORCHESTRATOR_ADMIN_TOKEN"):
        raise ConfigError("ORCHESTRATOR_METRICS_REQUIRE_TOKEN is true but ORCHESTRATOR_ADMIN_TOKEN is not set")
    return protected


def _lease(env: _Env) -> float:
    lease = env.number("ORCHESTRATOR_OUTBOX_LEASE_SECONDS", 30.0)
    longest_call = env.number("ORCHESTRATOR_UPSTREAM_CONNECT_TIMEOUT", 3.0) + env.number(
        "ORCHESTRATOR_UPSTREAM_READ_TIMEOUT", 5.0
    )
    if lease <= longest_call:
        raise ConfigError(
            f"ORCHESTRATOR_OUTBOX_LEASE_SECONDS ({lease:g}) must be longer than one upstream call "
            f"(connect + read timeout = {longest_call:g} s), or deliveries would be taken over mid-call"
        )
    return lease


def _cors_origins(env: _Env) -> tuple[str, ...]:
    name = "ORCHESTRATOR_CORS_ORIGINS"
    raw = env.get(name)
    if raw is None:
        name, raw = "DJANGO_CORS_ALLOWED_ORIGINS", env.get("DJANGO_CORS_ALLOWED_ORIGINS")
    origins = []
    for item in _split_list(raw):
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(f"{name}: {item!r} is not an origin like https://app.example.org")
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


def _smtp(env: _Env) -> SmtpSettings | None:
    host = env.get("ORCHESTRATOR_SMTP_HOST")
    if host:
        tls = env.choice("ORCHESTRATOR_SMTP_TLS", SMTP_TLS_MODES, "starttls")
        port = env.integer("ORCHESTRATOR_SMTP_PORT", SMTP_DEFAULT_PORTS[tls], minimum=1)
        user = env.get("ORCHESTRATOR_SMTP_USER")
        password = env.get("ORCHESTRATOR_SMTP_PASSWORD")
        if password and not user:
            raise ConfigError("ORCHESTRATOR_SMTP_PASSWORD is set but ORCHESTRATOR_SMTP_USER is not")
        sender = env.get("ORCHESTRATOR_SMTP_FROM") or user
        if not sender or "@" not in sender:
            raise ConfigError(
                "ORCHESTRATOR_SMTP_FROM must be an e-mail address (it defaults to ORCHESTRATOR_SMTP_USER)"
            )
        return SmtpSettings(host, port, tls, user, password, sender)

    for orphan in ("ORCHESTRATOR_SMTP_PORT", "ORCHESTRATOR_SMTP_TLS", "ORCHESTRATOR_SMTP_USER",
                   "ORCHESTRATOR_SMTP_PASSWORD", "ORCHESTRATOR_SMTP_FROM"):
        if env.get(orphan):
            raise ConfigError(f"{orphan} is set but ORCHESTRATOR_SMTP_HOST is not")

    sender = env.get("NOTIFICATION_SENDER_EMAIL")
    if sender:
        password = env.get("NOTIFICATION_SENDER_PASSWORD")
        if not password:
            raise ConfigError("NOTIFICATION_SENDER_EMAIL is set but NOTIFICATION_SENDER_PASSWORD is not")
        if "@" not in sender:
            raise ConfigError(f"NOTIFICATION_SENDER_EMAIL must be an e-mail address, got {sender!r}")
        # The old service sent through Gmail over implicit TLS.
        return SmtpSettings("smtp.gmail.com", 465, "ssl", sender, password, sender)
    return None
