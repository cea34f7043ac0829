"""What the root callback puts on ``ctx.obj``: settings and runtime, built on first use.

Lazy so that ``--help`` works even when the environment holds a bad value.
"""

from __future__ import annotations

from functools import cached_property

from orchestrator.errors import ConfigError
from orchestrator.runtime import Runtime, build_runtime
from orchestrator.settings import Settings, load_settings
from orchestrator.cli.output import fail_with


class State:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._environ = environ

    @cached_property
    def settings(self) -> Settings:
        try:
            return load_settings(self._environ)
        except ConfigError as exc:
            fail_with(exc)

    @cached_property
    def runtime(self) -> Runtime:
        return self.build_runtime()

    def build_runtime(self, *, connections: int | None = None) -> Runtime:
        """A runtime for this command; ``connections`` sizes its pool for threads."""
        try:
            runtime = build_runtime(self.settings, connections=connections)
        except ConfigError as exc:
            fail_with(exc)
        self.__dict__["runtime"] = runtime  # what ``runtime`` returns from now on
        return runtime
