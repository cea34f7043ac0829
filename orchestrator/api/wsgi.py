"""gunicorn entry point: ``gunicorn orchestrator.api.wsgi:app``."""

from orchestrator.api.app import get_app

app = get_app()
