import falcon

from orchestrator.api import params
from orchestrator.api.auth import require_admin
from orchestrator.api.media import json_object
from orchestrator.runtime import Runtime
from orchestrator.service import hints, quotas


class QuotaGrant:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_admin(req, self._rt.settings)
        body = json_object(req)
        student_id = params.identifier(body, "student_id")
        problem_id = params.identifier(body, "problem_id")
        count = body.get("count")
        with self._rt.db.scope() as session:
            quotas.grant(session, student_id=student_id, problem_id=problem_id,
                         hint_type=params.string(body, "hint_type", max_length=32),
                         count=count if isinstance(count, int) else -1,
                         reason=params.string(body, "reason", allow_empty=True, optional=True, max_length=2000),
                         granted_by="operator")
        resp.media = hints.quota_left(self._rt.db, self._rt.quota_profiles, student_id=student_id,
                                      problem_id=problem_id)


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/admin/quota_grant/", QuotaGrant(runtime))
