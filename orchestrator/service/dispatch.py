"""Wiring of the outbox dispatcher: which kinds it delivers and what housekeeping it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.service import feedback, hints, notifications
from orchestrator.service.outbox import DeliveryPolicy, Dispatcher

if TYPE_CHECKING:
    from orchestrator.runtime import Runtime

DEADLINE_SWEEP_SECONDS = 5.0
REMINDER_SWEEP_SECONDS = 30.0


def build_dispatcher(runtime: Runtime, *, threads: int = 4) -> Dispatcher:
    """A dispatcher for every message kind, with the deadline sweep as a periodic task."""
    settings = runtime.settings
    policy = DeliveryPolicy(
        max_attempts=settings.delivery_max_attempts,
        backoff_seconds=settings.delivery_backoff_seconds,
        backoff_max_seconds=settings.delivery_backoff_max_seconds,
        lease_seconds=settings.outbox_lease_seconds,
    )

    def sweep() -> int:
        return hints.expire_deadlines(
            runtime.db,
            result_deadline_seconds=settings.hint_result_deadline_seconds,
            reflection_deadline_seconds=settings.reflection_deadline_seconds,
        )

    return Dispatcher(
        runtime.db,
        kinds={**hints.delivery_kinds(runtime.db, runtime.hint_backend),
               **notifications.delivery_kinds(runtime.mailer)},
        policy=policy,
        threads=threads,
        periodic=[
            (min(DEADLINE_SWEEP_SECONDS, settings.hint_result_deadline_seconds / 2,
                 settings.reflection_deadline_seconds / 2), sweep),
            (REMINDER_SWEEP_SECONDS,
             lambda: feedback.send_reminders(runtime.db, runtime.instructor_config, runtime.notifier)),
        ],
    )
