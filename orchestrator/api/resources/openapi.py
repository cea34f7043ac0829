"""``GET /openapi.json``: the API's OpenAPI 3.1 document (kept in ``api/openapi.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import falcon
import yaml

from orchestrator import __version__
from orchestrator.runtime import Runtime

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    document["info"]["version"] = __version__
    return document


class OpenApi:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = openapi_document()


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/openapi.json", OpenApi())
