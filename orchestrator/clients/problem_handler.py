"""Client of the Problem Handler: catalog, program execution, execution results."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from orchestrator.clients.http import BaseClient, RetryPolicy, UpstreamResponse
from orchestrator.errors import UpstreamError
from orchestrator.settings import Settings, UpstreamUrls


class ProblemHandlerClient(BaseClient):
    upstream = "problem_handler"

    def __init__(self, urls: UpstreamUrls, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._urls = urls

    @property
    def display_name(self) -> str:
        return "problem service"

    def catalog(self, query_string: str = "") -> Any:
        """``GET <problems>?<query_string>``: the caller's query, passed on as it came.

        Returns the list of ``{problem_id, name}`` without ``problem_id``, one problem
        object with it.

        Raises:
            UpstreamError: any failure, including a 4xx (``kind="bad_status"``, with
                ``status`` and the upstream's JSON body) and an answer of the wrong shape.
        """
        response = self.get_json(self._urls.problems, params=query_string or None)
        expected = dict if _names_a_problem(query_string) else list
        if not isinstance(response.body, expected):
            raise self._shape_error(response, f"a JSON {expected.__name__}")
        return response.body

    def start_execution(self, problem_id: str, student_program: str) -> int:
        """``POST <execute>``; never retried (the program would run twice).

        Raises:
            UpstreamError: any failure, or an answer without an integer ``execution_id``.
        """
        response = self.post_json(
            self._urls.execute, {"problem_id": problem_id, "student_program": student_program}
        )
        execution_id = response.body.get("execution_id") if isinstance(response.body, dict) else None
        if not isinstance(execution_id, int) or isinstance(execution_id, bool):
            raise self._shape_error(response, "an integer execution_id")
        return execution_id

    def execution_result(self, execution_id: int) -> dict[str, Any]:
        """``GET <result>?execution_id=N``, retried on transient failures.

        Raises:
            UpstreamError: any failure (404 for an unknown id arrives as bad_status),
                or an answer that is not an object with a boolean ``job_finished``.
        """
        # The query string is built here: requests' parameter encoding was a measurable
        # part of this poll (every second per running program).
        url = self._urls.execution_result
        response = self.get_json(f"{url}{'&' if '?' in url else '?'}execution_id={int(execution_id)}")
        body = response.body
        if not isinstance(body, dict) or not isinstance(body.get("job_finished"), bool):
            raise self._shape_error(response, "an object with a boolean job_finished")
        return body

    def _shape_error(self, response: UpstreamResponse, expected: str) -> UpstreamError:
        return UpstreamError(
            f"The {self.display_name} sent an answer of an unexpected shape",
            upstream=self.upstream, kind="bad_response", status=response.status,
            detail={"upstream": self.upstream, "reason": f"expected {expected}"},
        )


def _names_a_problem(query_string: str) -> bool:
    return any(value for value in parse_qs(query_string, keep_blank_values=True).get("problem_id", []))


def build(settings: Settings) -> ProblemHandlerClient:
    return ProblemHandlerClient(
        settings.upstream,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        retry=RetryPolicy(retries=settings.upstream_retries),
    )
