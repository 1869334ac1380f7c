"""The --config file: a JSON object selecting part of the built-in case matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .live import PREDICTORS, WORKLOADS
from .mapping import METHODS, MODELS, parse_tag

#: field -> (mode it applies to, element type, allowed values or None)
FIELDS: dict[str, tuple[str, type, tuple | None]] = {
    "devices": ("artifact", str, None),      # NeuSight device folders, e.g. "NVIDIA_H100_80GB_HBM3"
    "methods": ("both", str, None),          # artifact: neusight/roofline/micro/habitat; live: neusight/roofline
    "models": ("artifact", str, None),       # NeuSight model names, e.g. "bert_large"
    "modes": ("artifact", str, ("inf", "train")),
    "hardware": ("live", str, None),         # mtap hardware ids
    "workloads": ("live", str, tuple(WORKLOADS)),
    "batch": ("live", int, None),
    "seq_len": ("live", int, None),
    "neusight_tags": ("live", str, None),    # NeuSight's own configurations, e.g. "bert_large-inf-512-8"
    "neusight_devices": ("live", str, None), # NeuSight device configs for neusight_tags [NVIDIA_H100_80GB_HBM3]
}


class ConfigError(ValueError):
    """One line: file, field, what was expected."""


def load(path: Path | None, mode: str) -> dict[str, list[Any]]:
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object with any of the fields {', '.join(FIELDS)}")
    out: dict[str, list[Any]] = {}
    for name, value in doc.items():
        if name not in FIELDS:
            raise ConfigError(f"{path}: field {name}: unknown field, expected one of {', '.join(FIELDS)}")
        applies, typ, allowed = FIELDS[name]
        if applies not in ("both", mode):
            raise ConfigError(f"{path}: field {name}: applies to {applies} mode only, this is a {mode} run")
        if not isinstance(value, list) or not value or not all(isinstance(v, typ) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{path}: field {name}: expected a non-empty list of {typ.__name__}")
        if name == "methods":
            allowed = METHODS if mode == "artifact" else tuple(PREDICTORS)
        if allowed is not None:
            bad = [v for v in value if v not in allowed]
            if bad:
                raise ConfigError(f"{path}: field {name}: got {bad[0]!r}, expected one of {', '.join(allowed)}")
        if name == "neusight_tags":
            for v in value:
                tag = parse_tag(v)
                if tag is None:
                    raise ConfigError(f"{path}: field {name}: got {v!r}, expected <model>-<inf|train>-<seqlen>-<batch>[-variant]")
                if tag.model not in MODELS:
                    raise ConfigError(f"{path}: field {name}: {v!r}: model {tag.model!r} maps onto no mtap workload (known: {', '.join(MODELS)})")
        if typ is int and any(v < 1 for v in value):
            raise ConfigError(f"{path}: field {name}: expected positive integers")
        out[name] = value
    if "neusight_devices" in out and "neusight_tags" not in out:
        raise ConfigError(f"{path}: field neusight_devices: only used with neusight_tags")
    if "neusight_tags" in out:
        for other in ("hardware", "workloads", "batch", "seq_len"):
            if other in out:
                raise ConfigError(f"{path}: field {other}: not used with neusight_tags (NeuSight's own configurations)")
    return out
