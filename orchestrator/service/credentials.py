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

from sqlalchemy import and_, bindparam, delete, func, insert, select, true, update
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


def check_token(connection: Connection, token: str | None, *, client: str, limit: int, window_seconds: int
                ) -> str | None:
    """The instructor id an active token belongs to, or None; a client with ``limit``
    failed checks in the last ``window_seconds`` is refused whatever it presents.
    Instructor apps poll with their credential, so both questions are one statement.

    Raises:
        RateLimitedError: locked out, with the seconds until the oldest failure leaves the window.
    """
    if token is not None and (not token.startswith(TOKEN_PREFIX) or len(token) > 200):
        token = None
    now = utcnow()
    failures, oldest, token_id, instructor_id, last_used_at = connection.execute(_CHECK, {
        "client": client[:64], "since": now - timedelta(seconds=window_seconds),
        "token_hash": None if token is None else hash_token(token),
    }).one()
    if failures >= limit:
        wait = max(1, int(window_seconds - (now - oldest).total_seconds()) + 1)
        raise RateLimitedError(
            "Too many failed sign-in attempts; try again later", retry_after=wait,
            detail={"retry_after_seconds": wait},
        )
    if instructor_id is None:
        return None
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        connection.execute(update(_tokens).where(_tokens.c.id == token_id).values(last_used_at=now))
    return instructor_id


def _check_statement():
    """Built once: the client's recent failures, and the active token with this hash if any."""
    failures = (
        select(func.count().label("failures"), func.min(_failures.c.at).label("oldest"))
        .where(and_(_failures.c.client == bindparam("client"), _failures.c.at > bindparam("since")))
        .subquery()
    )
    token = (
        select(_tokens.c.id, _tokens.c.instructor_id, _tokens.c.last_used_at)
        .where(and_(_tokens.c.token_hash == bindparam("token_hash"), _tokens.c.revoked_at.is_(None)))
        .subquery()
    )
    return (
        select(failures.c.failures, failures.c.oldest, token.c.id, token.c.instructor_id, token.c.last_used_at)
        .select_from(failures.outerjoin(token, true()))
        .limit(1)
    )


_CHECK = _check_statement()


def record_failure(session: Session, *, client: str, window_seconds: int) -> None:
    """Count a failed check (and forget this client's failures older than the window)."""

    connection = session.connection()
    connection.execute(insert(_failures).values(client=client[:64], at=utcnow()))
    connection.execute(delete(_failures).where(and_(
        _failures.c.client == client[:64], _failures.c.at < utcnow() - timedelta(seconds=window_seconds))))
