import falcon

from orchestrator import metrics
from orchestrator.api.auth import require_admin
from orchestrator.runtime import Runtime
from orchestrator.service.monitoring import monitoring_state


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._rt.settings.metrics_require_token:
            require_admin(req, self._rt.settings)
        collector = metrics.DatabaseCollector(lambda: monitoring_state(self._rt.db, self._rt.instructor_config))
        resp.data, resp.content_type = metrics.render(collector)


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/metrics", Metrics(runtime))
