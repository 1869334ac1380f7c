"""The one reader of the layer tables, ``<data-dir>/workloads/layers/<model>.layers.json``
(schema ``layers`` v1): ResNet-50's convolutions and fc layer, BERT-base's encoder matmuls as 1x1
convolutions, AlexNet's and VGG-16's convolutions. A table's shape entries may name a parameter
(``batch``, ``seq_len``) that is filled in here. Used by every runner that takes layer shapes
(timeloop-runner, zigzag-runner), so a table is read and checked the same way everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import SchemaError, read

#: Timeloop's CNN-layer dimensions: batch, input/output channels, filter width/height,
#: output width/height (the table's K is M here).
DIMS = ("N", "C", "M", "R", "S", "P", "Q")
#: Models with a layer table, in the order cases are planned.
MODELS = ("resnet50", "bert-base", "alexnet", "vgg16")
LAYERS_DIR = Path("workloads") / "layers"


class LayerTableError(ValueError):
    """A layer table is missing or invalid: one line naming the file and field."""


@dataclass(frozen=True)
class Layer:
    """One convolution (or matmul written as a 1x1 convolution)."""

    model: str
    name: str
    workload: str
    dims: dict[str, int]
    stride: int = 1
    padding: int = 0
    in_hw: int = 0  # input height = width before padding (convolutions only)
    instances: int = 1  # independent runs of this shape that make up the case (heads, groups)
    repeats: int = 1  # how often the case occurs in the model (BERT: once per encoder layer)
    note: str = field(default="", compare=False)

    @property
    def macs(self) -> int:
        return math.prod(self.dims[d] for d in DIMS)

    @property
    def case_macs(self) -> int:
        """MACs of the whole case: ``instances`` runs of the tool's problem."""
        return self.macs * self.instances

    @property
    def shape(self) -> tuple:
        """What the tool sees: equal shapes are the same problem."""
        return (tuple(self.dims[d] for d in DIMS), self.stride)

    def shape_text(self) -> str:
        text = " ".join(f"{d}={self.dims[d]}" for d in DIMS)
        return f"{text} stride={self.stride}"


@dataclass(frozen=True)
class LayerTable:
    """One model's table as read; ``layers()`` fills in its parameters."""

    model: str
    workload: str
    parameters: dict[str, int]
    entries: tuple[dict, ...]
    path: str

    @property
    def default_batch(self) -> int:
        return self.parameters["batch"]

    @property
    def has_seq_len(self) -> bool:
        return "seq_len" in self.parameters

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.entries]

    def layers(self, batch: int | None = None, seq_len: int | None = None) -> list[Layer]:
        values = dict(self.parameters)
        if batch is not None:
            values["batch"] = batch
        if seq_len is not None and self.has_seq_len:
            values["seq_len"] = seq_len
        out = []
        for e in self.entries:
            shape = {k: values[v] if isinstance(v, str) else v for k, v in e["shape"].items()}
            dims = {"N": shape["N"], "C": shape["C"], "M": shape["K"], "R": shape["R"], "S": shape["S"],
                    "P": shape["P"], "Q": shape["Q"]}
            instances = e.get("instances", 1) * (values["batch"] if e.get("instances_per_batch") else 1)
            out.append(Layer(self.model, e["name"], self.workload, dims, stride=e.get("stride", 1),
                             padding=e.get("padding", 0), in_hw=e.get("input_hw", 0), instances=instances,
                             repeats=e.get("repeats", 1), note=e.get("note", "")))
        return out


def table_path(data_dir: Path, model: str) -> Path:
    return Path(data_dir) / LAYERS_DIR / f"{model}.layers.json"


def load_table(data_dir: Path, model: str) -> LayerTable:
    path = table_path(data_dir, model)
    try:
        doc = read(path, "layers")
    except SchemaError as exc:
        raise LayerTableError(str(exc)) from None
    if doc["model"] != model:
        raise LayerTableError(f"{path}: field model: got {doc['model']!r}, expected {model!r}")
    names = [e["name"] for e in doc["layers"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LayerTableError(f"{path}: field layers: duplicate layer name(s) {dup}")
    for i, e in enumerate(doc["layers"]):
        for dim, v in e["shape"].items():
            if isinstance(v, str) and v not in doc["parameters"]:
                raise LayerTableError(f"{path}: field layers[{i}].shape.{dim}: names parameter {v!r}, "
                                      f"which is not in parameters")
    return LayerTable(model, doc["workload"], dict(doc["parameters"]), tuple(doc["layers"]), str(path))


def load_tables(data_dir: Path, models: list[str] | tuple[str, ...]) -> dict[str, LayerTable]:
    return {m: load_table(data_dir, m) for m in models}


# ---------------------------------------------------------------- planning cases from the tables
# timeloop-runner and zigzag-runner plan the same cases from these tables, with the same keys, so
# that aggregate can join the two tools.

def select_tables(data_dir: Path, models: list[str] | tuple[str, ...], layers: list[str] | None,
                  config: object) -> dict[str, LayerTable]:
    """The tables of ``models``, with every layer name of a config's ``layers`` (None: all) checked
    against them; a one-line :class:`LayerTableError` (naming ``config``, the config file, for an
    unknown layer name)."""
    tables = load_tables(data_dir, models)
    if layers is not None:
        known = {name for m in models for name in tables[m].names}
        unknown = sorted(set(layers) - known)
        if unknown:
            raise LayerTableError(f"{config}: field layers: unknown layer name(s) {unknown} for models "
                                  f"{', '.join(models)}, expected names like conv1, layer1-0-conv2, fc, "
                                  "attention-qkv, conv1-1")
    return tables


def key_tail(table: LayerTable, batch: int, seq_len: int | None, dtype: str) -> str:
    """The end of a case key: ``b<batch>.<dtype>``, with ``.s<seq_len>`` for a table that has one."""
    return f"b{batch}.s{seq_len}.{dtype}" if table.has_seq_len else f"b{batch}.{dtype}"


def model_total(table: LayerTable, layers: list[Layer], tail: str) -> tuple[str, str]:
    """Key and scope of a model total (the sum of ``layers``, the table's layers)."""
    if table.model == "resnet50":
        return f"resnet50.model.{tail}", ("sum of the 53 convolutions and the fc layer; pooling, batch norm, ReLU and "
                                          "residual adds are not modelled")
    if table.model == "bert-base":
        return f"bert-base.model.{tail}", ("12 x the encoder layer's matmuls; embeddings, softmax, layer norm, GELU "
                                           "and pooler are not modelled")
    return f"{table.model}.conv-layers.{tail}", (f"sum of the {len(layers)} convolutions; fully connected layers, "
                                                 "pooling, normalisation and ReLU are not modelled")
