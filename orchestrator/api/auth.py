"""Who may call what: the AI Hint backend's service credential and instructor credentials.

``/ai_hint/save/`` accepts only the AI Hint backend. With ``ORCHESTRATOR_SERVICE_TOKEN``
set it must present ``Authorization: Bearer <token>`` (compared in constant time);
without one, only callers on loopback or private addresses are accepted, judged on
the socket's peer, or on ``X-Forwarded-For`` when that peer is a trusted proxy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

import falcon

from orchestrator.errors import AuthenticationError, PermissionDeniedError
from orchestrator.service.credentials import check_token, record_failure
from orchestrator.store.db import Database
from orchestrator.settings import Settings


def bearer_token(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def client_address(req: falcon.Request, settings: Settings) -> str:
    """The caller's address: the socket peer, unless that is a trusted proxy, in which
    case the nearest untrusted address of ``X-Forwarded-For``."""
    peer = req.remote_addr or ""
    if not settings.trusted_proxies or not _in(peer, settings.trusted_proxies):
        return peer
    forwarded = [part.strip() for part in (req.get_header("X-Forwarded-For") or "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _in(address, settings.trusted_proxies):
            return address
    return forwarded[0] if forwarded else peer


def require_service(req: falcon.Request, settings: Settings) -> None:
    """Raises AuthenticationError (401) or PermissionDeniedError (403) unless the caller
    is the AI Hint backend."""
    if settings.service_token:
        token = bearer_token(req)
        if token is None:
            raise AuthenticationError("This endpoint needs the hint service's credential")
        if not hmac.compare_digest(token.encode(), settings.service_token.encode()):
            raise AuthenticationError("The hint service credential is not valid")
        return
    address = client_address(req, settings)
    if not _is_internal(address):
        raise PermissionDeniedError("This endpoint accepts calls from the hint service only")


def _is_internal(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private


def _in(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def require_admin(req: falcon.Request, settings: Settings) -> None:
    """The operator credential (``ORCHESTRATOR_ADMIN_TOKEN`` as a Bearer token).

    Raises:
        AuthenticationError (401): missing or wrong; PermissionDeniedError (403): no
        operator token is configured, so operator endpoints are closed.
    """
    if not settings.admin_token:
        raise PermissionDeniedError("Operator endpoints are disabled: ORCHESTRATOR_ADMIN_TOKEN is not set")
    token = bearer_token(req)
    if token is None or not hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        raise AuthenticationError("This endpoint needs the operator credential")


INSTRUCTOR_CHALLENGES = ('Bearer realm="orchestrator instructors"', 'Basic realm="orchestrator instructors"')


class InstructorAuthenticationError(AuthenticationError):
    """401 that asks for an instructor credential (Bearer or Basic)."""


def authenticated_instructor(req: falcon.Request, settings: Settings, db: Database) -> str | None:
    """The instructor id the request's credential belongs to; None when instructor
    authentication is off (``ORCHESTRATOR_INSTRUCTOR_AUTH=none``).

    Accepts ``Authorization: Bearer <token>`` or HTTP Basic with the instructor id as
    user name and the token as password (so a browser-served page can use it).

    Raises:
        InstructorAuthenticationError: no credential, or not a valid one.
    """
    if settings.instructor_auth == "none":
        return None
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "basic") or not value.strip():
        raise InstructorAuthenticationError("This endpoint needs an instructor credential")
    client = client_address(req, settings)
    # Single statements, each committed at once (a stale last_used_at is written by a
    # statement of its own), so checking a credential holds no transaction open.
    claimed, token = _credential(scheme.lower(), value.strip())
    with db.statement() as connection:
        instructor_id = check_token(connection, token, client=client, limit=settings.auth_failure_limit,
                                    window_seconds=settings.auth_failure_window_seconds)
    if claimed is not None and claimed != instructor_id:
        instructor_id = None
    if instructor_id is None:
        with db.scope() as session:
            record_failure(session, client=client, window_seconds=settings.auth_failure_window_seconds)
        raise InstructorAuthenticationError("The instructor credential is not valid")
    return instructor_id


def _credential(scheme: str, value: str) -> tuple[str | None, str | None]:
    """(claimed instructor id, token) from a Bearer token or Basic id:token; the token
    is None when the value cannot be decoded."""
    if scheme != "basic":
        return None, value
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    claimed, _, token = decoded.partition(":")
    return claimed, token


def require_instructor(req: falcon.Request, settings: Settings, db: Database, claimed_id: str | None) -> str | None:
    """Authenticate and check that the request acts for the authenticated instructor.

    Returns the acting instructor's id (the claimed one when authentication is off).

    Raises:
        InstructorAuthenticationError (401), PermissionDeniedError (403).
    """
    instructor_id = authenticated_instructor(req, settings, db)
    if instructor_id is None:
        return claimed_id
    if claimed_id is not None and str(claimed_id) != instructor_id:
        raise PermissionDeniedError("An instructor may act only as themself",
                                    detail={"authenticated_as": instructor_id})
    return instructor_id
