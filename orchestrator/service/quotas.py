"""Hint quotas: what a student has used and may still use on a problem.

A hint request counts against the quota unless it finished unsuccessfully; a
cancelled request keeps counting (the student app assumes so). The overall limit is
checked before the per-type limit.

Race-freedom: :func:`lock_student_problem` serialises every quota-checked insert for
one student and problem (a transaction-scoped advisory lock on PostgreSQL; on SQLite
the caller's ``BEGIN IMMEDIATE`` already holds the database's write lock), so N
concurrent requests can never be accepted beyond the limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, text
from sqlmodel import Session

from orchestrator.errors import QuotaExceededError
from orchestrator.service.profiles import LIMIT_KEYS, Limits
from orchestrator.store.models import HINT_TYPES, HintRequest

_hints = HintRequest.__table__

# Counted: everything but requests that finished unsuccessfully and were not cancelled.
COUNTS_AGAINST_QUOTA = or_(_hints.c.status != "failed", _hints.c.is_cancelled.is_(True))


@dataclass(frozen=True)
class QuotaStatus:
    limits: Limits
    used: dict[str, int]

    def left(self) -> dict[str, int | None]:
        result = {}
        for key in LIMIT_KEYS:
            limit = getattr(self.limits, key)
            result[key] = None if limit is None else max(0, limit - self.used[key])
        return result

    def as_dict(self, student_id: str, problem_id: str) -> dict:
        return {
            "student_id": student_id,
            "problem_id": problem_id,
            "limits": self.limits.as_dict(),
            "used": dict(self.used),
            "left": self.left(),
        }


def usage(session: Session, *, student_id: str, problem_id: str) -> dict[str, int]:
    """Requests counting against the quota, per hint type and overall (one indexed query)."""
    rows = session.connection().execute(
        select(_hints.c.hint_type, func.count())
        .where(and_(_hints.c.student_id == student_id, _hints.c.problem_id == problem_id, COUNTS_AGAINST_QUOTA))
        .group_by(_hints.c.hint_type)
    )
    used = {hint_type: 0 for hint_type in HINT_TYPES}
    for hint_type, count in rows:
        if hint_type in used:
            used[hint_type] = count
    used["overall"] = sum(used[t] for t in HINT_TYPES)
    return used


def quota_status(session: Session, limits: Limits, *, student_id: str, problem_id: str) -> QuotaStatus:
    return QuotaStatus(limits=limits, used=usage(session, student_id=student_id, problem_id=problem_id))


def ensure_allowed(status: QuotaStatus, hint_type: str) -> None:
    """Raises QuotaExceededError when one more ``hint_type`` request would pass a limit."""
    overall = status.limits.overall
    if overall is not None and status.used["overall"] >= overall:
        raise QuotaExceededError(
            f"You have used all {overall} hints for this problem",
            detail={"limit": "overall", "allowed": overall, "used": status.used["overall"]},
        )
    limit = status.limits.for_type(hint_type)
    if limit is not None and status.used[hint_type] >= limit:
        raise QuotaExceededError(
            f"You have used all {limit} {hint_type} hints for this problem",
            detail={"limit": hint_type, "allowed": limit, "used": status.used[hint_type]},
        )


def lock_student_problem(session: Session, *, student_id: str, problem_id: str) -> None:
    """Serialise quota decisions for one student and problem until the transaction ends."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return  # SQLite: the transaction began IMMEDIATE and holds the write lock.
    digest = hashlib.blake2b(f"{student_id}\x1f{problem_id}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

