"""The figures a course team and a researcher ask for first.

Everything is computed from the stored rows (optionally since a time and for one
problem): hint requests by type and outcome, helpfulness by type, time to hint, the
escalation rate, instructor answer time, feedback helpfulness, students served, quota
grants, and whether a hint was followed by a correct run of the same problem within N
minutes. The CLI (`orchestrator report`) and `GET /admin/report` share this.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, true

from orchestrator.store.db import Database
from orchestrator.store.models import (
    HINT_TYPES,
    HintRequest,
    InstructorFeedbackRequest,
    ProgramExecution,
    QuotaGrant,
)

_hints = HintRequest.__table__
_feedback = InstructorFeedbackRequest.__table__
_runs = ProgramExecution.__table__
_grants = QuotaGrant.__table__


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def build_report(db: Database, *, since: datetime | None = None, problem_id: str | None = None,
                 followed_within_minutes: int = 30) -> dict[str, Any]:
    """The report as plain data (see the module docstring)."""
    hint_filter = []
    if since is not None:
        hint_filter.append(_hints.c.created_at >= since)
    if problem_id is not None:
        hint_filter.append(_hints.c.problem_id == problem_id)
    with db.scope() as session:
        connection = session.connection()
        hints = connection.execute(
            select(_hints.c.id, _hints.c.student_id, _hints.c.problem_id, _hints.c.hint_type, _hints.c.status,
                   _hints.c.is_cancelled, _hints.c.is_hint_helpful, _hints.c.created_at, _hints.c.returned_time)
            .where(and_(true(), *hint_filter))
        ).all()
        feedback = connection.execute(
            select(_feedback.c.hint_request_id, _feedback.c.state, _feedback.c.created_at, _feedback.c.answered_at,
                   _feedback.c.is_feedback_helpful)
            .where(and_(true(), *([_feedback.c.created_at >= since] if since else []),
                        *([_feedback.c.problem_id == problem_id] if problem_id else [])))
        ).all()
        grants = connection.execute(
            select(_grants.c.hint_type, func.sum(_grants.c.count))
            .where(and_(true(), *([_grants.c.created_at >= since] if since else []),
                        *([_grants.c.problem_id == problem_id] if problem_id else [])))
            .group_by(_grants.c.hint_type)
        ).all()
        runs = _correct_runs(connection, hints)

    by_type: dict[str, dict[str, Any]] = {}
    for hint_type in HINT_TYPES:
        rows = [h for h in hints if h.hint_type == hint_type]
        rated = [h for h in rows if h.is_hint_helpful is not None]
        succeeded = [h for h in rows if h.status == "succeeded"]
        times = [_seconds(h.returned_time, h.created_at) for h in succeeded if h.returned_time]
        followed = sum(1 for h in succeeded if _followed(h, runs, followed_within_minutes))
        by_type[hint_type] = {
            "requests": len(rows),
            "succeeded": len(succeeded),
            "failed": sum(1 for h in rows if h.status == "failed"),
            "pending": sum(1 for h in rows if h.status == "pending"),
            "cancelled": sum(1 for h in rows if h.is_cancelled),
            "rated": len(rated),
            "helpful": sum(1 for h in rated if h.is_hint_helpful),
            "helpfulness_rate": _rate(sum(1 for h in rated if h.is_hint_helpful), len(rated)),
            "time_to_hint_seconds": {"median": percentile(times, 0.5), "p90": percentile(times, 0.9)},
            "followed_by_correct_run": followed,
            "followed_by_correct_run_rate": _rate(followed, len(succeeded)),
        }

    answered = [f for f in feedback if f.state == "answered"]
    answer_times = [_seconds(f.answered_at, f.created_at) for f in answered if f.answered_at]
    feedback_rated = [f for f in answered if f.is_feedback_helpful is not None]
    all_times = [_seconds(h.returned_time, h.created_at) for h in hints if h.status == "succeeded" and h.returned_time]
    return {
        "filters": {"since": since.isoformat() if since else None, "problem_id": problem_id,
                    "followed_within_minutes": followed_within_minutes},
        "students_served": len({h.student_id for h in hints}),
        "hint_requests": len(hints),
        "by_type": by_type,
        "time_to_hint_seconds": {"median": percentile(all_times, 0.5), "p90": percentile(all_times, 0.9)},
        "escalations": len(feedback),
        "escalation_rate": _rate(len(feedback), len(hints)),
        "answered_escalations": len(answered),
        "instructor_answer_seconds": {"median": percentile(answer_times, 0.5), "p90": percentile(answer_times, 0.9)},
        "feedback_rated": len(feedback_rated),
        "feedback_helpfulness_rate": _rate(sum(1 for f in feedback_rated if f.is_feedback_helpful),
                                           len(feedback_rated)),
        "quota_grants": {hint_type: int(total or 0) for hint_type, total in grants},
    }


def _correct_runs(connection, hints) -> dict[tuple[str, str], list[datetime]]:
    """Times of correct runs per (student, problem), for the students and problems in ``hints``."""
    students = {h.student_id for h in hints}
    if not students:
        return {}
    runs: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for chunk in _chunks(sorted(students), 500):
        for student_id, problem_id, created_at in connection.execute(
            select(_runs.c.student_id, _runs.c.problem_id, _runs.c.created_at)
            .where(and_(_runs.c.student_id.in_(chunk), _runs.c.correctness.is_(True)))
        ):
            runs[(student_id, problem_id)].append(created_at)
    return runs


def _followed(hint, runs, minutes: int) -> bool:
    end = hint.returned_time + timedelta(minutes=minutes)
    return any(hint.returned_time < at <= end for at in runs.get((hint.student_id, hint.problem_id), ()))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``7d``/``12h``/``30m`` (that long ago) or an ISO date/time (UTC if it names no zone).

    Raises:
        ValidationError: neither form.
    """
    from datetime import timezone

    from orchestrator.errors import ValidationError

    if text is None or not text.strip():
        return None
    text = text.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return (now or datetime.now(timezone.utc)) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"'since' must be like 7d, 12h, 30m or an ISO date, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
