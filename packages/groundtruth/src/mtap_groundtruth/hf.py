"""The Hugging Face ``transformers`` models NeuSight traces and times, for ``--attention eager``.

NeuSight (commit 6945927, ``neusight/Tracing/trace.py`` ``get_model``) builds every model with
``attn_implementation="eager"`` from its JSON config (``AutoConfig.from_pretrained``), with random
weights, and for **inference** takes ``AutoModelForSequenceClassification`` for BERT (not the
``BertLMHeadModel`` its configs' ``architectures`` field names) and ``AutoModelForCausalLM`` for
GPT-2 and OPT; it calls ``model(input_ids)`` with no attention mask. Its ``setup.py`` pins
``transformers==4.38.1``, and that is the version measured here (:func:`require`), so the code
timed is the code NeuSight traced: unfused attention (matmul, scale, mask, softmax, matmul) as
written in ``modeling_bert.py`` / ``modeling_gpt2.py`` / ``modeling_opt.py`` of that release.

One departure, with the same computation: BERT is called with ``attention_mask`` = ones of shape
(batch, seq), the tensor ``BertModel.forward`` builds itself when none is given. Without it,
``warn_if_padding_and_no_attention_mask`` reads two token ids back to the host (``pad_token_id in
input_ids[...]``), a synchronisation that a CUDA graph cannot capture; NeuSight's FX trace skips
that check too. GPT-2 (no ``pad_token_id``) and OPT (no such check) get ``input_ids`` alone, as in
NeuSight. Token ids are random (the SDPA cases' ids), not NeuSight's ``torch.ones``: an embedding
lookup costs the same either way.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

#: NeuSight's pin (setup.py, commit 6945927); the only version measured.
TRANSFORMERS_VERSION = "4.38.1"
NEUSIGHT_COMMIT = "6945927"

_BERT = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "initializer_range": 0.02,
         "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "pad_token_id": 0,
         "type_vocab_size": 2, "vocab_size": 30522, "architectures": ["BertLMHeadModel"]}
_GPT2 = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1, "bos_token_id": 50256,
         "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
         "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
         "summary_type": "cls_index", "summary_use_proj": True,
         "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}}, "vocab_size": 50257}

_NS = f"NeuSight {NEUSIGHT_COMMIT} scripts/asplos/data/DLmodel_configs/"

#: model (case-key name) -> (where the config comes from, its contents). NeuSight's files are
#: scripts/asplos/data/DLmodel_configs/<file> at commit 6945927; NeuSight ships no GPT-2 small, so
#: "gpt2" is Hugging Face's gpt2 config (what neusight-runner's live mode gives NeuSight for W7).
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert-base": (_NS + "bert.json", _BERT | {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12}),
    "bert-large": (_NS + "bert_large.json", _BERT | {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24}),
    "gpt2": ("Hugging Face gpt2 config (NeuSight ships none; neusight-runner live mode gives NeuSight this one, its models/gpt2.json)",
             _GPT2 | {"n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024}),
    "gpt2-large": (_NS + "gpt2_large.json", _GPT2 | {"n_ctx": 1024, "n_embd": 1280, "n_head": 20, "n_layer": 36, "n_positions": 1024}),
    "gpt3-xl": (_NS + "gpt3_xl.json", _GPT2 | {"n_ctx": 2048, "n_embd": 3072, "n_head": 24, "n_layer": 24, "n_positions": 2048,
                                         "padded_vocab_size": 50257}),
    "gpt3-2.7b": (_NS + "gpt3_27.json", _GPT2 | {"n_ctx": 2048, "n_embd": 2560, "n_head": 32, "n_layer": 32, "n_positions": 2048}),
    "opt-1.3b": (_NS + "opt_13.json", {"_name_or_path": "facebook/opt-1.3b", "activation_dropout": 0.0, "activation_function": "relu",
                                 "architectures": ["OPTForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2,
                                 "do_layer_norm_before": True, "dropout": 0.1, "eos_token_id": 2, "ffn_dim": 8192,
                                 "hidden_size": 2048, "init_std": 0.02, "layerdrop": 0.0, "max_position_embeddings": 2048,
                                 "model_type": "opt", "num_attention_heads": 32, "num_hidden_layers": 24, "pad_token_id": 1,
                                 "prefix": "</s>", "vocab_size": 50272, "word_embed_proj_dim": 2048}),
}

#: ``--tiny``: the same classes, code paths and attention, small (CPU tests; never evaluation data).
_TINY = {
    "bert": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 512},
    "gpt2": {"n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 512, "n_inner": 128},
    "opt": {"hidden_size": 64, "word_embed_proj_dim": 64, "ffn_dim": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
            "vocab_size": 512},
}


class TransformersMissing(RuntimeError):
    """transformers is absent, or not the version NeuSight pins."""


def require() -> Any:
    """The ``transformers`` module, if it is NeuSight's version; else :class:`TransformersMissing` saying how to get it."""
    try:
        import transformers
    except ImportError:
        raise TransformersMissing(f"--attention eager measures the Hugging Face models NeuSight traces: install "
                                  f"transformers=={TRANSFORMERS_VERSION} (NeuSight's pin), e.g. pip install "
                                  f"'mtap-groundtruth[eager]'") from None
    if transformers.__version__ != TRANSFORMERS_VERSION:
        raise TransformersMissing(f"--attention eager: this Python has transformers {transformers.__version__}; NeuSight traces "
                                  f"with transformers=={TRANSFORMERS_VERSION} (its setup.py), the only version measured here")
    return transformers


