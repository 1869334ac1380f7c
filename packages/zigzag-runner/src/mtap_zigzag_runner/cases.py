"""The case matrix: which layers run on which ZigZag example accelerator, their join keys, and the
optional ``--config`` JSON that narrows it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .layers import Layer, bert_base_layers, resnet50_layers

#: ZigZag's shipped example accelerators: hardware id in hardware.json, the key's dtype, the
#: files under zigzag/inputs/ and the operand precisions (bits) given to ZigZag.
HARDWARE: dict[str, dict] = {
    "eyeriss-like": {"hardware": "Eyeriss-like", "dtype": "int16", "accelerator": "hardware/eyeriss_like.yaml",
                     "mapping": "mapping/default.yaml", "precision": {"W": 16, "I": 16, "O": 16, "O_final": 16}},
    "tpu-like": {"hardware": "TPU-like", "dtype": "int8", "accelerator": "hardware/tpu_like.yaml",
                 "mapping": "mapping/tpu_like.yaml", "precision": {"W": 8, "I": 8, "O": 16, "O_final": 8}},
}
MODELS = ("resnet50", "bert-base")


class ConfigError(ValueError):
    """One line naming the file, the field and what was expected."""


@dataclass
class Config:
    hardware: list[str] = field(default_factory=lambda: list(HARDWARE))
    models: list[str] = field(default_factory=lambda: list(MODELS))
    layers: list[str] | None = None  # layer names to keep (None: all)
    batch: int = 1
    seq_len: int = 128


_FIELDS = {
    "hardware": "a list of ZigZag example accelerators, any of " + ", ".join(HARDWARE),
    "models": "a list of models, any of " + ", ".join(MODELS),
    "layers": "a list of layer names (e.g. conv1, layer1-0-conv2, attention-qkv) or null",
    "batch": "a positive integer",
    "seq_len": "a positive integer (BERT sequence length)",
}


def load_config(path: Path | None) -> Config:
    cfg = Config()
    if path is None:
        return cfg
    src = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{src}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: expected a JSON object with fields {', '.join(_FIELDS)}")
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(f"{src}: field {key}: unknown field, expected one of {', '.join(_FIELDS)}")
        expected = _FIELDS[key]
        if key in ("hardware", "models"):
            allowed = HARDWARE if key == "hardware" else MODELS
            if not isinstance(value, list) or not value or any(v not in allowed for v in value):
                raise ConfigError(f"{src}: field {key}: got {value!r}, expected {expected}")
        elif key == "layers":
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{src}: field {key}: got {value!r}, expected {expected}")
        elif key in ("batch", "seq_len"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{src}: field {key}: got {value!r}, expected {expected}")
        setattr(cfg, key, value)
    if cfg.layers is not None:
        known = {layer.name for layer in resnet50_layers() + bert_base_layers()}
        unknown = sorted(set(cfg.layers) - known)
        if unknown:
            raise ConfigError(f"{src}: field layers: unknown layer name(s) {unknown}, expected names like conv1, layer1-0-conv2, fc, attention-qkv")
    return cfg


@dataclass
class Case:
    """One planned case: a single layer (``layers`` has one entry) or a model total."""

    id: str
    key: str
    workload: str
    hardware: str
    arch: str
    dtype: str
    kind: str  # "w1" (ResNet-50 conv1 as W1), "layer", "total"
    layers: list[Layer]
    parameters: dict

    def plan(self) -> dict:
        return {"id": self.id, "key": self.key, "workload": self.workload, "hardware": self.hardware,
                "parameters": self.parameters}


def _layer_key(layer: Layer, batch: int, seq_len: int, dtype: str) -> str:
    if layer.model == "resnet50":
        return f"resnet50.layer.{layer.name}.b{batch}.{dtype}"
    return f"bert-base.layer.{layer.name}.b{batch}.s{seq_len}.{dtype}"


def _layer_params(arch: str, layer: Layer) -> dict:
    p = {"accelerator": arch, "model": layer.model, "layer": layer.name, "shape": layer.shape_text(),
         "padding": layer.padding, "macs": layer.case_macs, "repeats": layer.repeats}
    if layer.instances > 1:
        p["instances"] = layer.instances
    if layer.note:
        p["note"] = layer.note
    return p


def plan_cases(cfg: Config) -> list[Case]:
    """Every case in a stable order: per accelerator, W1 conv1, the ResNet-50 layers and their
    total, then BERT-base's matmuls and their total."""
    out: list[Case] = []
    b, s = cfg.batch, cfg.seq_len
    for arch in cfg.hardware:
        hw, dtype = HARDWARE[arch]["hardware"], HARDWARE[arch]["dtype"]
        for model in cfg.models:
            layers = resnet50_layers(b) if model == "resnet50" else bert_base_layers(b, s)
            chosen = [la for la in layers if cfg.layers is None or la.name in cfg.layers]
            if model == "resnet50" and any(la.name == "conv1" for la in chosen):
                conv1 = chosen[0]
                key = f"resnet50.conv1.b{b}.{dtype}"
                out.append(Case(f"{arch}/{key}", key, "W1", hw, arch, dtype, "w1", [conv1],
                                _layer_params(arch, conv1)))
            for la in chosen:
                key = _layer_key(la, b, s, dtype)
                out.append(Case(f"{arch}/{key}", key, la.workload, hw, arch, dtype, "layer", [la],
                                _layer_params(arch, la)))
            if chosen and len(chosen) == len(layers):
                key = f"resnet50.model.b{b}.{dtype}" if model == "resnet50" else f"bert-base.model.b{b}.s{s}.{dtype}"
                scope = ("sum of the 53 convolutions and the fc layer; pooling, batch norm, ReLU and residual adds are not modelled"
                         if model == "resnet50" else
                         "12 x the encoder layer's matmuls; embeddings, softmax, layer norm, GELU and pooler are not modelled")
                macs = sum(la.case_macs * la.repeats for la in layers)
                out.append(Case(f"{arch}/{key}", key, layers[0].workload, hw, arch, dtype, "total", layers,
                                {"accelerator": arch, "model": model, "layers": len(layers), "macs": macs, "scope": scope}))
    return out


def apply_limit(cases: list[Case], limit: int | None) -> list[Case]:
    """The first ``limit`` cases; a total is kept only if every layer it sums is kept too."""
    if limit is None:
        return cases
    kept = cases[:limit]
    keys = {(c.arch, c.layers[0].name) for c in kept if c.kind != "total"}
    return [c for c in kept if c.kind != "total" or all((c.arch, la.name) in keys for la in c.layers)]
