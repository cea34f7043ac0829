"""``orchestrator doctor``: is this deployment able to work? Each check says OK, WARN or
FAIL, what it saw, and how to fix it."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orchestrator.errors import ConfigError, UpstreamError
from orchestrator.settings import Settings

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def run_checks(environ: dict[str, str] | None = None, *, env_dir: Path | None = None) -> list[Check]:
    """Every check, in order; a failing step does not stop the others."""
    from orchestrator.settings import load_settings

    try:
        settings = load_settings(environ, env_dir=env_dir)
    except ConfigError as exc:
        return [Check("settings", FAIL, exc.message, "correct the variable named above")]
    checks = [Check("settings", OK, "every variable is valid"), *_settings_warnings(settings)]
    checks.append(_database(settings))
    checks.extend(_yaml(settings))
    checks.extend(_upstreams(settings))
    checks.append(_smtp(settings))
    return checks


def _settings_warnings(settings: Settings) -> list[Check]:
    found = []
    if not settings.service_token:
        found.append(Check("service token", WARN, "ORCHESTRATOR_SERVICE_TOKEN is not set: /ai_hint/save/ trusts "
                           "any loopback or private address", "set ORCHESTRATOR_SERVICE_TOKEN here and in the AI Hint backend"))
    if settings.instructor_auth == "none":
        found.append(Check("instructor auth", WARN, "ORCHESTRATOR_INSTRUCTOR_AUTH=none: instructor endpoints are open",
                           "use it on a closed network only, or set ORCHESTRATOR_INSTRUCTOR_AUTH=token"))
    return found


def _database(settings: Settings) -> Check:
    from orchestrator.store.db import make_engine
    from orchestrator.store.schema import schema_status

    engine = make_engine(settings.database_url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        status = schema_status(engine)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else exc.__class__.__name__
        return Check("database", FAIL, f"{shown}: {reason}",
                     "check DATABASE_URL (or DB_NAME/DB_USER/DB_PASSWORD/DB_HOST/DB_PORT) and that the server runs")
    finally:
        engine.dispose()
    if not status.is_current:
        return Check("database", FAIL, f"{shown}: at revision {status.current or 'none'}, code expects {status.head}",
                     "run `orchestrator migrate`")
    return Check("database", OK, f"{shown}: reachable, migrations current ({status.head})")


def _yaml(settings: Settings) -> list[Check]:
    from orchestrator.service.instructor_config import load_instructor_config
    from orchestrator.service.profiles import load_profiles

    checks = []
    try:
        profiles = load_profiles(settings.quota_profiles_dir)
        source = f"{len(profiles.files)} file(s)" if profiles.files else "the built-in default limits"
        checks.append(Check("quota profiles", OK, f"{source}, {len(profiles.overrides)} per-problem override(s)"))
    except ConfigError as exc:
        checks.append(Check("quota profiles", FAIL, exc.message, "correct the file and key named above"))
    try:
        config = load_instructor_config(settings.instructor_config)
        if config.instructors:
            checks.append(Check("instructors", OK, f"{len(config.instructors)} instructor(s) in {config.source}"))
        else:
            checks.append(Check("instructors", WARN, "no instructors are configured: escalations cannot be answered",
                                "list them in instructors.yaml or ORCHESTRATOR_INSTRUCTOR_CONFIG"))
    except ConfigError as exc:
        checks.append(Check("instructors", FAIL, exc.message, "correct the file and key named above"))
    return checks


def _upstreams(settings: Settings) -> list[Check]:
    from orchestrator.clients.http import RetryPolicy
    from orchestrator.clients.problem_handler import ProblemHandlerClient

    client = ProblemHandlerClient(settings.upstream, connect_timeout=settings.upstream_connect_timeout,
                                  read_timeout=settings.upstream_read_timeout, retry=RetryPolicy.none())
    checks = []
    try:
        catalog = client.catalog("")
        checks.append(Check("problem handler", OK, f"{settings.upstream.problems}: {len(catalog)} problems"))
    except UpstreamError as exc:
        checks.append(Check("problem handler", FAIL, f"{settings.upstream.problems}: {_why(exc)}",
                            "check BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL and that the Problem Handler runs"))
    finally:
        client.close()
    for name, url in (("hint backend (requests)", settings.upstream.hint_add_request),
                      ("hint backend (reflections)", settings.upstream.hint_add_reflection)):
        checks.append(_http_answers(name, url))
    return checks


def _http_answers(name: str, url: str) -> Check:
    """The AI Hint backend has no harmless call; any HTTP answer shows it is there."""
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException as exc:
        return Check(name, FAIL, f"{url}: {exc.__class__.__name__}",
                     "check BACKEND_HINT_ADD_REQUEST_URL / _ADD_REFLECTION_URL and that the AI Hint backend runs")
    return Check(name, OK, f"{url}: answers HTTP ({response.status_code} to a GET)")


def _smtp(settings: Settings) -> Check:
    smtp = settings.smtp
    if smtp is None:
        return Check("smtp", WARN, "e-mail is off (no ORCHESTRATOR_SMTP_HOST or NOTIFICATION_SENDER_*)",
                     "configure SMTP to notify instructors and students")
    where = f"{smtp.host}:{smtp.port} ({smtp.tls})"
    try:
        if smtp.tls == "ssl":
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=10, context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=10)
            if smtp.tls == "starttls":
                server.starttls(context=ssl.create_default_context())
        with server:
            server.ehlo()
            if smtp.user and smtp.password:
                server.login(smtp.user, smtp.password)
    except smtplib.SMTPAuthenticationError:
        return Check("smtp", FAIL, f"{where}: login refused for {smtp.user}",
                     "check ORCHESTRATOR_SMTP_USER/_PASSWORD (an app password for Gmail)")
    except (OSError, smtplib.SMTPException, socket.timeout) as exc:
        return Check("smtp", FAIL, f"{where}: {exc.__class__.__name__}", "check ORCHESTRATOR_SMTP_HOST/_PORT/_TLS")
    return Check("smtp", OK, f"{where}: connected" + (", logged in" if smtp.user and smtp.password else ""))


def _why(exc: UpstreamError) -> str:
    reason = exc.detail.get("reason") if isinstance(exc.detail, dict) else None
    return exc.kind + (f" ({reason})" if reason else "")
