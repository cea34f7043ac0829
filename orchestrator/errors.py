"""Domain errors shared by the service layer, the HTTP API and the CLI.

Nothing here knows about HTTP or the terminal: ``api/errors.py`` maps these to
JSON error responses, ``cli/output.py`` to a message on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose.

    ``message`` must read well to an end user (the student app shows it in a
    toast); ``detail`` is optional structured context, never secrets or SQL.
    """

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigError(OrchestratorError):
    """A setting or configuration file is invalid; the process must not start."""


class ValidationError(OrchestratorError):
    """The caller sent input that is malformed, missing or of the wrong type."""


class NotFoundError(OrchestratorError):
    """An id the caller named does not exist."""


class ConflictError(OrchestratorError):
    """The request contradicts the current state (e.g. a second escalation)."""


class QuotaExceededError(OrchestratorError):
    """The student's hint quota for this problem (or hint type) is used up."""


class HintGenerationFailedError(OrchestratorError):
    """A polled hint ended without a hint (the backend failed, or delivery gave up).

    The contract answers this with a 500 (the clients treat any non-200 as a failed
    hint and give the quota back in their UI); it is not a fault of the service.
    """


class AuthenticationError(OrchestratorError):
    """Credentials are missing or invalid."""


class RateLimitedError(OrchestratorError):
    """Too many failed attempts from this client; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, *, retry_after: int, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class PermissionDeniedError(OrchestratorError):
    """Credentials are valid but do not allow this action."""


class DatabaseUnavailableError(OrchestratorError):
    """The database cannot be reached right now; the caller may retry later."""


class SchemaNotCurrentError(OrchestratorError):
    """The database schema is missing or behind the code's migrations."""


class UpstreamError(OrchestratorError):
    """An upstream service (Problem Handler, AI Hint backend, SMTP) failed.

    ``kind`` says how: ``unreachable``, ``timeout``, ``bad_status``,
    ``non_json``, ``bad_response``. ``status`` is the upstream's HTTP status when
    it answered; ``upstream_body`` its decoded JSON body when it had one.
    """

    KINDS = ("unreachable", "timeout", "bad_status", "non_json", "bad_response")
    # Seconds the upstream asked us to wait (its Retry-After header), if it did.
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        upstream: str,
        kind: str,
        status: int | None = None,
        upstream_body: Any = None,
        detail: Any = None,
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown upstream error kind {kind!r}")
        super().__init__(message, detail=detail)
        self.upstream = upstream
        self.kind = kind
        self.status = status
        self.upstream_body = upstream_body


class UpstreamRejectedError(OrchestratorError):
    """An upstream answered a client error (4xx) that is passed on to our caller as is.

    ``status`` is the upstream's status (e.g. 404 for an unknown problem).
    """

    def __init__(self, message: str, *, status: int, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.status = status
