"""The one wiring point: settings in, database and clients out, for the API and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.clients import hint_backend, problem_handler
from orchestrator.clients.hint_backend import HintBackendClient
from orchestrator.clients.problem_handler import ProblemHandlerClient
from orchestrator.service.problems import CatalogCache
from orchestrator.service.profiles import QuotaProfiles, load_profiles
from orchestrator.settings import Settings
from orchestrator.store.db import Database, make_engine


@dataclass
class Runtime:
    settings: Settings
    db: Database
    problem_handler: ProblemHandlerClient
    hint_backend: HintBackendClient
    catalog: CatalogCache
    quota_profiles: QuotaProfiles

    def close(self) -> None:
        self.problem_handler.close()
        self.hint_backend.close()
        self.db.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """Build the collaborators every operation needs. Opens no connection yet.

    Raises:
        ConfigError: a quota profile is invalid.
    """
    return Runtime(
        settings=settings,
        db=Database(make_engine(settings.database_url)),
        problem_handler=problem_handler.build(settings),
        hint_backend=hint_backend.build(settings),
        catalog=CatalogCache(settings.catalog_cache_seconds),
        quota_profiles=load_profiles(settings.quota_profiles_dir),
    )
