"""E-mail notifications, delivered through the outbox.

Each e-mail is an outbox message (kind ``email``, one per recipient, rendered when the
event happens) committed with the change that caused it; the dispatcher sends it with
retries and backoff. A slow or failing SMTP server therefore never slows or fails an
API call. With no SMTP settings, nothing is queued.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlmodel import Session

from orchestrator.clients.mailer import Mailer
from orchestrator.errors import UpstreamError
from orchestrator.service import outbox
from orchestrator.service.instructor_config import InstructorConfig

EMAIL = "email"

log = logging.getLogger("orchestrator.notifications")


@dataclass(frozen=True)
class Notifier:
    config: InstructorConfig
    enabled: bool

    def queue_changed(self, session: Session, *, waiting: int, assigned: int) -> int:
        """Tell every instructor the queue counts (a new escalation, an answer)."""
        if not self.enabled or not self.config.emails:
            return 0
        rendered = _render(self.config.instructor_email, n_unprocessed_requests=waiting,
                           n_inprocessing_requests=assigned)
        if rendered is None:
            return 0
        return sum(self._enqueue(session, address, *rendered) for address in self.config.emails)

    def reminder(self, session: Session, *, overdue: int, waiting: int, oldest_minutes: int) -> int:
        """Remind every instructor of escalations waiting past the reminder threshold."""
        if not self.enabled or not self.config.emails:
            return 0
        rendered = _render(self.config.reminder_email, n_overdue_requests=overdue, n_unprocessed_requests=waiting,
                           oldest_waiting_minutes=oldest_minutes)
        if rendered is None:
            return 0
        return sum(self._enqueue(session, address, *rendered) for address in self.config.emails)

    def student_answered(self, session: Session, *, address: str | None, problem_id: str) -> int:
        """Tell the student (if they gave an address) that an instructor answered."""
        if not self.enabled or not address:
            return 0
        rendered = _render(self.config.student_email, problem_id=problem_id)
        return 0 if rendered is None else self._enqueue(session, address, *rendered)

    def _enqueue(self, session: Session, address: str, subject: str, body: str) -> int:
        if not self.enabled:
            return 0
        outbox.enqueue(session, kind=EMAIL, ordering_key=f"email:{uuid.uuid4().hex}",
                       payload={"to": [address], "subject": subject, "body": body})
        return 1


def _render(template, **values) -> tuple[str, str] | None:
    """The rendered template, or None (logged) if it cannot be rendered: a notification
    must never fail the operation that caused it."""
    try:
        return template.render(**values)
    except (ValueError, IndexError, KeyError, TypeError):
        log.exception("an e-mail template could not be rendered; the e-mail is skipped",
                      extra={"event": "email_template_error"})
        return None


def delivery_kinds(mailer: Mailer | None) -> dict[str, outbox.Kind]:
    def deliver(message) -> None:
        if mailer is None:
            raise outbox.PermanentDeliveryError("e-mail is not configured (ORCHESTRATOR_SMTP_HOST)")
        payload = message.payload or {}
        try:
            mailer.send(to=list(payload["to"]), subject=payload["subject"], body=payload["body"])
        except UpstreamError as exc:
            if exc.status is not None and 500 <= exc.status < 600:
                raise outbox.PermanentDeliveryError(f"the mail server refused it (SMTP {exc.status})") from exc
            raise outbox.RetryLater(outbox.describe(exc)) from exc

    return {EMAIL: outbox.Kind(deliver)}
