"""Client of a running orchestrator's instructor endpoints (for `orchestrator feedback --url`).

Errors the server answers keep their meaning: its JSON error message comes back as
the matching domain error (404 NotFoundError, 409 ConflictError, ...), so the CLI
prints the same thing in remote and local mode.
"""

from __future__ import annotations

from typing import Any

from orchestrator import errors
from orchestrator.clients.http import BaseClient, RetryPolicy

_BY_STATUS = {
    400: errors.ValidationError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
}


class OrchestratorClient(BaseClient):
    upstream = "orchestrator"

    def __init__(self, base_url: str, *, token: str | None, timeout: float = 15.0) -> None:
        super().__init__(connect_timeout=min(timeout, 5.0), read_timeout=timeout, retry=RetryPolicy(retries=1))
        self._base = base_url.rstrip("/")
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    @property
    def display_name(self) -> str:
        return f"orchestrator at {self._base}"

    def queue(self) -> dict[str, Any]:
        return self._get("/instructor_feedback/queue/")

    def fetch(self, instructor_id: str) -> dict[str, Any]:
        return self._get("/instructor_feedback/fetch_request/", {"instructor_id": instructor_id})

    def show(self, instructor_request_id: int) -> dict[str, Any]:
        return self._get("/instructor_feedback/show_request/", {"instructor_request_id": instructor_request_id})

    def answer(self, instructor_request_id: int, instructor_id: str, text: str) -> None:
        self._post("/instructor_feedback/save_feedback/", {
            "instructor_request_id": instructor_request_id, "instructor_id": instructor_id, "feedback": text})

    def release(self, instructor_request_id: int, instructor_id: str) -> None:
        self._post("/instructor_feedback/release_request/", {
            "instructor_request_id": instructor_request_id, "instructor_id": instructor_id})

    def _get(self, path: str, params: dict | None = None) -> Any:
        try:
            return self.get_json(self._base + path, params=params).body
        except errors.UpstreamError as exc:
            raise _translated(exc) from None

    def _post(self, path: str, payload: dict) -> Any:
        try:
            return self.post_json(self._base + path, payload).body
        except errors.UpstreamError as exc:
            raise _translated(exc) from None


def _translated(exc: errors.UpstreamError) -> errors.OrchestratorError:
    body = exc.upstream_body if isinstance(exc.upstream_body, dict) else {}
    cls = _BY_STATUS.get(exc.status or 0)
    if cls is None or not isinstance(body.get("error"), str):
        return exc
    return cls(body["error"], detail=body.get("detail"))