def hf_config(name: str, tiny: bool = False) -> Any:
    """The transformers config NeuSight's ``AutoConfig.from_pretrained(<its JSON>)`` gives (``--tiny``: scaled down)."""
    transformers = require()
    fields = copy.deepcopy(CONFIGS[name][1])
    if tiny:
        fields.update(_TINY[fields["model_type"]])
    model_type = fields.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **fields)


def auto_class(model_type: str) -> Any:
    """NeuSight's choice for inference (trace.py ``get_model``, ``is_train`` false)."""
    transformers = require()
    if model_type == "bert":
        return transformers.AutoModelForSequenceClassification
    return transformers.AutoModelForCausalLM  # gpt2, opt


def build(name: str, dtype: torch.dtype, device: torch.device, tiny: bool = False, seed: int = 0) -> nn.Module:
    """NeuSight's inference model for ``name`` with eager attention and transformers' own random
    initialisation, built directly on ``device`` (``meta``: no memory, for FLOP counts)."""
    cfg = hf_config(name, tiny)
    if device.type != "meta":
        torch.manual_seed(seed)
    with torch.device(device):
        model = auto_class(cfg.model_type).from_config(cfg, attn_implementation="eager")
    if model.config._attn_implementation != "eager":  # pragma: no cover - transformers would have to ignore the argument
        raise RuntimeError(f"{type(model).__name__}: attn_implementation is {model.config._attn_implementation!r}, not eager")
    return model.to(dtype=dtype).eval()


def forward(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None) -> Any:
    """One inference call as NeuSight makes it (see the module docstring for BERT's mask)."""
    if mask is None:
        return model(ids)
    return model(input_ids=ids, attention_mask=mask)


def needs_mask(model: nn.Module) -> bool:
    """BERT: pass the all-ones mask BertModel would build (keeps its host-syncing pad check out)."""
    return model.config.model_type == "bert"


def definition(model: nn.Module) -> str:
    import transformers

    return f"transformers.{type(model).__name__} {transformers.__version__}"


def describe(model: nn.Module, name: str) -> dict[str, Any]:
    """Case parameters naming the computation."""
    c = model.config
    hidden = c.hidden_size
    ffn = getattr(c, "intermediate_size", None) or getattr(c, "ffn_dim", None) or getattr(c, "n_inner", None) or 4 * hidden
    causal_lm = c.model_type != "bert"
    return {
        "attention": "eager",
        "attn_implementation": c._attn_implementation,
        "definition": definition(model),
        "model_config": CONFIGS[name][0],
        "head": "lm (tied to the token embedding)" if causal_lm else f"sequence classification (pooler + {c.num_labels}-label classifier)",
        "inputs": "input_ids only, as NeuSight" if not needs_mask(model) else
                  "input_ids + attention_mask of ones (what BertModel builds when none is given; skips its host-syncing pad check)",
        "hidden": hidden, "layers": c.num_hidden_layers, "heads": c.num_attention_heads, "ffn": ffn, "vocab": c.vocab_size,
        "lm_head": causal_lm,
        "model_parameters": sum(p.numel() for p in model.parameters()),
    }
