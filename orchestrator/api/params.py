"""Validation of request fields and query parameters: clear 400s, never a 5xx.

Strings are refused when they contain NUL characters (PostgreSQL cannot store
them); the JSON reader already refuses lone surrogates anywhere in a body.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from orchestrator.errors import ValidationError

_MISSING = object()
_DIGITS = re.compile(r"^[0-9]{1,18}$")
ID_MAX_LENGTH = 255


def _missing(name: str) -> ValidationError:
    return ValidationError(f"The field '{name}' is required", detail={"field": name})


def _check_text(name: str, value: str, *, allow_empty: bool, max_length: int | None) -> str:
    if not allow_empty and not value.strip():
        raise ValidationError(f"The field '{name}' must not be empty", detail={"field": name})
    if max_length is not None and len(value) > max_length:
        raise ValidationError(
            f"The field '{name}' is too long (at most {max_length} characters)", detail={"field": name}
        )
    if "\x00" in value:
        raise ValidationError(f"The field '{name}' contains a NUL character", detail={"field": name})
    return value


def string(
    body: dict[str, Any], name: str, *, allow_empty: bool = False, max_length: int | None = None,
    optional: bool = False,
) -> str | None:
    """A string field; ``optional`` also accepts a missing field or null (returns None)."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if optional:
            return None
        raise _missing(name)
    if not isinstance(value, str):
        raise ValidationError(f"The field '{name}' must be a string", detail={"field": name})
    return _check_text(name, value, allow_empty=allow_empty, max_length=max_length)


def identifier(body: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    """A student or problem id: a non-empty string of at most 255 characters."""
    return string(body, name, max_length=ID_MAX_LENGTH, optional=optional)


def loose_id(body: dict[str, Any], name: str) -> str:
    """An id that clients send as a string or a number (instructor ids); returned as a string."""
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return identifier({name: str(value)}, name)
    return identifier(body, name)


def integer_id(body: dict[str, Any], name: str) -> int:
    """A numeric id sent as a JSON integer."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        raise _missing(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValidationError(f"The field '{name}' must be a non-negative integer", detail={"field": name})
    return value


def boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        raise _missing(name)
    if not isinstance(value, bool):
        raise ValidationError(f"The field '{name}' must be true or false", detail={"field": name})
    return value


def query_string(req: falcon.Request, name: str, *, max_length: int = ID_MAX_LENGTH) -> str:
    """A required query parameter given once."""
    value = req.get_param(name)
    if value is None:
        raise ValidationError(f"The query parameter '{name}' is required", detail={"parameter": name})
    if isinstance(req.params.get(name), list):
        raise ValidationError(f"The query parameter '{name}' was given more than once",
                              detail={"parameter": name})
    try:
        return _check_text(name, value, allow_empty=False, max_length=max_length)
    except ValidationError as exc:
        raise ValidationError(exc.message.replace("field", "query parameter"), detail={"parameter": name}) from None


def query_id(req: falcon.Request, name: str) -> int:
    """A required numeric id in the query string."""
    value = query_string(req, name, max_length=32).strip()
    if not _DIGITS.match(value):
        raise ValidationError(
            f"The query parameter '{name}' must be a non-negative integer", detail={"parameter": name}
        )
    return int(value)
