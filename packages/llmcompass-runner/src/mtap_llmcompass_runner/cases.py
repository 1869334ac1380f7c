"""The case matrix: exactly the keys our GPU ground truth measured (data/evaluation/groundtruth/h100-x1
and h200-x1), the same keys the GenZ runner uses, so a cross-tool table joins them.

* W5 ``llama2-7b.prefill.b1.t{128,256,512,1024,2048}.fp16``: one forward pass over ``t`` tokens,
  LM head on the last token (the measurement's ``logits: last-token``)
* W5 ``llama2-7b.decode.b{1,2,4,8,16,32}.kv{512,1024,2048}.fp16``: one decode step, each sequence
  with ``kv`` cached tokens (the new token attends to kv+1 entries, as measured)
* W7 ``gpt2.model.b{1,8}.s{128,512}.{fp32,fp16}``: GPT2LMHeadModel forward (LM head on every token)
* W4 ``bert-base.model.b{1,8}.s{128,512}.{fp32,fp16}``: BertModel forward (pooler, no LM head)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

HARDWARE = ("H100-SXM5-80GB", "H200-SXM-141GB")
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_KV = (512, 1024, 2048)
TRANSFORMER_BATCHES = (1, 8)
TRANSFORMER_SEQS = (128, 512)
TRANSFORMER_DTYPES = ("fp32", "fp16")

#: our model definitions (the ground truth's case parameters)
MODELS: dict[str, dict[str, Any]] = {
    "llama2-7b": {"layers": 32, "hidden": 4096, "heads": 32, "ffn": 11008, "vocab": 32000},
    "gpt2": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 50257},
    "bert-base": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 30522},
}


@dataclass(frozen=True)
class Case:
    key: str
    workload: str
    hardware: str
    model: str
    scope: str  # prefill | decode | model
    batch: int
    dtype: str
    tokens: int | None = None  # prefill tokens
    kv: int | None = None  # decode: cached tokens per sequence
    seq: int | None = None  # gpt2/bert sequence length

    @property
    def id(self) -> str:
        return f"{self.hardware}:{self.key}"

    def parameters(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model, "scope": self.scope, "batch": self.batch, "dtype": self.dtype}
        for name in ("tokens", "kv", "seq"):
            if getattr(self, name) is not None:
                p[name] = getattr(self, name)
        return p

    def planned(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "workload": self.workload, "hardware": self.hardware, "parameters": self.parameters()}


def hardware_cases(hw: str) -> list[Case]:
    out: list[Case] = []
    for t in PREFILL_TOKENS:
        out.append(Case(f"llama2-7b.prefill.b1.t{t}.fp16", "W5", hw, "llama2-7b", "prefill", 1, "fp16", tokens=t))
    for b in DECODE_BATCHES:
        for kv in DECODE_KV:
            out.append(Case(f"llama2-7b.decode.b{b}.kv{kv}.fp16", "W5", hw, "llama2-7b", "decode", b, "fp16", kv=kv))
    for model, workload in (("gpt2", "W7"), ("bert-base", "W4")):
        for b in TRANSFORMER_BATCHES:
            for s in TRANSFORMER_SEQS:
                for d in TRANSFORMER_DTYPES:
                    out.append(Case(f"{model}.model.b{b}.s{s}.{d}", workload, hw, model, "model", b, d, seq=s))
    return out


def plan(hardware: tuple[str, ...] = HARDWARE) -> list[Case]:
    return [c for hw in hardware for c in hardware_cases(hw)]


def select(cases: list[Case], include: list[str] | None = None, exclude: list[str] | None = None) -> list[Case]:
    """Cases whose key matches an ``include`` glob (all if none) and no ``exclude`` glob, in plan order."""
    return [
        c
        for c in cases
        if (not include or any(fnmatch.fnmatchcase(c.key, g) for g in include))
        and not any(fnmatch.fnmatchcase(c.key, g) for g in (exclude or []))
    ]
