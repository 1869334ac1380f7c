"""How NeuSight's names map onto mtap's hardware ids, workloads and case keys.

Hardware. NeuSight names a GPU by the string PyTorch reports, with spaces as underscores. Only
``NVIDIA_H100_80GB_HBM3`` is a GPU that mtap catalogues (``H100-SXM5-80GB``: "H100 80GB HBM3" is
the SXM5 part; the PCIe H100 has HBM2e, and NeuSight's config says 132 SMs). NeuSight has **no**
A100-SXM4-80GB: its A100s are PCIe 40 GB, SXM4 40 GB and PCIe 80 GB, whose memory bandwidth
(1,555 / 1,555 / 1,935 GB/s) and power limits differ from the SXM4 80 GB (2,039 GB/s) that mtap
catalogues, so they are not mapped onto it. Every GPU mtap does not catalogue keeps NeuSight's own
name as its hardware id (``NVIDIA_A100-PCIE-40GB``, ``Tesla_V100-PCIE-32GB``, ...) with
``parameters.hardware_in_catalog = false``; nothing is added to data/hardware/hardware.json.

Workloads. NeuSight's artifact has no BERT-base (W4) and no GPT-2 small (W7) label. Its models
are recorded under the workload of their architecture family, with the real model in the case
key and in ``parameters`` and ``parameters.workload_fit = "family"``: BERT-large -> W4 (BERT
encoder); GPT-2 large, NeuSight's "GPT-3 XL" and "GPT-3 2.7B" (both GPT2LMHeadModel configs) and
OPT-1.3B (decoder-only causal LM) -> W7. The Switch Transformer (encoder-decoder mixture of
experts) fits no mtap workload: its pairs are skipped and counted.

Attention. NeuSight builds every model with ``attn_implementation="eager"`` (``neusight/Tracing/
trace.py`` ``get_model``: unfused matmul, scale, mask, softmax, matmul), for its predictions (the
traced graph) and its labels (``measure_e2e``) alike, in every mode (inference, training,
torch.compile, distributed). Every key therefore ends in ``.eager-attn`` (:data:`ATTENTION_SUFFIX`)
and every case has ``parameters.attention = "eager"``: it pairs only with a measurement of that
computation (groundtruth ``--attention eager``), never with one using fused SDPA attention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: NeuSight device folder -> mtap hardware id, for the GPUs mtap catalogues.
CATALOGUED = {"NVIDIA_H100_80GB_HBM3": "H100-SXM5-80GB"}

#: NeuSight model (config file stem) -> (name used in case keys, workload, architecture family).
MODELS = {
    "bert": ("bert-base", "W4", "exact"),
    "bert_large": ("bert-large", "W4", "family"),
    "gpt2": ("gpt2", "W7", "exact"),
    "gpt2_large": ("gpt2-large", "W7", "family"),
    "gpt2_med": ("gpt2-medium", "W7", "family"),
    "gpt2_xl": ("gpt2-xl", "W7", "family"),
    "gpt3_xl": ("gpt3-xl", "W7", "family"),
    "gpt3_27": ("gpt3-2.7b", "W7", "family"),
    "gpt3_13": ("gpt3-13b", "W7", "family"),
    "gpt3_67": ("gpt3-6.7b", "W7", "family"),
    "opt_13": ("opt-1.3b", "W7", "family"),
}

#: Models NeuSight evaluates that no mtap workload fits (counted as skipped).
UNMAPPED_MODELS = {
    "switchxl4": "encoder-decoder mixture-of-experts (Switch Transformer): no mtap workload",
    "switch4": "encoder-decoder mixture-of-experts (Switch Transformer): no mtap workload",
}

#: The attention implementation of every model NeuSight traces and measures, and the key suffix naming it.
ATTENTION = "eager"
ATTENTION_SUFFIX = ".eager-attn"

#: The four methods of NeuSight's artifact; only "neusight" is NeuSight's own prediction.
METHODS = ("neusight", "roofline", "micro", "habitat")

TAG = re.compile(
    r"^(?P<model>[a-z0-9_]+)-(?P<mode>inf|train)-(?P<seq>[0-9]+)-(?P<batch>[0-9]+)(?:-(?P<variant>fusion|dp[0-9]+|tp[0-9]+|pp[0-9]+_[0-9]+))?$"
)


@dataclass(frozen=True)
class Tag:
    """One NeuSight configuration tag, ``<model>-<inf|train>-<seqlen>-<batch>[-variant]``."""

    text: str
    model: str
    mode: str
    seq_len: int
    batch: int
    variant: str

    @property
    def gpus(self) -> int:
        m = re.match(r"^(?:dp|tp|pp)([0-9]+)", self.variant)
        return int(m.group(1)) if m else 1

    def parameters(self) -> dict[str, Any]:
        """The case parameters this tag fixes (artifact and live cases alike); NeuSight computes in FP32, TF32 off."""
        return {
            "mode": "inference" if self.mode == "inf" else "training",
            "batch": self.batch,
            "seq_len": self.seq_len,
            "variant": self.variant or None,
            "gpus": self.gpus,
            "dtype": "fp32",
            "tf32": False,
            "attention": ATTENTION,
        }


def parse_tag(text: str) -> Tag | None:
    m = TAG.match(text)
    if not m:
        return None
    return Tag(text, m["model"], m["mode"], int(m["seq"]), int(m["batch"]), m["variant"] or "")


def hardware_id(device: str) -> tuple[str, bool]:
    """(mtap hardware id, whether mtap catalogues it) for a NeuSight device folder name."""
    if device in CATALOGUED:
        return CATALOGUED[device], True
    return device, False


def case_key(tag: Tag) -> str | None:
    """Cross-tool join key (schemas/README.md) + ``.eager-attn``; None for models no workload fits."""
    key = _key(tag)
    return None if key is None else key + ATTENTION_SUFFIX


def _key(tag: Tag) -> str | None:
    if tag.model not in MODELS:
        return None
    name = MODELS[tag.model][0]
    seq = f"s{tag.seq_len}"
    v = tag.variant
    if tag.mode == "inf":
        scope = "model-compiled" if v == "fusion" else "model"
        return f"{name}.{scope}.b{tag.batch}.{seq}.fp32"
    if not v:
        return f"{name}.train-step.b{tag.batch}.{seq}.fp32"
    m = re.match(r"^(dp|tp|pp)([0-9]+)(?:_([0-9]+))?$", v)
    assert m, v
    kind, n, micro = m.group(1), int(m.group(2)), m.group(3)
    if kind == "dp":  # NeuSight's batch is global; the ddp-step key carries the batch per GPU
        return f"{name}.ddp-step.n{n}.b{tag.batch // n}.{seq}.fp32"
    if kind == "tp":
        return f"{name}.tp-step.n{n}.b{tag.batch}.{seq}.fp32"
    return f"{name}.pp-step.n{n}.mb{micro}.b{tag.batch}.{seq}.fp32"
