"""Reading request input the way the existing clients send it.

The old service parsed every body as JSON whatever its Content-Type said, so
this does too. Malformed input is a ValidationError (400), never a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from orchestrator.errors import ValidationError


def json_object(req: falcon.Request) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ValidationError: the body is empty, not UTF-8, not JSON, or not an object.
    """
    raw = req.bounded_stream.read()
    if not raw.strip():
        raise ValidationError("The request body is empty; a JSON object is expected")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ValidationError("The request body is not UTF-8 encoded") from None
    except ValueError as exc:
        raise ValidationError("The request body is not valid JSON", detail=str(exc)) from None
    except RecursionError:
        raise ValidationError("The request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValidationError("The request body must be a JSON object")
    _check_strings(value)
    return value


MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValidationError(f"The request body contains {name}, which is not a JSON number")


def _check_strings(value: Any) -> None:
    """Refuse what cannot be stored: lone surrogates (not UTF-8), NUL characters,
    numbers too large for a float, and nesting deeper than MAX_DEPTH."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(f"The request body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.keys())
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and item in (float("inf"), float("-inf")):
            raise ValidationError("The request body contains a number too large to store")
        elif isinstance(item, str):
            if "\x00" in item:
                raise ValidationError("The request body contains a NUL character, which cannot be stored")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError("The request body contains text that is not valid Unicode") from None
