import falcon

from orchestrator.api import params
from orchestrator.api.auth import require_admin
from orchestrator.api.media import json_object
from orchestrator.runtime import Runtime
from orchestrator.errors import ValidationError
from orchestrator.service import hints, reports


class QuotaGrant:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_admin(req, self._rt.settings)
        body = json_object(req)
        student_id = params.identifier(body, "student_id")
        problem_id = params.identifier(body, "problem_id")
        count = body.get("count")
        resp.media = hints.grant_quota(
            self._rt.db, self._rt.quota_profiles, student_id=student_id, problem_id=problem_id,
            hint_type=params.string(body, "hint_type", max_length=32),
            count=count if isinstance(count, int) else -1,
            reason=params.string(body, "reason", allow_empty=True, optional=True, max_length=2000),
            granted_by="operator",
        )


class Report:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_admin(req, self._rt.settings)
        within = req.get_param("within") or "30"
        if not within.isdigit() or not 1 <= int(within) <= 10080:
            raise ValidationError("'within' must be a number of minutes from 1 to 10080")
        problem = req.get_param("problem_id")
        resp.media = reports.build_report(
            self._rt.db, since=reports.parse_since(req.get_param("since")),
            problem_id=problem if problem else None, followed_within_minutes=int(within),
        )


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/admin/quota_grant/", QuotaGrant(runtime))
    app.add_route("/admin/report", Report(runtime))
