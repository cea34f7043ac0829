"""The instructor configuration (YAML): who the instructors are, the assignment timeout,
and the e-mail templates.

The old service's file keeps working as it is:

```yaml
instructors:
  - {id: 1, name: Ada Lovelace, email: ada@uni.example}
feedback_timeout: 30            # minutes an assignment lasts before it returns to the queue
instructor_notification_email:
  subject: "{n_unprocessed_requests} hint escalations are waiting"
  body: "Waiting: {n_unprocessed_requests}. Being answered: {n_inprocessing_requests}."
student_notification_email:
  subject: "An instructor answered your question"
  body: "Your question on {problem_id} has an answer."
```

Ids may be integers (the old format) or strings; they are compared as strings.
Templates are Python ``str.format`` templates; a placeholder other than the ones
listed for the template is refused when the file is loaded, as is anything else
invalid, with a message naming the file and the key.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.service.yamlfile import read_yaml

DEFAULT_PATH = Path("instructors.yaml")
DEFAULT_TIMEOUT_MINUTES = 30

INSTRUCTOR_PLACEHOLDERS = frozenset({"n_unprocessed_requests", "n_inprocessing_requests"})
REMINDER_PLACEHOLDERS = frozenset({"n_overdue_requests", "n_unprocessed_requests", "oldest_waiting_minutes"})
STUDENT_PLACEHOLDERS = frozenset({"problem_id"})


@dataclass(frozen=True)
class Template:
    subject: str
    body: str

    def render(self, **values: Any) -> tuple[str, str]:
        return self.subject.format(**values), self.body.format(**values)


DEFAULT_INSTRUCTOR_TEMPLATE = Template(
    subject="Hint escalations: {n_unprocessed_requests} waiting",
    body=(
        "Students have asked for an instructor's help.\n\n"
        "Waiting for an instructor: {n_unprocessed_requests}\n"
        "Being answered now: {n_inprocessing_requests}\n\n"
        "Answer them in the instructor app or with `orchestrator feedback next`.\n"
    ),
)
DEFAULT_STUDENT_TEMPLATE = Template(
    subject="An instructor answered your question",
    body="An instructor has answered your question on problem {problem_id}. Open the course app to read it.\n",
)


DEFAULT_REMINDER_TEMPLATE = Template(
    subject="Reminder: {n_overdue_requests} escalations have waited too long",
    body=(
        "{n_overdue_requests} escalated requests have passed the reminder threshold; the oldest has waited "
        "{oldest_waiting_minutes} minutes. {n_unprocessed_requests} are waiting in all.\n"
    ),
)


@dataclass(frozen=True)
class Instructor:
    id: str
    name: str
    email: str


@dataclass(frozen=True)
class InstructorConfig:
    instructors: tuple[Instructor, ...] = ()
    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    instructor_email: Template = DEFAULT_INSTRUCTOR_TEMPLATE
    student_email: Template = DEFAULT_STUDENT_TEMPLATE
    reminder_after_minutes: int | None = None
    reminder_email: Template = DEFAULT_REMINDER_TEMPLATE
    source: str = "built-in default (no instructors)"
    _by_id: dict[str, Instructor] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({i.id: i for i in self.instructors})

    @property
    def timeout_seconds(self) -> int:
        return self.timeout_minutes * 60

    def get(self, instructor_id: str) -> Instructor | None:
        return self._by_id.get(str(instructor_id))

    @property
    def emails(self) -> list[str]:
        return [i.email for i in self.instructors]


def load_instructor_config(path: Path | None) -> InstructorConfig:
    """Load and validate the instructor YAML.

    ``None`` means ``./instructors.yaml`` when it exists, else no instructors, a
    30-minute timeout and the built-in templates.

    Raises:
        ConfigError: the file is missing (when named) or invalid; the message names file and key.
    """
    if path is None:
        if not DEFAULT_PATH.is_file():
            return InstructorConfig()
        path = DEFAULT_PATH
    elif not path.is_file():
        raise ConfigError(f"ORCHESTRATOR_INSTRUCTOR_CONFIG: no such file: {path}")
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'instructors', 'feedback_timeout' and templates")
    known = {"instructors", "feedback_timeout", "instructor_notification_email", "student_notification_email",
             "reminder_after", "reminder_email"}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (expected {', '.join(sorted(known))})")

    return InstructorConfig(
        instructors=_instructors(path, data.get("instructors", [])),
        timeout_minutes=_timeout(path, data.get("feedback_timeout", DEFAULT_TIMEOUT_MINUTES)),
        instructor_email=_template(path, "instructor_notification_email", data.get("instructor_notification_email"),
                                   INSTRUCTOR_PLACEHOLDERS, DEFAULT_INSTRUCTOR_TEMPLATE),
        student_email=_template(path, "student_notification_email", data.get("student_notification_email"),
                                STUDENT_PLACEHOLDERS, DEFAULT_STUDENT_TEMPLATE),
        reminder_after_minutes=None if data.get("reminder_after") is None
        else _positive_minutes(path, "reminder_after", data["reminder_after"]),
        reminder_email=_template(path, "reminder_email", data.get("reminder_email"), REMINDER_PLACEHOLDERS,
                                 DEFAULT_REMINDER_TEMPLATE),
        source=str(path),
    )


def _instructors(path: Path, items: Any) -> tuple[Instructor, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"{path}: instructors: must be a list of {{id, name, email}}")
    result: list[Instructor] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"instructors[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: {where}: must be a mapping with id, name and email")
        unknown = sorted(map(str, set(item) - {"id", "name", "email"}))
        if unknown:
            raise ConfigError(f"{path}: {where}.{unknown[0]}: unknown key (expected id, name, email)")
        raw_id = item.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)) or not str(raw_id).strip():
            raise ConfigError(f"{path}: {where}.id: must be an integer or a non-empty string, got {raw_id!r}")
        instructor_id = str(raw_id).strip()
        if len(instructor_id) > 255 or any(c in instructor_id for c in ":\x00\r\n"):
            raise ConfigError(f"{path}: {where}.id: {raw_id!r} is too long or contains ':' or control characters")
        if instructor_id in seen:
            raise ConfigError(f"{path}: {where}.id: {raw_id!r} appears twice")
        seen.add(instructor_id)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{path}: {where}.name: must be a non-empty string, got {name!r}")
        email = item.get("email")
        if not _looks_like_email(email):
            raise ConfigError(f"{path}: {where}.email: not an e-mail address: {email!r}")
        result.append(Instructor(instructor_id, name.strip(), email.strip()))
    return tuple(result)


def _timeout(path: Path, value: Any) -> int:
    return _positive_minutes(path, "feedback_timeout", value)


def _positive_minutes(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{path}: {key}: must be a positive whole number of minutes, got {value!r}")
    return value


def _template(path: Path, key: str, value: Any, allowed: frozenset[str], default: Template) -> Template:
    if value is None:
        return default
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key}: must be a mapping with subject and body")
    unknown = sorted(map(str, set(value) - {"subject", "body"}))
    if unknown:
        raise ConfigError(f"{path}: {key}.{unknown[0]}: unknown key (expected subject, body)")
    parts = {}
    for part in ("subject", "body"):
        text = value.get(part)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{path}: {key}.{part}: must be a non-empty string")
        if part == "subject" and ("\n" in text.strip() or "\r" in text):
            raise ConfigError(f"{path}: {key}.subject: must be a single line")
        _check_placeholders(path, f"{key}.{part}", text, allowed)
        parts[part] = text.strip() if part == "subject" else text
    return Template(**parts)


def _check_placeholders(path: Path, where: str, text: str, allowed: frozenset[str]) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{path}: {where}: not a valid template: {exc}") from None
    for name in fields:
        if name not in allowed:
            raise ConfigError(
                f"{path}: {where}: unknown placeholder {{{name}}} (allowed: "
                + ", ".join("{" + a + "}" for a in sorted(allowed)) + ")"
            )
    # Render it as it will be rendered: counts are integers, the problem id a string.
    samples = {"n_unprocessed_requests": 3, "n_inprocessing_requests": 1, "problem_id": "sum_two",
               "n_overdue_requests": 2, "oldest_waiting_minutes": 75}
    try:
        text.format(**{name: samples[name] for name in allowed})
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: {where}: not a valid template: {exc}") from None


def _looks_like_email(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    value = value.strip()
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and not any(c.isspace() or c in "<>,;\x00" for c in value) \
        and len(value) <= 320
