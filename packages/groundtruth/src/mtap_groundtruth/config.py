"""``--config FILE``: a JSON object selecting and tuning the case matrix.

    {"include": ["resnet50.conv1.*"], "exclude": ["*.fp16"], "iters": 50, "warmup": 10}

Every field is optional; an unknown field or a wrong type is a one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIELDS: dict[str, str] = {
    "include": "a list of key globs (fnmatch) to keep",
    "exclude": "a list of key globs (fnmatch) to drop",
    "iters": "an integer >= 1 (timed iterations per case)",
    "warmup": "an integer >= 0 (untimed iterations first)",
}


class ConfigError(ValueError):
    pass


def load(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object with fields {', '.join(FIELDS)}")
    for key, value in data.items():
        if key not in FIELDS:
            raise ConfigError(f"{path}: field {key}: unknown field (expected one of {', '.join(FIELDS)})")
        if key in ("include", "exclude"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{path}: field {key}: expected {FIELDS[key]}")
        else:
            low = 1 if key == "iters" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{path}: field {key}: expected {FIELDS[key]}")
    return data
