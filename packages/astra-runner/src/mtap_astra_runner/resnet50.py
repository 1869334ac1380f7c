"""ResNet-50's layers (torchvision ``resnet50``, v1.5), read from the repository's layer table
``data/workloads/layers/resnet50.layers.json`` (schema ``layers`` v1).

The table gives every Conv2d and the fc layer as a 7-D convolution (N, K, C, P, Q, R, S) in
forward order, named like torchvision's module paths with ``.`` -> ``-`` (``conv1``,
``layer1-0-conv1``, ``layer1-0-downsample-0``, ``fc``). What a data-parallel step needs beyond
the shapes is ResNet-50's structure, stated here: its convolutions have no bias and each is
followed by a BatchNorm2d whose weight and bias are counted with the conv (the gradients DDP
all-reduces); the fc layer (the row without ``input_hw``) is a Linear with a bias. The sum
is torchvision's 25,557,032 parameters (tested through the gradient bytes of a step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mtap_schemas as ms

MODEL = "resnet50"
TABLE = Path("workloads") / "layers" / f"{MODEL}.layers.json"


@dataclass(frozen=True)
class Layer:
    name: str  #: the table's name: torchvision's module path, ``.`` -> ``-``
    kind: str  #: "conv" or "linear"
    cin: int  #: C
    cout: int  #: K
    kernel: int  #: R (= S)
    out_hw: int  #: P (= Q); 1 for fc
    in_hw: int  #: input height = width; 1 for fc

    @property
    def params(self) -> int:
        if self.kind == "linear":
            return self.cin * self.cout + self.cout
        return self.cin * self.cout * self.kernel * self.kernel + 2 * self.cout  # + its BatchNorm

    def macs(self, batch: int) -> int:
        return batch * self.cout * self.out_hw * self.out_hw * self.cin * self.kernel * self.kernel

    def activation_elements(self, batch: int) -> tuple[int, int]:
        """(input, output) element counts of one forward call."""
        return batch * self.cin * self.in_hw * self.in_hw, batch * self.cout * self.out_hw * self.out_hw

    @property
    def slug(self) -> str:
        """Case-key form of the name (schemas/README.md): ``layer1-0-conv1``."""
        return self.name


def table_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / TABLE


def layers(data_dir: str | os.PathLike[str]) -> tuple[Layer, ...]:
    """The layer table under ``data_dir``; a missing or invalid file raises one-line ``SchemaError``."""
    path = table_path(data_dir)
    doc = ms.read(path, "layers")
    if doc["model"] != MODEL:
        raise ms.SchemaError(f"{path}: field model: got {doc['model']!r}, expected {MODEL!r}")
    out = []
    for i, row in enumerate(doc["layers"]):
        s = row["shape"]
        dims = {d: s[d] for d in ("K", "C", "P", "Q", "R", "S")}
        bad = [d for d, v in dims.items() if not isinstance(v, int)]
        if bad or s["N"] != "batch" or dims["P"] != dims["Q"] or dims["R"] != dims["S"]:
            raise ms.SchemaError(f"{path}: field layers[{i}].shape: expected N 'batch', numbers K C P Q R S, "
                                 f"P = Q and R = S (a square ResNet-50 layer)")
        linear = "input_hw" not in row
        out.append(Layer(row["name"], "linear" if linear else "conv", dims["C"], dims["K"], dims["R"], dims["P"],
                         1 if linear else int(row["input_hw"])))
    return tuple(out)
