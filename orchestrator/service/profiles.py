"""Quota profiles: how many hints of each type a student may ask for per problem.

A profile directory holds YAML files, read in name order (subdirectories are not
read, so ``examples/`` can sit beside them). A file may give

```yaml
default:                 # limits for every problem; at most one file may say it
  overall: null          # null = unlimited
  plan: 1
  debug: 3
  optimize: 1
problems:                # per-problem overrides, by glob pattern (fnmatch)
  "exam_*":
    overall: 2           # keys left out keep the default's value
  "recursion_??":
    debug: 5
```

The first pattern that matches a problem id wins (files in name order, patterns in
file order). The old service's single section is accepted too:

```yaml
hint_quota:
  max_hints_per_problem: "None"          # the string "None" means unlimited
  max_planning_hints_per_problem: 1
  max_debugging_hints_per_problem: 3
  max_optimization_hints_per_problem: 1
```

Everything is validated when loaded; an error names the file, the key and the value.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.service.yamlfile import read_yaml
from orchestrator.store.models import HINT_TYPES

LIMIT_KEYS = ("overall", *HINT_TYPES)
LEGACY_KEYS = {
    "max_hints_per_problem": "overall",
    "max_planning_hints_per_problem": "plan",
    "max_debugging_hints_per_problem": "debug",
    "max_optimization_hints_per_problem": "optimize",
}


@dataclass(frozen=True)
class Limits:
    """Per-problem limits; ``None`` means unlimited."""

    overall: int | None = None
    plan: int | None = None
    debug: int | None = None
    optimize: int | None = None

    def for_type(self, hint_type: str) -> int | None:
        return getattr(self, hint_type)

    def as_dict(self) -> dict[str, int | None]:
        return {key: getattr(self, key) for key in LIMIT_KEYS}


BUILT_IN_DEFAULT = Limits(overall=None, plan=1, debug=3, optimize=1)


@dataclass(frozen=True)
class Override:
    pattern: str
    limits: Limits
    source: str


@dataclass(frozen=True)
class QuotaProfiles:
    """The default limits and the ordered per-problem overrides."""

    default: Limits = BUILT_IN_DEFAULT
    overrides: tuple[Override, ...] = ()
    default_source: str = "built-in default"
    files: tuple[str, ...] = field(default=())

    def limits_for(self, problem_id: str) -> Limits:
        return self.match(problem_id)[0]

    def match(self, problem_id: str) -> tuple[Limits, str]:
        """The limits for ``problem_id`` and where they come from."""
        for override in self.overrides:
            if fnmatch.fnmatchcase(problem_id, override.pattern):
                return override.limits, f"{override.source}: {override.pattern}"
        return self.default, self.default_source


def load_profiles(directory: Path | None) -> QuotaProfiles:
    """Load and validate every ``*.yaml``/``*.yml`` file directly in ``directory``.

    ``None`` means ``./quota_profiles`` when it exists, else the built-in default
    (plan 1, debug 3, optimize 1, overall unlimited).

    Raises:
        ConfigError: the directory is missing, or a file is invalid (names file, key, value).
    """
    if directory is None:
        directory = Path("quota_profiles")
        if not directory.is_dir():
            return QuotaProfiles()
    elif not directory.is_dir():
        raise ConfigError(f"ORCHESTRATOR_QUOTA_PROFILES: {directory} is not a directory")

    paths = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    profiles = QuotaProfiles(files=tuple(str(p) for p in paths))
    default_seen: str | None = None
    overrides: list[Override] = []
    for path in paths:
        default, file_overrides = parse_profile_file(path)
        if default is not None:
            if default_seen is not None:
                raise ConfigError(f"{path}: default: already given in {default_seen}; give it in one file only")
            default_seen = str(path)
            profiles = replace(profiles, default=default, default_source=str(path))
        overrides.extend(file_overrides)
    # Overrides inherit from the default, whichever file gave it.
    merged = tuple(
        Override(o.pattern, _merge(profiles.default, o.limits), o.source) for o in overrides
    )
    return replace(profiles, overrides=merged)


# Overrides are parsed into "partial" Limits where a missing key is this marker.
_UNSET: Any = object()


def parse_profile_file(path: Path) -> tuple[Limits | None, list[Override]]:
    """The default (if the file gives one) and overrides of one file, validated."""
    data = read_yaml(path)
    if data is None:
        return None, []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'default' and/or 'problems' (or 'hint_quota')")

    unknown = set(data) - {"default", "problems", "hint_quota"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected default, problems or hint_quota)")
    if "hint_quota" in data and "default" in data:
        raise ConfigError(f"{path}: give either 'hint_quota' (old format) or 'default', not both")

    default = None
    if "hint_quota" in data:
        default = _legacy_limits(path, data["hint_quota"])
    elif "default" in data:
        default = _limits(path, "default", data["default"], partial=False)

    overrides = []
    problems = data.get("problems")
    if problems is not None:
        if not isinstance(problems, dict):
            raise ConfigError(f"{path}: problems: must map problem id patterns to limits")
        for pattern, limits in problems.items():
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigError(f"{path}: problems: pattern {pattern!r} must be a non-empty string")
            overrides.append(
                Override(pattern, _limits(path, f"problems[{pattern!r}]", limits, partial=True), str(path))
            )
    return default, overrides


def _limits(path: Path, where: str, data: Any, *, partial: bool) -> Limits:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where}: must be a mapping of {', '.join(LIMIT_KEYS)}")
    unknown = set(data) - set(LIMIT_KEYS)
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise ConfigError(f"{path}: {where}.{key}: unknown key (expected {', '.join(LIMIT_KEYS)})")
    values = {}
    for key in LIMIT_KEYS:
        if key not in data:
            values[key] = _UNSET if partial else None
            continue
        values[key] = _limit_value(path, f"{where}.{key}", data[key], legacy=False)
    return Limits(**values)


def _legacy_limits(path: Path, data: Any) -> Limits:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: hint_quota: must be a mapping of {', '.join(LEGACY_KEYS)}")
    unknown = set(data) - set(LEGACY_KEYS)
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise ConfigError(f"{path}: hint_quota.{key}: unknown key (expected {', '.join(LEGACY_KEYS)})")
    values = {new: _limit_value(path, f"hint_quota.{old}", data[old], legacy=True)
              for old, new in LEGACY_KEYS.items() if old in data}
    return Limits(**values)


def _limit_value(path: Path, where: str, value: Any, *, legacy: bool) -> int | None:
    if value is None or (legacy and isinstance(value, str) and value.strip() == "None"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        allowed = 'a non-negative integer, null or "None"' if legacy else "a non-negative integer or null"
        raise ConfigError(f"{path}: {where}: must be {allowed}, got {value!r}")
    return value


def _merge(default: Limits, partial: Limits) -> Limits:
    return Limits(**{
        key: getattr(default, key) if getattr(partial, key) is _UNSET else getattr(partial, key)
        for key in LIMIT_KEYS
    })
