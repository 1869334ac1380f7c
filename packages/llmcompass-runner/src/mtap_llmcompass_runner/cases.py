"""The case matrix: exactly the keys our GPU ground truth measured (data/evaluation/groundtruth/h100-x1
and h200-x1), the same keys the GenZ runner uses, so a cross-tool table joins them.

* W5 ``llama2-7b.prefill.b1.t{128,256,512,1024,2048}.fp16``: one forward pass over ``t`` tokens,
  LM head on the last token (the measurement's ``logits: last-token``)
* W5 ``llama2-7b.decode.b{1,2,4,8,16,32}.kv{512,1024,2048}.fp16``: one decode step, each sequence
  with ``kv`` cached tokens (the new token attends to kv+1 entries, as measured)
* W7 ``gpt2.model.b{1,8}.s{128,512}.{fp32,fp16}``: GPT2LMHeadModel forward (LM head on every token)
* W4 ``bert-base.model.b{1,8}.s{128,512}.{fp32,fp16}``: BertModel forward (pooler, no LM head)

The matrix's dimensions, ``Case``, ``MODELS`` (our model definitions, the ground truth's case
parameters) and the planning are the LLM peers'
(``mtap_schemas.llmpeer``); ``hardware_cases`` is this runner's table of one GPU's cases.
"""

from __future__ import annotations

from mtap_schemas import llmpeer
from mtap_schemas.llmpeer import HARDWARE, MODELS, Case, select

__all__ = ["HARDWARE", "MODELS", "Case", "hardware_cases", "plan", "select"]


def hardware_cases(hw: str) -> list[Case]:
    out: list[Case] = []
    for t in llmpeer.PREFILL_TOKENS:
        out.append(Case(f"llama2-7b.prefill.b1.t{t}.fp16", "W5", hw, "llama2-7b", "prefill", 1, "fp16", tokens=t))
    for b in llmpeer.DECODE_BATCHES:
        for kv in llmpeer.DECODE_KV:
            out.append(Case(f"llama2-7b.decode.b{b}.kv{kv}.fp16", "W5", hw, "llama2-7b", "decode", b, "fp16", kv=kv))
    for model, workload in (("gpt2", "W7"), ("bert-base", "W4")):
        for b in llmpeer.TRANSFORMER_BATCHES:
            for s in llmpeer.TRANSFORMER_SEQS:
                for d in llmpeer.TRANSFORMER_DTYPES:
                    out.append(Case(f"{model}.model.b{b}.s{s}.{d}", workload, hw, model, "model", b, d, seq=s))
    return out


def plan(hardware: tuple[str, ...] = HARDWARE) -> list[Case]:
    return llmpeer.plan(hardware_cases, hardware)
