"""The --config file: a JSON object selecting part of the built-in case matrix.

Its format is checked by ``schemas/config/neusight-runner.v1.schema.json`` (through the runner kit);
what a schema cannot say is checked here: which mode a field applies to, the methods live mode
can run, that a tag's model maps onto an mtap workload, and that ``neusight_tags`` (every tag on
every ``neusight_devices``) or ``neusight_device_tags`` (tags per device, e.g. the configurations
NeuSight labelled on each GPU) replaces the W4/W7 matrix fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .live import CORES_PER_SM, PREDICTORS
from .mapping import MODELS, hardware_id, parse_tag

#: field -> the mode it applies to
MODES = {
    "devices": "artifact",
    "models": "artifact",
    "modes": "artifact",
    "methods": "both",
    "hardware": "live",
    "workloads": "live",
    "batch": "live",
    "seq_len": "live",
    "neusight_tags": "live",
    "neusight_devices": "live",
    "neusight_device_tags": "live",
}


class ConfigError(ValueError):
    """One line: file, field, what was expected."""


def check(doc: dict[str, Any] | None, path: Path | None, mode: str) -> dict[str, Any]:
    """The schema-valid config ``doc`` checked for ``mode`` (artifact or live); {} without a config."""
    if not doc:
        return {}
    for name in doc:
        if MODES[name] not in ("both", mode):
            raise ConfigError(f"{path}: field {name}: applies to {MODES[name]} mode only, this is a {mode} run")
    if mode == "live":
        bad = [m for m in doc.get("methods", []) if m not in PREDICTORS]
        if bad:
            raise ConfigError(f"{path}: field methods: got {bad[0]!r}, live mode runs one of {', '.join(PREDICTORS)}")
    pairs = doc.get("neusight_device_tags", {})
    for field, texts in [("neusight_tags", doc.get("neusight_tags", []))] + [
        (f"neusight_device_tags.{device}", tags) for device, tags in pairs.items()
    ]:
        for text in texts:
            tag = parse_tag(text)
            if tag is None or tag.model not in MODELS:
                model = tag.model if tag else text
                raise ConfigError(
                    f"{path}: field {field}: {text!r}: model {model!r} maps onto no mtap workload (known: {', '.join(MODELS)})"
                )
    hardware_of: dict[str, str] = {}
    for field, devices in (("neusight_devices", doc.get("neusight_devices", [])), ("neusight_device_tags", list(pairs))):
        for device in devices:
            hid = device if device in CORES_PER_SM else hardware_id(device)[0]
            if hid in hardware_of:
                raise ConfigError(f"{path}: field {field}: {hardware_of[hid]!r} and {device!r} are both {hid}")
            hardware_of[hid] = device
    for own in ("neusight_tags", "neusight_device_tags"):
        if own in doc:
            for other in ("hardware", "workloads", "batch", "seq_len"):
                if other in doc:
                    raise ConfigError(f"{path}: field {other}: not used with {own} (NeuSight's own configurations)")
    if "neusight_device_tags" in doc:
        for other in ("neusight_tags", "neusight_devices"):
            if other in doc:
                raise ConfigError(f"{path}: field {other}: not used with neusight_device_tags (which names the tags per device)")
    return dict(doc)
