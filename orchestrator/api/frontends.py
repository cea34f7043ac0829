"""Serving the built web frontends: the student app at /student/, the instructor app at
/instructor/ (behind the instructor credential, so the unchanged app's API calls on the
same origin carry the browser's Basic credentials).

Files come from Falcon's static routes (no path escapes the directory); a path that is
not a file gets index.html, so client-side routes deep-link. Hashed build assets
(``assets/``) are cached for a year; index.html is revalidated on every load.
"""

from __future__ import annotations

import falcon

from orchestrator.api.auth import authenticated_instructor
from orchestrator.runtime import Runtime

STUDENT_PREFIX = "/student/"
INSTRUCTOR_PREFIX = "/instructor/"
APP_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
           "connect-src 'self'; frame-ancestors 'none'")


def is_frontend_path(path: str) -> bool:
    return path.startswith((STUDENT_PREFIX, INSTRUCTOR_PREFIX))


class FrontendGuard:
    """Asks for the instructor credential before any /instructor/ file is served,
    and gives app files their caching and content-security headers."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path.startswith(INSTRUCTOR_PREFIX) and self._rt.settings.instructor_app_dir is not None:
            authenticated_instructor(req, self._rt.settings, self._rt.db)

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        if not is_frontend_path(req.path) or resp.status_code >= 400:
            return
        resp.set_header("Content-Security-Policy", APP_CSP)
        if "/assets/" in req.path:
            resp.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            resp.set_header("Cache-Control", "no-cache")


def register(app: falcon.App, runtime: Runtime) -> None:
    settings = runtime.settings
    for prefix, directory in ((STUDENT_PREFIX, settings.student_app_dir),
                              (INSTRUCTOR_PREFIX, settings.instructor_app_dir)):
        if directory is not None:
            app.add_static_route(prefix.rstrip("/"), str(directory), fallback_filename="index.html")
