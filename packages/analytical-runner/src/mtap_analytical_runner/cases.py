"""The case matrix: the grid the groundtruth package measures, for A100, H100 and H200.

Keys follow schemas/README.md (``<model>.<scope>.b<batch>[.s<seq>][.kv<kv>][.t<tokens>].<dtype>``):

* W1  ``resnet50.conv1.b{1,32}.{dtype}``: ResNet-50 conv1 (3->64, 7x7, stride 2, 224x224)
* W1  ``resnet50.layer.<layer>.b{1,32}.{dtype}``: every Conv2d and Linear of ResNet-50, the
  module path with ``.`` -> ``-`` (``layer1-0-conv1``, ``layer1-0-downsample-0``, ``fc``)
* W1  ``resnet50.model.b{1,32}.{dtype}``: the whole network, 224x224
* W4  ``bert-base.model.b{1,8}.s{128,512}.{dtype}``; W7 ``gpt2.model.b{1,8}.s{128,512}.{dtype}``
* W5  ``llama2-7b.prefill.b1.t{128..2048}.fp16`` and ``llama2-7b.decode.b{1..32}.kv{512..2048}.fp16``
* W8  ``mobilenet-v2.model.b{1,8,32,128}.{dtype}`` and ``mobilenet-v2.layer.<layer>.b1.{dtype}``
  (every Conv2d and Linear, torchvision's module names); W9 the same for ``vgg16``

``dtype`` is fp32, tf32 or fp16 for ResNet-50, BERT and GPT-2 (tf32: fp32 tensors, matmuls and
convolutions at the TF32 tensor-core peak), fp16 for Llama.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .models import Shape, cnn_layer_names, layer_slug, resnet50_layer_names

HARDWARE = ("A100-SXM4-80GB", "H100-SXM5-80GB", "H200-SXM-141GB")
PRECISIONS = ("fp32", "tf32", "fp16")
RESNET_BATCHES = (1, 32)
TRANSFORMER_BATCHES = (1, 8)
TRANSFORMER_SEQS = (128, 512)
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_KV = (512, 1024, 2048)
#: W8 MobileNet-V2 and W9 VGG-16: whole model at these batches, their layers at batch 1 (as groundtruth)
EDGE_CNNS = (("mobilenet-v2", "W8"), ("vgg16", "W9"))
CNN_BATCHES = (1, 8, 32, 128)


@dataclass(frozen=True)
class Case:
    key: str
    workload: str
    hardware: str
    precision: str  # fp32 | tf32 | fp16: the key's dtype and the peak the FLOPs use
    shape: Shape  # what is traced (tf32 traces fp32 tensors)
    layer: str | None = None  # module path for per-layer cases

    @property
    def id(self) -> str:
        return f"{self.hardware}:{self.key}"

    def parameters(self) -> dict[str, Any]:
        s = self.shape
        p: dict[str, Any] = {"model": s.model, "scope": "layer" if self.layer else s.scope, "batch": s.batch, "dtype": self.precision}
        for name in ("seq", "tokens", "kv"):
            if getattr(s, name) is not None:
                p[name] = getattr(s, name)
        if self.layer:
            p["layer"] = self.layer
        return p

    def planned(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "workload": self.workload, "hardware": self.hardware, "parameters": self.parameters()}


def _tensor_dtype(precision: str) -> str:
    return "fp32" if precision == "tf32" else precision


def model_cases(hardware: str) -> list[Case]:
    out: list[Case] = []
    for b in RESNET_BATCHES:
        for p in PRECISIONS:
            shape = Shape("resnet50", "model", b, _tensor_dtype(p))
            out.append(Case(f"resnet50.conv1.b{b}.{p}", "W1", hardware, p, shape, layer="conv1"))
    for b in RESNET_BATCHES:
        for p in PRECISIONS:
            out.append(Case(f"resnet50.model.b{b}.{p}", "W1", hardware, p, Shape("resnet50", "model", b, _tensor_dtype(p))))
    for model, workload in (("bert-base", "W4"), ("gpt2", "W7")):
        for b in TRANSFORMER_BATCHES:
            for s in TRANSFORMER_SEQS:
                for p in PRECISIONS:
                    shape = Shape(model, "model", b, _tensor_dtype(p), seq=s)
                    out.append(Case(f"{model}.model.b{b}.s{s}.{p}", workload, hardware, p, shape))
    for t in PREFILL_TOKENS:
        out.append(Case(f"llama2-7b.prefill.b1.t{t}.fp16", "W5", hardware, "fp16", Shape("llama2-7b", "prefill", 1, "fp16", tokens=t)))
    for b in DECODE_BATCHES:
        for kv in DECODE_KV:
            out.append(Case(f"llama2-7b.decode.b{b}.kv{kv}.fp16", "W5", hardware, "fp16", Shape("llama2-7b", "decode", b, "fp16", kv=kv)))
    for b in RESNET_BATCHES:
        for p in PRECISIONS:
            shape = Shape("resnet50", "model", b, _tensor_dtype(p))
            for name in resnet50_layer_names():
                out.append(Case(f"resnet50.layer.{layer_slug(name)}.b{b}.{p}", "W1", hardware, p, shape, layer=name))
    for model, workload in EDGE_CNNS:
        for b in CNN_BATCHES:
            for p in PRECISIONS:
                out.append(Case(f"{model}.model.b{b}.{p}", workload, hardware, p, Shape(model, "model", b, _tensor_dtype(p))))
        for p in PRECISIONS:
            shape = Shape(model, "model", 1, _tensor_dtype(p))
            for name in cnn_layer_names(model):
                out.append(Case(f"{model}.layer.{layer_slug(name)}.b1.{p}", workload, hardware, p, shape, layer=name))
    return out


def plan(hardware: tuple[str, ...] = HARDWARE) -> list[Case]:
    return [c for hw in hardware for c in model_cases(hw)]


def select(cases: list[Case], include: list[str] | None = None, exclude: list[str] | None = None) -> list[Case]:
    """Cases whose key matches an ``include`` glob (all if none) and no ``exclude`` glob, in plan order."""
    return [
        c for c in cases
        if (not include or any(fnmatch.fnmatchcase(c.key, g) for g in include))
        and not any(fnmatch.fnmatchcase(c.key, g) for g in (exclude or []))
    ]


def shape_id(shape: Shape) -> str:
    """A unique, readable id of one traced computation (the unit of work)."""
    sizes = "".join(f".{p}{v}" for p, v in (("s", shape.seq), ("t", shape.tokens), ("kv", shape.kv)) if v is not None)
    return f"{shape.model}.{shape.scope}.b{shape.batch}{sizes}.{shape.dtype}"
