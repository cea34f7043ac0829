"""Every failure becomes one JSON shape: ``{"error": "<sentence>", "detail": <any>}``.

Domain errors (orchestrator.errors) are mapped to statuses here and only here;
Falcon's own errors (unknown route, wrong method, bad media, body too large) go
through the same serializer; anything unexpected is logged with the request id
and answered with a 500 that names nothing but that id.
"""

from __future__ import annotations

import logging

import falcon

from orchestrator import errors
from orchestrator.api.auth import INSTRUCTOR_CHALLENGES, InstructorAuthenticationError

log = logging.getLogger("orchestrator.api")

_STATUS_BY_ERROR: list[tuple[type[errors.OrchestratorError], int]] = [
    (errors.ValidationError, 400),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.QuotaExceededError, 429),
    (errors.RateLimitedError, 429),
    (errors.DatabaseUnavailableError, 503),
    (errors.HintGenerationFailedError, 500),
    (errors.SchemaNotCurrentError, 503),
]

# Sentences for Falcon errors that carry only a status line as their title.
_DEFAULT_SENTENCES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "No such endpoint",
    405: "Method not allowed on this endpoint",
    411: "A request body needs a Content-Length",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def error_body(message: str, context=None) -> dict:
    """The one error shape. The student app shows ``detail || error`` in a toast, so
    ``detail`` stays null and ``error`` is the sentence; machine-readable context (ids,
    limits, reasons) goes to ``info``, which clients may ignore."""
    body = {"error": message, "detail": None}
    if context is not None:
        body["info"] = context if isinstance(context, dict) else {"reason": context}
    return body


def status_for(exc: errors.OrchestratorError) -> int:
    if isinstance(exc, errors.UpstreamError):
        return 504 if exc.kind == "timeout" else 502
    if isinstance(exc, errors.UpstreamRejectedError):
        return exc.status if 400 <= exc.status < 500 else 502
    for cls, status in _STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def handle_domain_error(req: falcon.Request, resp: falcon.Response, exc, params) -> None:
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, (errors.UpstreamError, errors.HintGenerationFailedError)):
        log.warning("request failed: %s", exc.message, extra=_ids(req))
    resp.status = status
    resp.media = error_body(exc.message, exc.detail)
    if isinstance(exc, errors.RateLimitedError):
        resp.set_header("Retry-After", str(exc.retry_after))
    if status == 401:
        if isinstance(exc, InstructorAuthenticationError):
            for challenge in INSTRUCTOR_CHALLENGES:
                resp.append_header("WWW-Authenticate", challenge)
        else:
            resp.set_header("WWW-Authenticate", 'Bearer realm="orchestrator"')


def handle_unexpected(req: falcon.Request, resp: falcon.Response, exc, params) -> None:
    log.exception("unhandled error", extra=_ids(req))
    resp.status = 500
    resp.media = error_body(
        "Internal server error", {"request_id": getattr(req.context, "request_id", None)}
    )


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    status = exc.status_code
    title = exc.title or ""
    # Falcon's default title is the bare status line ("404 Not Found").
    if not title or title[:3].isdigit():
        title = _DEFAULT_SENTENCES.get(status, title or "Error")
    if status == 404 and isinstance(exc, falcon.HTTPRouteNotFound):
        title = f"No such endpoint: {req.path}"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(title, {"reason": exc.description} if exc.description else None)


def _ids(req: falcon.Request) -> dict:
    return {"request_id": getattr(req.context, "request_id", None), "path": req.path}


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(errors.OrchestratorError, handle_domain_error)
    app.set_error_serializer(serialize_http_error)
