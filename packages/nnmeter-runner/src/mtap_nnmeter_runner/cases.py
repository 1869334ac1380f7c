"""The case matrix: models x predictors (hardware), two cases each (kernel detection, latency).

A ``--config`` JSON file may select a subset and change the export opsets / worker timeout:

    {"models": ["mobilenet-v2"], "hardware": ["cortexA76cpu", "myriadvpu"],
     "opsets": [10, 13], "timeout_s": 1200}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .predictors import PREDICTORS


@dataclass(frozen=True)
class ModelSpec:
    name: str  # models.MODELS key
    workload: str
    key: str  # case.key (schemas/README.md)
    input: str  # "image" | "tokens"
    input_shape: tuple[int, ...]


#: Built-in models, in document order. Batch 1 only: nn-Meter's predictors were trained on
#: batch-1 edge inference (TFLite 2.1 / OpenVINO 2019R2), fp32 models as input.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("resnet50", "W1", "resnet50.model.b1.fp32", "image", (1, 3, 224, 224)),
    ModelSpec("resnet50-conv1", "W1", "resnet50.conv1.b1.fp32", "image", (1, 3, 224, 224)),
    ModelSpec("bert-base", "W4", "bert-base.model.b1.s128.fp32", "tokens", (1, 128)),
    ModelSpec("mobilenet-v2", "W8", "mobilenet-v2.model.b1.fp32", "image", (1, 3, 224, 224)),
    ModelSpec("vgg16", "W9", "vgg16.model.b1.fp32", "image", (1, 3, 224, 224)),
)
MODEL_NAMES = tuple(m.name for m in MODELS)
HARDWARE = tuple(PREDICTORS)

#: opset 10 is what nn-Meter's ONNX converter handles; 13 is tried only when 10 fails
#: (onnx-simplifier cannot simplify BERT's opset-10 graph).
DEFAULT_OPSETS = (10, 13)
DEFAULT_TIMEOUT_S = 1800

STAGES = ("kernels", "latency")


class ConfigError(ValueError):
    """One line: file, field, what was expected."""


@dataclass
class Plan:
    models: list[ModelSpec]
    hardware: list[str]
    opsets: list[int] = field(default_factory=lambda: list(DEFAULT_OPSETS))
    timeout_s: int = DEFAULT_TIMEOUT_S

    def cases(self) -> list[dict[str, Any]]:
        """Planned cases (id, workload, hardware, key, parameters) in document order."""
        out = []
        for model in self.models:
            for hw in self.hardware:
                for stage in STAGES:
                    out.append({
                        "id": f"{model.workload}/{model.name}/{hw}/{stage}",
                        "workload": model.workload,
                        "hardware": hw,
                        "key": model.key,
                        "parameters": {
                            "model": model.name,
                            "predictor": PREDICTORS[hw],
                            "stage": "kernel-detection" if stage == "kernels" else "latency-prediction",
                            "batch": 1,
                            "input_shape": "x".join(map(str, model.input_shape)),
                        },
                    })
        return out


def _names(value: Any, allowed: tuple[str, ...], source: str, field_name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: field {field_name}: expected a non-empty list of strings from {list(allowed)}")
    for v in value:
        if v not in allowed:
            raise ConfigError(f"{source}: field {field_name}: got {v!r}, expected one of {list(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: field {field_name}: duplicate entries")
    return value


def load_plan(config: Path | None) -> Plan:
    if config is None:
        return Plan(list(MODELS), list(HARDWARE))
    source = str(config)
    try:
        doc = json.loads(Path(config).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a JSON object at the top level")
    known = {"models", "hardware", "opsets", "timeout_s"}
    extra = sorted(set(doc) - known)
    if extra:
        raise ConfigError(f"{source}: field {extra[0]}: unknown field, expected one of {sorted(known)}")
    models = _names(doc.get("models", list(MODEL_NAMES)), MODEL_NAMES, source, "models")
    hardware = _names(doc.get("hardware", list(HARDWARE)), HARDWARE, source, "hardware")
    opsets = doc.get("opsets", list(DEFAULT_OPSETS))
    if (not isinstance(opsets, list) or not opsets
            or not all(isinstance(o, int) and not isinstance(o, bool) and 7 <= o <= 21 for o in opsets)):
        raise ConfigError(f"{source}: field opsets: expected a non-empty list of ONNX opset integers 7..21")
    timeout = doc.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise ConfigError(f"{source}: field timeout_s: expected a positive integer (seconds per worker)")
    # Keep the built-in order whatever order the config lists them in: stable documents.
    return Plan([m for m in MODELS if m.name in models], [h for h in HARDWARE if h in hardware], opsets, timeout)
