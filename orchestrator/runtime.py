"""The one wiring point: settings in, database and clients out, for the API and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.settings import Settings
from orchestrator.store.db import Database, make_engine


@dataclass
class Runtime:
    settings: Settings
    db: Database

    def close(self) -> None:
        self.db.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """Build the collaborators every operation needs. Opens no connection yet."""
    return Runtime(settings=settings, db=Database(make_engine(settings.database_url)))
