"""The case matrix: which layers run on which architecture spec, their join keys, and the
optional ``--config`` JSON that narrows it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtap_schemas.layers import Layer, LayerTable, key_tail, model_total

#: Architecture specs under <data-dir>/timeloop/<spec>/: hardware id in hardware.json and the
#: data type of its datapath (the key's dtype).
ARCHITECTURES: dict[str, dict[str, str]] = {
    "eyeriss-like": {"hardware": "Eyeriss-like", "dtype": "int16"},
    "simba-like": {"hardware": "Simba-like", "dtype": "int8"},
    "eyeriss-chip": {"hardware": "Eyeriss", "dtype": "int16"},
}
#: What runs when a config does not say: the two accelerator-like specs on ResNet-50 and BERT-base.
DEFAULT_ARCHITECTURES = ("eyeriss-like", "simba-like")
DEFAULT_MODELS = ("resnet50", "bert-base")
SPEC_FILES = ("arch.yaml", "constraints.yaml")
MAPPER_FILE = "mapper.yaml"


@dataclass
class Config:
    architectures: list[str] = field(default_factory=lambda: list(DEFAULT_ARCHITECTURES))
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    layers: list[str] | None = None  # layer names to keep (None: all)
    batch: int | None = None  # None: each layer table's own batch (1; AlexNet 4, VGG-16 3 as Eyeriss measured)
    seq_len: int | None = None  # None: the table's (BERT-base 128)
    timeout_s: float | None = None  # None: --timeout's default


def config_from(doc: dict | None) -> Config:
    """The config as read and validated by the kit (schemas/config/timeloop-runner.v1.schema.json)."""
    cfg = Config()
    for key, value in (doc or {}).items():
        setattr(cfg, key, list(value) if isinstance(value, list) else value)
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


def _layer_params(arch: str, layer: Layer) -> dict:
    p = {"architecture": arch, "model": layer.model, "layer": layer.name, "shape": layer.shape_text(),
         "padding": layer.padding, "macs": layer.case_macs, "repeats": layer.repeats}
    if layer.instances > 1:
        p["instances"] = layer.instances
    if layer.note:
        p["note"] = layer.note
    return p


def plan_cases(cfg: Config, tables: dict[str, LayerTable]) -> list[Case]:
    """Every case in a stable order: per architecture and model, W1 conv1 (ResNet-50), the
    layers, then their total."""
    out: list[Case] = []
    for arch in cfg.architectures:
        hw, dtype = ARCHITECTURES[arch]["hardware"], ARCHITECTURES[arch]["dtype"]
        for model in cfg.models:
            table = tables[model]
            b = cfg.batch or table.default_batch
            s = (cfg.seq_len or table.parameters["seq_len"]) if table.has_seq_len else None
            tail = key_tail(table, b, s, dtype)
            layers = table.layers(b, s)
            chosen = [la for la in layers if cfg.layers is None or la.name in cfg.layers]
            if model == "resnet50" and any(la.name == "conv1" for la in chosen):
                conv1 = chosen[0]
                key = f"resnet50.conv1.{tail}"
                out.append(Case(f"{arch}/{key}", key, "W1", hw, arch, dtype, "w1", [conv1],
                                _layer_params(arch, conv1)))
            for la in chosen:
                key = f"{model}.layer.{la.name}.{tail}"
                out.append(Case(f"{arch}/{key}", key, la.workload, hw, arch, dtype, "layer", [la],
                                _layer_params(arch, la)))
            if chosen and len(chosen) == len(layers):
                key, scope = model_total(table, layers, tail)
                macs = sum(la.case_macs * la.repeats for la in layers)
                out.append(Case(f"{arch}/{key}", key, table.workload, hw, arch, dtype, "total", layers,
                                {"architecture": arch, "model": model, "layers": len(layers), "macs": macs, "scope": scope}))
    return out
