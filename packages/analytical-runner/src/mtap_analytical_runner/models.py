"""The model definitions that are counted, all built on the meta device (no weights, no memory).

* ResNet-50 (W1), MobileNet-V2 (W8) and VGG-16 (W9): the kit's one definition
  (``mtap_schemas.cnn``, shared with groundtruth and nnmeter-runner): plain-PyTorch copies of
  ``torchvision.models.resnet50`` (v1.5; 25,557,032 parameters), ``mobilenet_v2`` (3,504,872)
  and ``vgg16`` (configuration D; 138,357,544) with torchvision's module names, so their layer
  keys are the groundtruth package's (``mobilenet-v2.layer.features-1-conv-0-0``,
  ``vgg16.layer.classifier-6``). ResNet-50 runs torchvision's forward order (shortcut after the
  main path, ``out += identity``), as these predictions always have; groundtruth measured the
  ``shortcut_first`` variant (same values and operators, another order).
* BERT-base: ``transformers.BertModel`` (encoder + pooler, no task head) from ``BertConfig()``.
* GPT-2 small: ``transformers.GPT2LMHeadModel`` (tied LM head, logits for every position) from
  ``GPT2Config()``.
* Llama-2-7B: ``transformers.LlamaForCausalLM`` from Llama-2-7B's published config. Prefill
  computes logits for the last token only (``logits_to_keep=1``, as serving engines do); a
  decode step appends one token per sequence to a ``StaticCache`` that already holds ``kv``
  tokens (the write is an ``index_copy_`` of the new K/V) and attends to ``kv + 1`` entries.

Every model runs in eval mode under ``torch.no_grad``; fp16 models are ``.half()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import torch
from torch import nn

from mtap_schemas import cnn
from mtap_schemas.cnn import layer_slug  # noqa: F401  (re-exported: cases, tests)

from .trace import Trace, trace

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}

# --------------------------------------------------------------------------- the CNNs (mtap_schemas.cnn)


def _on_meta(model: str, dtype: torch.dtype) -> nn.Module:
    """The kit's definition in torchvision's forward order (what these predictions traced)."""
    with torch.device("meta"):
        return cnn.build(model).eval().to(dtype)


def resnet50(dtype: torch.dtype = torch.float32) -> nn.Module:
    return _on_meta("resnet50", dtype)


def mobilenet_v2(dtype: torch.dtype = torch.float32) -> nn.Module:
    return _on_meta("mobilenet-v2", dtype)


def vgg16(dtype: torch.dtype = torch.float32) -> nn.Module:
    return _on_meta("vgg16", dtype)


#: The image models (224x224 input) by case-key name: W1 ResNet-50, W8 MobileNet-V2, W9 VGG-16.
CNN_BUILDERS: dict[str, Callable[[torch.dtype], nn.Module]] = {"resnet50": resnet50, "mobilenet-v2": mobilenet_v2, "vgg16": vgg16}


@cache
def cnn_layer_names(model: str) -> tuple[str, ...]:
    """Every Conv2d and Linear of an image model (its per-layer cases), in definition order."""
    return cnn.layer_names(model)


def resnet50_layer_names() -> tuple[str, ...]:
    """Every Conv2d and Linear of ResNet-50 (the per-layer cases), in definition order."""
    return cnn_layer_names("resnet50")


# --------------------------------------------------------------------------- transformers


def bert_base(dtype: torch.dtype) -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(attn_implementation="sdpa")  # bert-base-uncased: 12 x 768, 12 heads, 3072
    with torch.device("meta"):
        return BertModel(cfg, add_pooling_layer=True).eval().to(dtype)


def gpt2_small(dtype: torch.dtype) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(attn_implementation="sdpa")  # gpt2: 12 x 768, 12 heads, vocab 50257
    with torch.device("meta"):
        return GPT2LMHeadModel(cfg).eval().to(dtype)


def llama2_7b_config(layers: int = 32):
    from transformers import LlamaConfig

    return LlamaConfig(  # meta-llama/Llama-2-7b-hf config.json
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )


def llama2_7b(dtype: torch.dtype, layers: int = 32) -> nn.Module:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(llama2_7b_config(layers)).eval().to(dtype)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Shape:
    """One computation to trace: model, scope (model | prefill | decode) and its sizes."""

    model: str  # resnet50 | mobilenet-v2 | vgg16 | bert-base | gpt2 | llama2-7b
    scope: str
    batch: int
    dtype: str  # fp32 | fp16 (tf32 cases reuse the fp32 trace)
    seq: int | None = None
    tokens: int | None = None
    kv: int | None = None


def _ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long, device="meta")


_BUILDERS: dict[str, Callable[[torch.dtype], nn.Module]] = {
    "resnet50": resnet50,
    "mobilenet-v2": mobilenet_v2,
    "vgg16": vgg16,
    "bert-base": bert_base,
    "gpt2": gpt2_small,
    "llama2-7b": llama2_7b,
}


@lru_cache(maxsize=8)
def build(model: str, dtype: str) -> nn.Module:
    return _BUILDERS[model](DTYPES[dtype])


def run_shape(shape: Shape, model: nn.Module | None = None) -> Trace:
    """Trace one computation; ``model`` overrides the standard definition (tests use small ones)."""
    dtype = DTYPES[shape.dtype]
    m = model if model is not None else build(shape.model, shape.dtype)
    if shape.model in CNN_BUILDERS:
        x = torch.empty(shape.batch, 3, 224, 224, dtype=dtype, device="meta")
        return trace(m, lambda: m(x))
    if shape.model in ("bert-base", "gpt2"):
        ids = _ids(shape.batch, shape.seq)
        # use_cache=True keeps transformers' mask code off its data-dependent packed-sequence
        # check (which cannot run on meta tensors); the first cache write costs no copy.
        kwargs: dict[str, Any] = {} if shape.model == "bert-base" else {"use_cache": True}
        return trace(m, lambda: m(input_ids=ids, **kwargs))
    if shape.model == "llama2-7b" and shape.scope == "prefill":
        ids = _ids(shape.batch, shape.tokens)
        return trace(m, lambda: m(input_ids=ids, use_cache=True, logits_to_keep=1))
    if shape.model == "llama2-7b" and shape.scope == "decode":
        from transformers import StaticCache

        cache = StaticCache(config=m.config, max_cache_len=shape.kv + 1)
        heads = m.config.num_key_value_heads
        head_dim = m.config.hidden_size // m.config.num_attention_heads
        past = torch.empty(shape.batch, heads, shape.kv, head_dim, dtype=dtype, device="meta")
        positions = torch.arange(shape.kv, device="meta")
        for layer in range(m.config.num_hidden_layers):  # fill the cache outside the trace
            cache.update(past, past, layer, {"cache_position": positions})
        ids = _ids(shape.batch, 1)
        step = torch.tensor([shape.kv], device="meta")
        return trace(m, lambda: m(input_ids=ids, cache=cache, use_cache=True, cache_position=step))
    raise ValueError(f"unknown model/scope {shape.model}/{shape.scope}")
