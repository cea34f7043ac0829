import falcon

from orchestrator.runtime import Runtime
from orchestrator.service.health import check_readiness


class Liveness:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Readiness:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ready", **check_readiness(self._runtime.db).as_dict()}


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/healthz", Liveness())
    app.add_route("/readyz", Readiness(runtime))
