"""The case matrix: models x predictors (hardware), two cases each (kernel detection, latency).

A ``--config`` JSON file may select a subset and change the export opsets / worker timeout:

    {"models": ["mobilenet-v2"], "hardware": ["cortexA76cpu", "myriadvpu"],
     "opsets": [10, 13], "timeout_s": 1200}
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
) + tuple(
    # further torchvision CNNs (issue #19), batch-1 224x224 edge inference like W8 (MobileNet-V2)
    ModelSpec(name, "W8", f"{name}.model.b1.fp32", "image", (1, 3, 224, 224))
    for name in ("resnet18", "resnet34", "resnet101", "mobilenet-v3-large", "mobilenet-v3-small", "shufflenet-v2",
                 "efficientnet-b0", "squeezenet", "densenet121", "googlenet", "regnet-y-400mf", "mnasnet", "alexnet")
)
MODEL_NAMES = tuple(m.name for m in MODELS)
#: the built-in matrix (without --config): the first five models on nn-Meter's four released predictors
DEFAULT_MODELS = MODEL_NAMES[:5]
HARDWARE = tuple(PREDICTORS)
DEFAULT_HARDWARE = ("cortexA76cpu", "adreno640gpu", "adreno630gpu", "myriadvpu")

#: opset 10 is what nn-Meter's ONNX converter handles; 13 is tried only when 10 fails
#: (onnx-simplifier cannot simplify BERT's opset-10 graph).
DEFAULT_OPSETS = (10, 13)
DEFAULT_TIMEOUT_S = 1800

STAGES = ("kernels", "latency")


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


def plan_from_config(doc: dict[str, Any] | None) -> Plan:
    """The plan for a --config document (already validated by
    schemas/config/nnmeter-runner.v1.schema.json), or the built-in one for None."""
    doc = doc or {}
    models = doc.get("models", list(DEFAULT_MODELS))
    hardware = doc.get("hardware", list(DEFAULT_HARDWARE))
    opsets = list(doc.get("opsets", DEFAULT_OPSETS))
    timeout = doc.get("timeout_s", DEFAULT_TIMEOUT_S)
    # Keep the built-in order whatever order the config lists them in: stable documents.
    return Plan([m for m in MODELS if m.name in models], [h for h in HARDWARE if h in hardware], opsets, timeout)


def narrowed(plan: Plan, selected: list[dict[str, Any]]) -> Plan:
    """The plan restricted to the models and hardware the selected cases (--shard, --limit) need."""
    return Plan([m for m in plan.models if any(c["parameters"]["model"] == m.name for c in selected)],
                [h for h in plan.hardware if any(c["hardware"] == h for c in selected)], plan.opsets, plan.timeout_s)
