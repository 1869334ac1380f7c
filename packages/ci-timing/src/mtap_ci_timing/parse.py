"""Check one workflow run or job exactly as the API sent it, and turn it into plain values.

Pure functions over the decoded JSON: no API here. A field with the wrong type, a timestamp
that is not ISO 8601, or a field GitHub always sends that is absent raises :class:`Malformed`,
whose ``str()`` is one line naming the field and what was expected. The caller skips that run
or job and records it (``missing`` in the document), so the rest of the history is still read.

Fields used, with what is accepted (GitHub REST reference, "workflow run" and "job"):

- run: ``id``, ``run_number`` (integers, required); ``run_attempt`` (integer >= 1 or null);
  ``name``, ``event``, ``head_branch``, ``head_sha``, ``conclusion``, ``html_url`` (string or
  null); ``created_at`` (timestamp or null). Absent optional fields read as null.
- job: ``id`` (integer), ``name`` (string), ``started_at``, ``completed_at`` (timestamp or null;
  the keys must be present); ``created_at`` (timestamp or null), ``run_attempt`` (integer >= 1
  or null), ``conclusion``, ``runner_name`` (string or null), ``steps`` (array or null).
- step: ``number`` (integer), ``name`` (string), ``conclusion`` (string or null),
  ``started_at``, ``completed_at`` (timestamp or null, may be absent: GitHub omits them for
  steps that never started).

Integers must fit in 64 bits, strings must be text (no lone surrogate from a ``\ud800``
escape) and timestamps must stay within years 1-9999 in UTC: what the JSON writer can hold.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .client import public_url

_ABSENT = object()


class Malformed(ValueError):
    """One run or job cannot be used; ``str()`` names the field and what was expected."""


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "nothing (the field is absent)"
    text = json.dumps(value, default=str)  # ASCII: a lone surrogate is shown escaped
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(field: str, value: Any, expected: str) -> Malformed:
    return Malformed(f"field {field}: got {_show(value)}, expected {expected}")


#: JSON writers (orjson) hold integers in 64 bits
INT64 = (-(2**63), 2**63 - 1)


def integer(obj: dict[str, Any], key: str, where: str = "", *, required: bool = False, minimum: int | None = None) -> int | None:
    value = obj.get(key, _ABSENT)
    if (value is _ABSENT or value is None) and not required:
        return None
    expected = "an integer" + (f" >= {minimum}" if minimum is not None else "") + ("" if required else " or null")
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise _bad(where + key, value, expected)
    if not INT64[0] <= value <= INT64[1]:
        raise _bad(where + key, value, "an integer that fits in 64 bits")
    return value


def _unicode(value: str) -> bool:
    try:
        value.encode("utf-8")  # a lone surrogate (a "\ud800" escape in the JSON) is not text
    except UnicodeEncodeError:
        return False
    return True


def string(obj: dict[str, Any], key: str, where: str = "", *, required: bool = False) -> str | None:
    value = obj.get(key, _ABSENT)
    if (value is _ABSENT or value is None) and not required:
        return None
    if not isinstance(value, str) or not _unicode(value):
        raise _bad(where + key, value, "a string" if required else "a string or null")
    return value


def timestamp(obj: dict[str, Any], key: str, where: str = "", *, present: bool = False) -> datetime | None:
    """An ISO 8601 date and time (``2026-01-05T10:00:00Z``) as an aware UTC datetime, or None
    for null. ``present``: the key must be there (its value may be null)."""
    value = obj.get(key, _ABSENT)
    if value is _ABSENT and present:
        raise _bad(where + key, value, "an ISO 8601 timestamp or null")
    if value is _ABSENT or value is None:
        return None
    if isinstance(value, str) and len(value) > 10 and value[10] in "Tt ":
        try:
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # not ISO 8601, or out of range once in UTC
            pass
    raise _bad(where + key, value, "an ISO 8601 timestamp or null")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"got {_show(value)}, expected a {what} object")
    return value


def parse_run(raw: Any) -> dict[str, Any]:
    """The fields of one workflow run that the document records (see module doc)."""
    run = _object(raw, "workflow run")
    html_url = string(run, "html_url")
    return {
        "id": integer(run, "id", required=True),
        "run_number": integer(run, "run_number", required=True),
        "run_attempt": integer(run, "run_attempt", minimum=1),
        "workflow": string(run, "name"),
        "event": string(run, "event"),
        "head_branch": string(run, "head_branch"),
        "head_sha": string(run, "head_sha"),
        "conclusion": string(run, "conclusion"),
        "created_at": timestamp(run, "created_at"),
        "html_url": public_url(html_url)[0] if html_url is not None else None,
    }


def parse_step(raw: Any, index: int) -> dict[str, Any]:
    where = f"steps[{index}]."
    if not isinstance(raw, dict):
        raise Malformed(f"field {where[:-1]}: got {_show(raw)}, expected a step object")
    return {
        "number": integer(raw, "number", where, required=True),
        "name": string(raw, "name", where, required=True),
        "conclusion": string(raw, "conclusion", where),
        "started_at": timestamp(raw, "started_at", where),
        "completed_at": timestamp(raw, "completed_at", where),
    }


def parse_job(raw: Any) -> dict[str, Any]:
    """The fields of one job that timing and the document use (see module doc)."""
    job = _object(raw, "job")
    steps = job.get("steps")
    if steps is not None and not isinstance(steps, list):
        raise _bad("steps", steps, "an array of steps or null")
    return {
        "id": integer(job, "id", required=True),
        "name": string(job, "name", required=True),
        "run_attempt": integer(job, "run_attempt", minimum=1),
        "conclusion": string(job, "conclusion"),
        "created_at": timestamp(job, "created_at"),
        "started_at": timestamp(job, "started_at", present=True),
        "completed_at": timestamp(job, "completed_at", present=True),
        "runner_name": string(job, "runner_name"),
        "steps": [parse_step(s, i) for i, s in enumerate(steps or [])],
    }


def label(raw: Any, kind: str, position: int) -> str:
    """How a skipped item is named in ``missing``: by id (and name) when it has them, else by position."""
    if isinstance(raw, dict) and isinstance(raw.get("id"), int) and not isinstance(raw.get("id"), bool):
        name = raw.get("name")
        named = f" {name!r}" if kind == "job" and isinstance(name, str) else ""
        number = raw.get("run_number") if kind == "run" else None
        return f"{kind} {raw['id']}" + (f" (#{number})" if isinstance(number, int) else "") + named
    return f"{kind} at position {position} of the listing"
