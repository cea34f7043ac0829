"""Client of the AI Hint backend: hand over a hint request and its reflection.

Both calls are POSTs and are never retried here; the outbox dispatcher owns
retries, ordering and deadlines.
"""

from __future__ import annotations

from typing import Any

from orchestrator.clients.http import BaseClient, RetryPolicy
from orchestrator.settings import Settings, UpstreamUrls


class HintBackendClient(BaseClient):
    upstream = "hint_backend"

    def __init__(self, urls: UpstreamUrls, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._urls = urls

    @property
    def display_name(self) -> str:
        return "hint service"

    def add_request(self, request_id: int, data: dict[str, Any]) -> None:
        """Deliver a new hint request (``data``: problem_id, student_program, hint_type,
        student_notebook).

        Raises:
            UpstreamError: the backend could not be reached or did not answer 2xx JSON.
        """
        self.post_json(
            self._urls.hint_add_request, {"request_id": request_id, "type": "add_request", "data": data},
            expect_json=False,
        )

    def add_reflection(self, request_id: int, reflection_question: str, reflection_answer: str) -> None:
        """Deliver the student's reflection on a request already delivered.

        Raises:
            UpstreamError: the backend could not be reached or did not answer 2xx JSON.
        """
        self.post_json(
            self._urls.hint_add_reflection,
            {
                "request_id": request_id,
                "type": "add_reflection",
                "data": {"reflection_question": reflection_question, "reflection_answer": reflection_answer},
            },
            expect_json=False,
        )


def build(settings: Settings) -> HintBackendClient:
    return HintBackendClient(
        settings.upstream,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        retry=RetryPolicy.none(),
    )
