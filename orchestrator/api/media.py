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
        value = json.loads(raw)
    except UnicodeDecodeError:
        raise ValidationError("The request body is not UTF-8 encoded") from None
    except ValueError as exc:
        raise ValidationError("The request body is not valid JSON", detail=str(exc)) from None
    if not isinstance(value, dict):
        raise ValidationError("The request body must be a JSON object")
    return value
