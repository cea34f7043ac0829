"""The Falcon application factory.

``create_app(settings, runtime)`` takes built collaborators (tests pass their own);
``get_app()`` reads the environment and is what gunicorn serves (see wsgi.py).
"""

from __future__ import annotations

import falcon

from orchestrator.api import errors, frontends
from orchestrator.api.middleware import BodyLimit, RequestContext, SecurityHeaders
from orchestrator.api.resources import admin, feedback, health, hints, metrics, openapi, problems
from orchestrator.runtime import Runtime, build_runtime
from orchestrator.settings import Settings, load_settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> falcon.App:
    runtime = runtime or build_runtime(settings)
    middleware: list = [RequestContext(), SecurityHeaders(), BodyLimit(settings.max_body_bytes)]
    if settings.cors_origins:
        middleware.append(
            falcon.CORSMiddleware(
                allow_origins=list(settings.cors_origins), expose_headers=["X-Request-ID"]
            )
        )
    if settings.student_app_dir or settings.instructor_app_dir:
        middleware.append(frontends.FrontendGuard(runtime))
    app = falcon.App(middleware=middleware)
    # Paths keep their trailing slash (CONTRACT.md); "/x" and "/x/" are different routes.
    app.req_options.strip_url_path_trailing_slash = False
    # Query parameters are passed upstream as they came, blank values included.
    app.req_options.keep_blank_qs_values = True
    errors.install(app)
    for area in (health, openapi, metrics, problems, hints, feedback, admin):
        area.register(app, runtime)
    frontends.register(app, runtime)
    return app


def get_app() -> falcon.App:
    """The app for the current environment, with logging set up (gunicorn's entry)."""
    from orchestrator.logs import configure_logging

    settings = load_settings()
    configure_logging(level=settings.log_level, log_dir=settings.log_dir, role="api")
    return create_app(settings)
