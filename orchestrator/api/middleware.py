"""Request id, one log line per request, and the request body limit."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid

import falcon

from orchestrator import metrics

access_log = logging.getLogger("orchestrator.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """Gives every request an id (the caller's ``X-Request-ID`` when it is sane),
    echoes it in the response, and logs one line when the response is done."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        incoming = req.get_header("X-Request-ID")
        req.context.request_id = (
            incoming if incoming and _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        request_id = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        resp.set_header("X-Request-ID", request_id)
        started = getattr(req.context, "started", None)
        seconds = time.perf_counter() - started if started else 0.0
        duration_ms = round(seconds * 1000, 2)
        route = req.uri_template or "unmatched"
        metrics.HTTP_REQUESTS.labels(req.method, route, str(resp.status_code)).inc()
        metrics.HTTP_SECONDS.labels(req.method, route).observe(seconds)
        access_log.info(
            "%s %s %s",
            req.method,
            req.path,
            resp.status_code,
            extra={
                "event": "request",
                "request_id": request_id,
                "method": req.method,
                "path": req.path,
                "route": req.uri_template,
                "status": resp.status_code,
                "duration_ms": duration_ms,
                "remote": req.remote_addr,
            },
        )


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class SecurityHeaders:
    """Headers that make a JSON API's answers inert in a browser, on every response.

    ``Cache-Control: no-store`` unless a resource chose otherwise: answers carry
    students' data and must not sit in shared caches.
    """

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        for name, value in SECURITY_HEADERS.items():
            if resp.get_header(name) is None:
                resp.set_header(name, value)
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413 before anything reads them.

    A chunked body (no Content-Length) is read up to the limit here and handed on
    as a buffered stream with its length set, so resources see an ordinary body.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None:
            if length > self._max:
                raise self._too_large()
            return
        if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
            return
        data = req.stream.read(self._max + 1)
        if len(data) > self._max:
            raise self._too_large()
        req.stream = io.BytesIO(data)
        req.env["CONTENT_LENGTH"] = str(len(data))

    def _too_large(self) -> falcon.HTTPError:
        return falcon.HTTPContentTooLarge(
            title="Request body too large",
            description=f"The limit is {self._max} bytes",
        )
