import falcon

from orchestrator.api import params
from orchestrator.api.auth import require_service
from orchestrator.api.media import json_object
from orchestrator.errors import ValidationError
from orchestrator.runtime import Runtime
from orchestrator.service import hints


class _Resource:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime


class AddRequest(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        notebook = body.get("student_notebook")
        if notebook is not None and not isinstance(notebook, dict):
            raise ValidationError("The field 'student_notebook' must be a JSON object or null",
                                  detail={"field": "student_notebook"})
        request_id = hints.request_hint(
            self._rt.db, self._rt.quota_profiles,
            student_id=params.identifier(body, "student_id"),
            problem_id=params.identifier(body, "problem_id"),
            hint_type=params.string(body, "hint_type", max_length=32),
            student_program=params.string(body, "student_program", allow_empty=True),
            student_notebook=notebook,
        )
        resp.media = {"request_id": request_id}


class AddReflection(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        request_id = hints.add_reflection(
            self._rt.db,
            request_id=params.integer_id(body, "request_id"),
            question=params.string(body, "reflection_question", allow_empty=True),
            answer=params.string(body, "reflection_answer", allow_empty=True),
        )
        resp.media = {"request_id": request_id}


class QueryHint(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = hints.poll_hint(self._rt.db, request_id=params.query_id(req, "request_id"))


class QueryAllHint(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = hints.list_finished(
            self._rt.db,
            student_id=params.query_string(req, "student_id"),
            problem_id=params.query_string(req, "problem_id"),
        )


class Save(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_service(req, self._rt.settings)
        body = json_object(req)
        other = body.get("other_hint_data")
        if other is not None and not isinstance(other, dict):
            raise ValidationError("The field 'other_hint_data' must be a JSON object or null",
                                  detail={"field": "other_hint_data"})
        hints.save_result(
            self._rt.db,
            request_id=params.integer_id(body, "request_id"),
            hint=params.string(body, "hint", allow_empty=True, optional=True),
            job_finished_successfully=params.boolean(body, "job_finished_successfully"),
            generation_error_message=params.string(body, "generation_error_message", allow_empty=True,
                                                   optional=True),
            other_hint_data=other,
        )
        resp.status = falcon.HTTP_204


class SaveRating(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        hints.rate_hint(
            self._rt.db,
            request_id=params.integer_id(body, "request_id"),
            is_hint_helpful=params.boolean(body, "is_hint_helpful"),
        )
        resp.status = falcon.HTTP_204


class QuotaLeft(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = hints.quota_left(
            self._rt.db, self._rt.quota_profiles,
            student_id=params.query_string(req, "student_id"),
            problem_id=params.query_string(req, "problem_id"),
        )


class HasEverRequested(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        student_id = params.query_string(req, "student_id")
        resp.media = {"student_id": student_id,
                      "ever_requested": hints.has_ever_requested(self._rt.db, student_id=student_id)}


class CancelRequest(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        hints.cancel(self._rt.db, request_id=params.integer_id(body, "request_id"))
        resp.status = falcon.HTTP_204


def register(app: falcon.App, runtime: Runtime) -> None:
    for path, resource in [
        ("add_request", AddRequest), ("add_reflection", AddReflection), ("query_hint", QueryHint),
        ("query_all_hint", QueryAllHint), ("save", Save), ("save_hint_rating", SaveRating),
        ("quota_left", QuotaLeft), ("has_ever_requested", HasEverRequested),
        ("cancel_request", CancelRequest),
    ]:
        app.add_route(f"/ai_hint/{path}/", resource(runtime))
