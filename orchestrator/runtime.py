"""The one wiring point: settings in, database and clients out, for the API and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.clients import hint_backend, problem_handler
from orchestrator.clients.hint_backend import HintBackendClient
from orchestrator.clients.mailer import Mailer
from orchestrator.clients.problem_handler import ProblemHandlerClient
from orchestrator.service.instructor_config import InstructorConfig, load_instructor_config
from orchestrator.service.notifications import Notifier
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
    instructor_config: InstructorConfig
    mailer: Mailer | None
    notifier: Notifier

    def close(self) -> None:
        self.problem_handler.close()
        self.hint_backend.close()
        self.db.dispose()


def build_runtime(settings: Settings, *, connections: int | None = None) -> Runtime:
    """Build the collaborators every operation needs. Opens no connection yet.

    Raises:
        ConfigError: a quota profile or the instructor configuration is invalid.
    """
    instructor_config = load_instructor_config(settings.instructor_config)
    mailer = Mailer(settings.smtp, timeout=settings.upstream_read_timeout) if settings.smtp else None
    return Runtime(
        settings=settings,
        # ``connections``: at least this many at once (a dispatcher's delivery threads).
        db=Database(make_engine(settings.database_url, pool_size=max(settings.db_pool_size, connections or 0),
                                max_overflow=settings.db_max_overflow)),
        problem_handler=problem_handler.build(settings),
        hint_backend=hint_backend.build(settings),
        catalog=CatalogCache(settings.catalog_cache_seconds),
        quota_profiles=load_profiles(settings.quota_profiles_dir),
        instructor_config=instructor_config,
        mailer=mailer,
        notifier=Notifier(instructor_config, enabled=mailer is not None),
    )
