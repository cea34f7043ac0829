"""Instructor credentials: issue, list, revoke, and check tokens.

A token is ``orch_`` followed by 43 URL-safe characters (256 random bits). Only its
SHA-256 is stored, so a database leak reveals no usable token; the token itself is
shown once, when issued. Checks look the hash up by equality: the comparison that
matters happens inside the database's index, and the token's secret part never
travels through a variable-time string comparison in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from orchestrator.errors import NotFoundError, RateLimitedError, ValidationError
from orchestrator.service.instructor_config import InstructorConfig
from orchestrator.store.models import AuthFailure, InstructorToken, utcnow

TOKEN_PREFIX = "orch_"
_tokens = InstructorToken.__table__
_failures = AuthFailure.__table__
# How stale last_used_at may get before a check writes it again (spares a write per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    instructor_id: str
    token: str
    prefix: str


def issue_token(session: Session, config: InstructorConfig, *, instructor_id: str, label: str | None = None
                ) -> IssuedToken:
    """Issue a token for an instructor listed in the instructor configuration.

    Raises:
        NotFoundError: the id is not in the configuration.
    """
    if config.get(instructor_id) is None:
        known = ", ".join(i.id for i in config.instructors) or "none"
        raise NotFoundError(
            f"No instructor with id {instructor_id!r} in {config.source} (known: {known})"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[: len(TOKEN_PREFIX) + 6]
    session.add(InstructorToken(instructor_id=str(instructor_id), token_hash=hash_token(token), prefix=prefix,
                                label=label))
    return IssuedToken(str(instructor_id), token, prefix)


def list_tokens(session: Session, *, instructor_id: str | None = None) -> list[InstructorToken]:
    query = select(InstructorToken).order_by(InstructorToken.instructor_id, InstructorToken.created_at)
    if instructor_id is not None:
        query = query.where(InstructorToken.instructor_id == str(instructor_id))
    return list(session.exec(query).scalars())


def revoke(session: Session, *, instructor_id: str, prefix: str | None = None) -> int:
    """Revoke the instructor's active tokens (or the one starting with ``prefix``).

    Raises:
        NotFoundError: nothing active matched.
    """
    conditions = [_tokens.c.instructor_id == str(instructor_id), _tokens.c.revoked_at.is_(None)]
    if prefix is not None:
        if len(prefix) < len(TOKEN_PREFIX) + 4:
            raise ValidationError("Give at least the first 9 characters of the token (as `instructors list` shows)")
        conditions.append(_tokens.c.prefix == prefix[: len(TOKEN_PREFIX) + 6])
    count = session.connection().execute(update(_tokens).where(and_(*conditions)).values(revoked_at=utcnow())).rowcount
    if not count:
        raise NotFoundError(f"No active token for instructor {instructor_id!r}" + (f" starting {prefix}" if prefix else ""))
    return count


def authenticate(connection: Connection, token: str) -> str | None:
    """The instructor id an active token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = connection.execute(
        select(_tokens.c.id, _tokens.c.instructor_id, _tokens.c.last_used_at)
        .where(and_(_tokens.c.token_hash == hash_token(token), _tokens.c.revoked_at.is_(None)))
    ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        connection.execute(update(_tokens).where(_tokens.c.id == row.id).values(last_used_at=now))
    return row.instructor_id


def ensure_not_locked_out(connection: Connection, *, client: str, limit: int, window_seconds: int) -> None:
    """Refuse a client with ``limit`` failed checks in the last ``window_seconds``.

    Raises:
        RateLimitedError: with the seconds until the oldest failure leaves the window.
    """
    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=window_seconds)
    count, oldest = connection.execute(
        select(func.count(), func.min(_failures.c.at))
        .where(and_(_failures.c.client == client[:64], _failures.c.at > since))
    ).one()
    if count >= limit:
        wait = max(1, int(window_seconds - (utcnow() - oldest).total_seconds()) + 1)
        raise RateLimitedError(
            "Too many failed sign-in attempts; try again later", retry_after=wait,
            detail={"retry_after_seconds": wait},
        )


def record_failure(session: Session, *, client: str, window_seconds: int) -> None:
    """Count a failed check (and forget this client's failures older than the window)."""
    from sqlalchemy import delete, insert

    connection = session.connection()
    connection.execute(insert(_failures).values(client=client[:64], at=utcnow()))
    connection.execute(delete(_failures).where(and_(
        _failures.c.client == client[:64], _failures.c.at < utcnow() - timedelta(seconds=window_seconds))))
