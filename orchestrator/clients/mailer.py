"""SMTP client: one message at a time, with a timeout; failures become UpstreamError.

Retries belong to the outbox: a message that fails is tried again later, so a slow
or failing SMTP server never slows or fails an API call.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

from orchestrator import metrics
from orchestrator.errors import UpstreamError
from orchestrator.settings import SmtpSettings

log = logging.getLogger("orchestrator.upstream")


class Mailer:
    upstream = "smtp"

    def __init__(self, settings: SmtpSettings, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout

    def send(self, *, to: list[str], subject: str, body: str) -> None:
        """Send one plain-text message to ``to`` (each recipient sees only themself in To).

        Raises:
            UpstreamError: unreachable, timeout, or the server refused (bad_status with
                the SMTP code as ``status``; 5xx codes are permanent).
        """
        message = EmailMessage()
        message["From"] = self._settings.from_addr
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        started = time.perf_counter()
        outcome, code = "ok", None
        try:
            with self._connect() as smtp:
                if self._settings.user and self._settings.password:
                    smtp.login(self._settings.user, self._settings.password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            outcome, code = "bad_status", exc.smtp_code
            raise self._error("bad_status", f"SMTP {exc.smtp_code}", code) from None
        except smtplib.SMTPRecipientsRefused as exc:
            outcome, code = "bad_status", 550
            raise self._error("bad_status", f"recipients refused: {sorted(exc.recipients)}", 550) from None
        except (socket.timeout, TimeoutError):
            outcome = "timeout"
            raise self._error("timeout", "timed out", None) from None
        except (OSError, smtplib.SMTPException) as exc:
            outcome = "unreachable"
            raise self._error("unreachable", exc.__class__.__name__, None) from None
        finally:
            metrics.observe_upstream(self.upstream, outcome, time.perf_counter() - started)
            log.info(
                "smtp send to %d recipient(s): %s", len(to), outcome,
                extra={"event": "upstream", "upstream": self.upstream, "method": "SMTP",
                       "url": f"{self._settings.host}:{self._settings.port}", "status": code,
                       "outcome": outcome, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        if s.tls == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=self._timeout, context=ssl.create_default_context())
        smtp = smtplib.SMTP(s.host, s.port, timeout=self._timeout)
        if s.tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp

    def _error(self, kind: str, reason: str, code: int | None) -> UpstreamError:
        # ``status`` is the SMTP reply code: 5xx is permanent, 4xx worth another try.
        return UpstreamError("The mail server could not send the message", upstream=self.upstream, kind=kind,
                             status=code, detail={"upstream": self.upstream, "reason": reason})
