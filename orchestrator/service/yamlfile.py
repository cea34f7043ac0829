"""Reading an operator-edited YAML file, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError


def read_yaml(path: Path) -> Any:
    """The file's data (``safe_load``; None for an empty file).

    Raises:
        ConfigError: unreadable or not YAML; the message starts with the path.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
