"""The case matrix: which computations are measured, under which join keys.

Keys follow schemas/README.md: ``<model>.<scope>.b<batch>[.s<seq>][.kv<kv>][.t<tokens>].<dtype>``
for compute, ``<collective>.n<npus>.<size>`` for communication and
``resnet50.ddp-step.n<npus>.b<batch-per-gpu>.fp32`` for a data-parallel training step.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from .models import cnn_layers, layer_slug

SUITES = ("single", "multi", "neusight", "floor", "replay")
#: --attention: sdpa = the plain-PyTorch models (F.scaled_dot_product_attention, keys as before);
#: eager = the Hugging Face models NeuSight traces, attn_implementation="eager" (mtap_groundtruth.hf),
#: keys = the SDPA key + EAGER_SUFFIX (the key names the computation; the aggregate pairs on it).
ATTENTIONS = ("sdpa", "eager")
EAGER_SUFFIX = ".eager-attn"
#: suites with transformer cases whose attention --attention chooses (single: its W4/W7 cases)
ATTENTION_SUITES = ("single", "neusight")
DTYPES = ("fp32", "fp16")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
SIZES = {"1mib": 1 << 20, "64mib": 64 << 20, "1gib": 1 << 30}

#: Llama-2-7B serving grid of the issue: prefill 128..2048 tokens, decode batch 1..32 x KV 512..2048.
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_KV = (512, 1024, 2048)

#: W8 MobileNet-V2 and W9 VGG-16 (224x224): whole-model batch sweep; their layers at batch 1.
EDGE_CNNS = (("mobilenet-v2", "W8"), ("vgg16", "W9"))
CNN_BATCHES = (1, 8, 32, 128)

#: NeuSight's H100 inference labels (scripts/asplos/label/NVIDIA_H100_80GB_HBM3, FP32, TF32 off):
#: (their tag, our model name, batch, sequence).
NEUSIGHT = (
    ("bert_large-inf-512-8", "bert-large", 8, 512),
    ("bert_large-inf-512-16", "bert-large", 16, 512),
    ("gpt2_large-inf-1024-4", "gpt2-large", 4, 1024),
    ("gpt2_large-inf-1024-8", "gpt2-large", 8, 1024),
    ("opt_13-inf-2048-2", "opt-1.3b", 2, 2048),
    ("opt_13-inf-2048-8", "opt-1.3b", 8, 2048),
    ("gpt3_xl-inf-2048-2", "gpt3-xl", 2, 2048),
    ("gpt3_xl-inf-2048-8", "gpt3-xl", 8, 2048),
    ("gpt3_27-inf-2048-2", "gpt3-2.7b", 2, 2048),
    ("gpt3_27-inf-2048-8", "gpt3-2.7b", 8, 2048),
)


@dataclass(frozen=True)
class Case:
    key: str
    workload: str
    suite: str
    kind: str  # conv1 | layer | resnet50 | cnn | transformer | prefill | decode | collective | ddp
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def id(self) -> str:
        return self.key

    def case_id(self, hardware: str) -> str:
        """The document's case id: ``<hardware>:<key>``, unique across documents of the same
        tool (the aggregate keeps one case per tool and id; the key alone repeats per GPU)."""
        return f"{hardware}:{self.key}"

    def planned(self, hardware: str) -> dict[str, Any]:
        return {"id": self.case_id(hardware), "key": self.key, "workload": self.workload, "hardware": hardware, "suite": self.suite, "kind": self.kind, "parameters": dict(sorted(self.params.items()))}


def _eager(case: Case) -> Case:
    """The same configuration as NeuSight traces it: key + EAGER_SUFFIX, parameter attention eager."""
    return Case(case.key + EAGER_SUFFIX, case.workload, case.suite, case.kind, dict(case.params) | {"attention": "eager"})


def single_cases(attention: str = "sdpa") -> list[Case]:
    """The single suite; with ``attention`` eager only its W4/W7 transformer cases, keys suffixed."""
    if attention == "eager":
        return [_eager(c) for c in single_cases() if c.kind == "transformer"]
    out: list[Case] = []
    for b in (1, 32):
        for dt in DTYPES:
            out.append(Case(f"resnet50.conv1.b{b}.{dt}", "W1", "single", "conv1", {"model": "resnet50", "batch": b, "dtype": dt, "layer": "conv1"}))
    for b in (1, 32):
        for dt in DTYPES:
            out.append(Case(f"resnet50.model.b{b}.{dt}", "W1", "single", "resnet50", {"model": "resnet50", "batch": b, "dtype": dt, "image": 224}))
    for model, workload in (("bert-base", "W4"), ("gpt2", "W7")):
        for b in (1, 8):
            for s in (128, 512):
                for dt in DTYPES:
                    out.append(Case(f"{model}.model.b{b}.s{s}.{dt}", workload, "single", "transformer",
                                    {"model": model, "batch": b, "seq": s, "dtype": dt, "attention": "sdpa"}))
    for t in PREFILL_TOKENS:
        out.append(Case(f"llama2-7b.prefill.b1.t{t}.fp16", "W5", "single", "prefill", {"model": "llama2-7b", "batch": 1, "tokens": t, "dtype": "fp16", "attention": "sdpa"}))
    for b in DECODE_BATCHES:
        for kv in DECODE_KV:
            out.append(Case(f"llama2-7b.decode.b{b}.kv{kv}.fp16", "W5", "single", "decode", {"model": "llama2-7b", "batch": b, "kv": kv, "dtype": "fp16", "attention": "sdpa"}))
    for model, workload in EDGE_CNNS:
        for b in CNN_BATCHES:
            for dt in DTYPES:
                out.append(Case(f"{model}.model.b{b}.{dt}", workload, "single", "cnn", {"model": model, "batch": b, "dtype": dt, "image": 224}))
    layers = cnn_layers("resnet50", 1)
    for b in (1, 32):
        for dt in DTYPES:
            for name, _, _ in layers:
                out.append(Case(f"resnet50.layer.{layer_slug(name)}.b{b}.{dt}", "W1", "single", "layer", {"model": "resnet50", "batch": b, "dtype": dt, "layer": name}))
    for model, workload in EDGE_CNNS:
        for dt in DTYPES:
            for name, _, _ in cnn_layers(model, 1):
                out.append(Case(f"{model}.layer.{layer_slug(name)}.b1.{dt}", workload, "single", "layer", {"model": model, "batch": 1, "dtype": dt, "layer": name}))
    return out


#: suite floor (mtap_groundtruth.floor): kernels and modes; the empty kernel also as one synchronised launch
FLOOR_KERNELS = ("empty-kernel", "fill-1", "add-1", "mm-16")
FLOOR_MODES = ("eager", "graph")


def floor_cases() -> list[Case]:
    out = []
    for kernel in FLOOR_KERNELS:
        for mode in FLOOR_MODES:
            out.append(Case(f"floor.{kernel}.{mode}", "W1", "floor", "floor", {"kernel": kernel, "mode": mode}))
        if kernel == "empty-kernel":
            out.append(Case(f"floor.{kernel}.eager-sync", "W1", "floor", "floor", {"kernel": kernel, "mode": "eager-sync"}))
    return out


def neusight_cases(attention: str = "sdpa") -> list[Case]:
    cases = [
        Case(f"{model}.model.b{b}.s{s}.fp32", "W4" if model.startswith("bert") else "W7", "neusight", "transformer",
             {"model": model, "batch": b, "seq": s, "dtype": "fp32", "neusight_tag": tag, "attention": "sdpa"})
        for tag, model, b, s in NEUSIGHT
    ]
    return [_eager(c) for c in cases] if attention == "eager" else cases


def npus_for(gpus: int) -> tuple[list[int], list[int]]:
    """(collective group sizes, DDP group sizes) for a host of ``gpus`` GPUs: powers of two."""
    powers = [n for n in (1, 2, 4, 8, 16) if n <= gpus]
    return [n for n in powers if n >= 2], powers


def multi_cases(gpus: int, ddp_batch: int = 32) -> list[Case]:
    coll_ns, ddp_ns = npus_for(gpus)
    out: list[Case] = []
    for n in coll_ns:
        for coll in COLLECTIVES:
            for size_name, size in SIZES.items():
                out.append(Case(f"{coll}.n{n}.{size_name}", "W6", "multi", "collective", {"collective": coll, "npus": n, "size_bytes": size, "dtype": "fp32"}))
    for n in ddp_ns:
        out.append(Case(f"resnet50.ddp-step.n{n}.b{ddp_batch}.fp32", "W3", "multi", "ddp", {"model": "resnet50", "npus": n, "batch_per_gpu": ddp_batch, "dtype": "fp32", "optimizer": "sgd-momentum"}))
    return out


def plan(suite: str, gpus: int = 2, attention: str = "sdpa") -> list[Case]:
    if attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r} (one of {', '.join(ATTENTIONS)})")
    if attention != "sdpa" and suite not in ATTENTION_SUITES:
        raise ValueError(f"suite {suite} has no transformer cases whose attention --attention chooses "
                         f"(--attention {attention} is for suites {' and '.join(ATTENTION_SUITES)})")
    if suite == "single":
        return single_cases(attention)
    if suite == "neusight":
        return neusight_cases(attention)
    if suite == "multi":
        return multi_cases(gpus)
    if suite == "floor":
        return floor_cases()
    if suite == "replay":
        raise ValueError("suite replay takes its cases from a batch plan (--plan FILE)")
    raise ValueError(f"unknown suite {suite!r}")


def select(cases: list[Case], include: list[str] | None, exclude: list[str] | None, limit: int | None) -> list[Case]:
    """Keep cases whose key matches any ``include`` glob and no ``exclude`` glob, then the first ``limit``."""
    kept = [
        c for c in cases
        if (not include or any(fnmatch.fnmatchcase(c.key, p) for p in include))
        and not any(fnmatch.fnmatchcase(c.key, p) for p in (exclude or []))
    ]
    return kept[:limit] if limit is not None else kept
