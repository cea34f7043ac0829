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

from sqlalchemy import and_, bindparam, func, literal, or_, select, text, union_all
from sqlalchemy.engine import Connection
from sqlmodel import Session

from orchestrator.errors import QuotaExceededError, ValidationError
from orchestrator.service.profiles import LIMIT_KEYS, Limits
from orchestrator.store.models import HINT_TYPES, HintRequest, QuotaGrant

_hints = HintRequest.__table__
_grants = QuotaGrant.__table__

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


def _figures_statement():
    """Built once: what the student used (per type) and was granted (per type), in one
    round trip (quota_left and add_request are hot paths)."""
    student, problem = bindparam("student_id"), bindparam("problem_id")
    used = (
        select(literal("used").label("what"), _hints.c.hint_type, func.count().label("n"))
        .where(and_(_hints.c.student_id == student, _hints.c.problem_id == problem, COUNTS_AGAINST_QUOTA))
        .group_by(_hints.c.hint_type)
    )
    granted = (
        select(literal("granted").label("what"), _grants.c.hint_type, func.sum(_grants.c.count).label("n"))
        .where(and_(_grants.c.student_id == student, _grants.c.problem_id == problem))
        .group_by(_grants.c.hint_type)
    )
    return union_all(used, granted)


_FIGURES = _figures_statement()


def quota_status(connection: Connection, limits: Limits, *, student_id: str, problem_id: str) -> QuotaStatus:
    """The profile's limits raised by the student's grants, and what was used (one indexed query)."""
    used = {hint_type: 0 for hint_type in HINT_TYPES}
    granted = {hint_type: 0 for hint_type in HINT_TYPES}
    for what, hint_type, n in connection.execute(_FIGURES, {"student_id": student_id, "problem_id": problem_id}):
        if hint_type in used:
            (used if what == "used" else granted)[hint_type] = int(n or 0)
    used["overall"] = sum(used[t] for t in HINT_TYPES)
    if any(granted.values()):
        total = sum(granted.values())
        limits = Limits(
            overall=None if limits.overall is None else limits.overall + total,
            **{t: None if limits.for_type(t) is None else limits.for_type(t) + granted[t] for t in HINT_TYPES},
        )
    return QuotaStatus(limits=limits, used=used)


def is_enforced(limits: Limits, hint_type: str) -> bool:
    """Whether a ``hint_type`` request has any limit to respect (grants only raise limits)."""
    return limits.overall is not None or limits.for_type(hint_type) is not None


def grant(session: Session, *, student_id: str, problem_id: str, hint_type: str, count: int,
          reason: str | None = None, granted_by: str | None = None) -> None:
    """Give a student ``count`` more ``hint_type`` hints on a problem (and as many more
    overall, when the overall limit is not unlimited).

    Raises:
        ValidationError: unknown hint type, or a count outside 1..100.
    """
    if hint_type not in HINT_TYPES:
        raise ValidationError(f"Unknown hint type {hint_type!r}; expected one of {', '.join(HINT_TYPES)}",
                              detail={"field": "hint_type"})
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
        raise ValidationError("The count must be a whole number from 1 to 100", detail={"field": "count"})
    session.add(QuotaGrant(student_id=student_id, problem_id=problem_id, hint_type=hint_type, count=count,
                           reason=reason, granted_by=granted_by))


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


def lock_student_problem(connection: Connection, *, student_id: str, problem_id: str) -> None:
    """Serialise quota decisions for one student and problem until the transaction ends."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: the transaction began IMMEDIATE and holds the write lock.
    digest = hashlib.blake2b(f"{student_id}\x1f{problem_id}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

