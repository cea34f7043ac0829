import falcon

from orchestrator.api import params
from orchestrator.api.auth import require_instructor
from orchestrator.api.media import json_object
from orchestrator.errors import ValidationError
from orchestrator.runtime import Runtime
from orchestrator.service import feedback

EMAIL_MAX = 320


def _email(body: dict) -> str | None:
    value = params.string(body, "student_email", allow_empty=True, optional=True, max_length=EMAIL_MAX)
    if value is None or not value.strip():
        return None
    value = value.strip()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or any(c.isspace() or c in "<>,;\"" for c in value):
        raise ValidationError("The field 'student_email' is not an e-mail address", detail={"field": "student_email"})
    return value


class _Resource:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def _acting(self, req: falcon.Request, claimed: str | None) -> str | None:
        return require_instructor(req, self._rt.settings, self._rt.db, claimed)

    def _describe(self, instructor_request_id: int, *, full: bool) -> dict:
        return feedback.describe(self._rt.db, self._rt.instructor_config, problem_client=self._rt.problem_handler,
                                 catalog=self._rt.catalog, instructor_request_id=instructor_request_id, full=full)


class AddRequest(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        instructor_request_id = feedback.escalate(
            self._rt.db, self._rt.notifier,
            hint_request_id=params.integer_id(body, "request_id"),
            student_email=_email(body),
            student_notes=params.string(body, "student_notes", allow_empty=True, optional=True),
        )
        resp.media = {"instructor_request_id": instructor_request_id}


class QueryFeedback(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = feedback.query_feedback(
            self._rt.db, instructor_request_id=params.query_id(req, "instructor_request_id"))


class QueryAllFeedback(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = feedback.list_answered(
            self._rt.db, student_id=params.query_string(req, "student_id"),
            problem_id=params.query_string(req, "problem_id"))


class FetchRequest(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        instructor_id = self._acting(req, params.query_string(req, "instructor_id"))
        resp.media = feedback.next_work_item(
            self._rt.db, self._rt.instructor_config, problem_client=self._rt.problem_handler,
            catalog=self._rt.catalog, instructor_id=instructor_id)


class SaveFeedback(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        instructor_request_id = params.integer_id(body, "instructor_request_id")
        claimed = params.loose_id(body, "instructor_id")
        text = params.string(body, "feedback")
        instructor_id = self._acting(req, claimed)
        feedback.save_answer(self._rt.db, self._rt.instructor_config, self._rt.notifier,
                             instructor_request_id=instructor_request_id, instructor_id=instructor_id,
                             feedback=text)
        resp.media = {"instructor_request_id": instructor_request_id, "state": "answered"}


class SaveFeedbackRating(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        instructor_request_id = params.integer_id(body, "instructor_request_id")
        feedback.rate_feedback(self._rt.db, instructor_request_id=instructor_request_id,
                               is_feedback_helpful=params.boolean(body, "is_feedback_helpful"))
        resp.media = {"instructor_request_id": instructor_request_id}


class Queue(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._acting(req, None)
        resp.media = feedback.queue(self._rt.db, self._rt.instructor_config)


class ShowRequest(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._acting(req, None)
        resp.media = self._describe(params.query_id(req, "instructor_request_id"), full=True)


class ReleaseRequest(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        instructor_request_id = params.integer_id(body, "instructor_request_id")
        claimed = params.loose_id(body, "instructor_id")
        instructor_id = self._acting(req, claimed)
        feedback.release(self._rt.db, self._rt.instructor_config, instructor_request_id=instructor_request_id,
                         instructor_id=instructor_id)
        resp.media = {"instructor_request_id": instructor_request_id, "state": "waiting"}


def register(app: falcon.App, runtime: Runtime) -> None:
    for path, resource in [
        ("add_request", AddRequest), ("query_feedback", QueryFeedback), ("query_all_feedback", QueryAllFeedback),
        ("fetch_request", FetchRequest), ("save_feedback", SaveFeedback),
        ("save_feedback_rating", SaveFeedbackRating), ("queue", Queue), ("show_request", ShowRequest),
        ("release_request", ReleaseRequest),
    ]:
        app.add_route(f"/instructor_feedback/{path}/", resource(runtime))
