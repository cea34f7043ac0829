"""Who may call what: the AI Hint backend's service credential.

``/ai_hint/save/`` accepts only the AI Hint backend. With ``ORCHESTRATOR_SERVICE_TOKEN``
set it must present ``Authorization: Bearer <token>`` (compared in constant time);
without one, only callers on loopback or private addresses are accepted, judged on
the socket's peer, or on ``X-Forwarded-For`` when that peer is a trusted proxy.
"""

from __future__ import annotations

import hmac
import ipaddress

import falcon

from orchestrator.errors import AuthenticationError, PermissionDeniedError
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
