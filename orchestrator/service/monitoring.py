"""Figures read from the database for monitoring (the /metrics gauges)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from orchestrator.service.feedback import ASSIGNED, WAITING, assignment_cutoff
from orchestrator.service.instructor_config import InstructorConfig
from orchestrator.store.db import Database
from orchestrator.store.models import InstructorFeedbackRequest, OutboxMessage, utcnow

_outbox = OutboxMessage.__table__
_feedback = InstructorFeedbackRequest.__table__


def monitoring_state(db: Database, config: InstructorConfig) -> dict:
    """Outbox depth/oldest age/failed by kind, and the escalation queue."""
    now = utcnow()
    cutoff = assignment_cutoff(config, now)
    with db.scope() as session:
        connection = session.connection()
        outbox: dict[str, list] = {}
        for kind, status, count, oldest in connection.execute(
            select(_outbox.c.kind, _outbox.c.status, func.count(), func.min(_outbox.c.created_at))
            .where(_outbox.c.status.in_(("pending", "failed")))
            .group_by(_outbox.c.kind, _outbox.c.status)
        ):
            entry = outbox.setdefault(kind, [0, 0.0, 0])
            if status == "pending":
                entry[0] = count
                entry[1] = max(0.0, (now - _aware(oldest)).total_seconds()) if oldest else 0.0
            else:
                entry[2] = count
        waiting_condition = or_(_feedback.c.state == WAITING,
                                and_(_feedback.c.state == ASSIGNED, _feedback.c.assigned_at <= cutoff))
        waiting, oldest_waiting = connection.execute(
            select(func.count(), func.min(_feedback.c.created_at)).where(waiting_condition)).one()
        assigned = connection.execute(
            select(func.count()).where(and_(_feedback.c.state == ASSIGNED, _feedback.c.assigned_at > cutoff))
        ).scalar()
    return {
        "outbox": {kind: tuple(values) for kind, values in outbox.items()},
        "queue": {
            "waiting": waiting or 0,
            "assigned": assigned or 0,
            "oldest_waiting_seconds": max(0.0, (now - _aware(oldest_waiting)).total_seconds()) if oldest_waiting else 0.0,
        },
    }


def _aware(value):
    from datetime import timezone

    if isinstance(value, str):  # SQLite aggregate results come back as text
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
