"""Structured logging: one JSON object per line, to stdout and to a file in ``logs/``.

Several processes (gunicorn workers, the dispatcher, the CLI) log at once, so each
process writes its own file, ``<log_dir>/orchestrator-<role>-<pid>.log``, rotated
by size; no two processes ever rotate the same file.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

# Attributes every LogRecord has; anything else passed via ``extra=`` is a field.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
) | {"message", "asctime", "taskName"}

_configured_marker = "_orchestrator_handler"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # A record goes to two handlers, and the rotating one formats it twice more to
        # measure it: encode it once (the access log is on every request's path).
        cached = record.__dict__.get("_json_line")
        if cached is not None:
            return cached
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        record._json_line = line
        return line


def configure_logging(
    *, level: str = "INFO", log_dir: Path | None = None, role: str = "api", stream=None
) -> Path | None:
    """Send the ``orchestrator`` loggers to stdout (JSON lines) and a per-process file.

    Returns the log file's path (None when ``log_dir`` is None). Calling it again
    replaces the handlers it installed before.
    """
    root = logging.getLogger("orchestrator")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        if getattr(handler, _configured_marker, False):
            root.removeHandler(handler)
            handler.close()

    formatter = JsonFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"orchestrator-{role}-{os.getpid()}.log"
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _configured_marker, True)
        root.addHandler(handler)
    return path


def quiet_logging() -> None:
    """Silence the ``orchestrator`` loggers (the CLI reports errors itself)."""
    root = logging.getLogger("orchestrator")
    for handler in list(root.handlers):
        if getattr(handler, _configured_marker, False):
            root.removeHandler(handler)
            handler.close()
    null = logging.NullHandler()
    setattr(null, _configured_marker, True)
    root.addHandler(null)
    root.propagate = False
