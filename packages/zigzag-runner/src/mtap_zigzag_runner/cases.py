"""The case matrix: which layers run on which ZigZag example accelerator, their join keys, and the
optional ``--config`` JSON that narrows it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtap_schemas import sha256_file
from mtap_schemas.layers import Layer, LayerTable, key_tail, model_total

#: The accelerators: hardware id in hardware.json, the key's dtype, the accelerator and mapping
#: files and the operand precisions (bits) given to ZigZag. ``own`` files are this package's
#: (src/mtap_zigzag_runner/inputs/), the others ZigZag's shipped examples (zigzag/inputs/).
HARDWARE: dict[str, dict] = {
    "eyeriss-like": {"hardware": "Eyeriss-like", "dtype": "int16", "accelerator": "hardware/eyeriss_like.yaml",
                     "mapping": "mapping/default.yaml", "precision": {"W": 16, "I": 16, "O": 16, "O_final": 16}},
    "tpu-like": {"hardware": "TPU-like", "dtype": "int8", "accelerator": "hardware/tpu_like.yaml",
                 "mapping": "mapping/tpu_like.yaml", "precision": {"W": 8, "I": 8, "O": 16, "O_final": 8}},
    # ZigZag's Edge-TPU-like example: 8x8x4x4 MACs (K, C, OX, OY), the pairing of its own tests
    # (tests/main/test_origin/test_edge_tpu_like.py); 8-bit operands as its example workloads.
    "edge-tpu-like": {"hardware": "Edge-TPU-like", "dtype": "int8", "accelerator": "hardware/edge_tpu_like.yaml",
                      "mapping": "mapping/edge_tpu_like.yaml", "precision": {"W": 8, "I": 8, "O": 16, "O_final": 8}},
    # The chip's row-stationary unrolling is written per layer (run.rs_mapping): no mapping file.
    "eyeriss-chip": {"hardware": "Eyeriss", "dtype": "int16", "accelerator": "eyeriss_chip.yaml",
                     "mapping": None, "precision": {"W": 16, "I": 16, "O": 16, "O_final": 16}, "own": True},
}
#: What runs when a config does not say: ZigZag's three shipped examples on ResNet-50 and BERT-base.
DEFAULT_HARDWARE = ("eyeriss-like", "tpu-like", "edge-tpu-like")
DEFAULT_MODELS = ("resnet50", "bert-base")


@dataclass
class Config:
    hardware: list[str] = field(default_factory=lambda: list(DEFAULT_HARDWARE))
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    layers: list[str] | None = None  # layer names to keep (None: all)
    batch: int | None = None  # None: each layer table's own batch (1; AlexNet 4, VGG-16 3 as Eyeriss measured)
    seq_len: int | None = None  # None: the table's (BERT-base 128)


def config_from(doc: dict | None) -> Config:
    """The config as read and validated by the kit (schemas/config/zigzag-runner.v1.schema.json)."""
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


def spec_params(arch: str) -> dict:
    """Which accelerator and mapping files a case of ``arch`` runs on and their sha256: ZigZag's
    shipped examples (``spec: zigzag-shipped``, files of the installed zigzag-dse) or this
    package's own (``spec: ours``)."""
    from .run import spec_file, spec_where  # run imports this module

    hw = HARDWARE[arch]
    p = {"spec": "ours" if hw.get("own") else "zigzag-shipped",
         "accelerator_file": spec_where(arch, "accelerator"),
         "accelerator_sha256": sha256_file(spec_file(arch, "accelerator"))}
    if hw["mapping"] is None:
        p["mapping_file"] = "ours: row-stationary spatial unrolling written per layer (mtap_zigzag_runner.run.rs_mapping)"
    else:
        p["mapping_file"] = spec_where(arch, "mapping")
        p["mapping_sha256"] = sha256_file(spec_file(arch, "mapping"))
    return p


def _layer_params(arch: str, layer: Layer) -> dict:
    p = {"accelerator": arch, "model": layer.model, "layer": layer.name, "shape": layer.shape_text(),
         "padding": layer.padding, "macs": layer.case_macs, "repeats": layer.repeats}
    if layer.instances > 1:
        p["instances"] = layer.instances
    if layer.note:
        p["note"] = layer.note
    return {**p, **spec_params(arch)}


def plan_cases(cfg: Config, tables: dict[str, LayerTable]) -> list[Case]:
    """Every case in a stable order: per accelerator and model, W1 conv1 (ResNet-50), the
    layers, then their total."""
    out: list[Case] = []
    for arch in cfg.hardware:
        hw, dtype = HARDWARE[arch]["hardware"], HARDWARE[arch]["dtype"]
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
                                {"accelerator": arch, "model": model, "layers": len(layers), "macs": macs, "scope": scope,
                                 **spec_params(arch)}))
    return out
