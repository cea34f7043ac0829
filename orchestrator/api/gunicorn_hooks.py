"""gunicorn server hooks (``--config python:orchestrator.api.gunicorn_hooks``)."""

from orchestrator.metrics import mark_process_dead


def child_exit(server, worker) -> None:
    # Keep the multiprocess metrics directory in step with the live workers.
    mark_process_dead(worker.pid)
