"""Plain-PyTorch model definitions (no torchvision, no transformers): ResNet-50, MobileNet-V2
and VGG-16 from the kit's one definition (``mtap_schemas.cnn``, shared with analytical-runner;
ResNet-50 in the measured ``shortcut_first`` forward), BERT (``BertModel`` layout, optional MLM
head), GPT-2 style decoders (``GPT2LMHeadModel`` layout; OPT via ReLU and learned positions)
and a Llama-2 style decoder (RMSNorm, rotary embeddings, SwiGLU) with a static KV cache for
decode steps. Weights are random: these models exist to be timed, not to be accurate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from mtap_schemas import cnn
from mtap_schemas.cnn import VGG16, MobileNetV2, layer_slug  # noqa: F401  (re-exported: cases, tests)

# --------------------------------------------------------------------------- the CNNs (mtap_schemas.cnn)

#: The forward these measurements ran: ResNet-50's Bottleneck computes its shortcut first and
#: adds out of place (``mtap_schemas.cnn``'s ``shortcut_first``); the committed documents' case
#: order (a block's ``downsample-0`` before its ``conv1``) is this forward's execution order.
SHORTCUT_FIRST = True


def resnet50(num_classes: int = 1000) -> nn.Module:
    """ResNet-50 as measured (the kit's definition with ``shortcut_first``)."""
    return cnn.ResNet50(num_classes, shortcut_first=SHORTCUT_FIRST)


#: The image models by case-key name (W1 ResNet-50, W8 MobileNet-V2, W9 VGG-16).
CNNS: dict[str, Callable[[], nn.Module]] = {"resnet50": resnet50, "mobilenet-v2": MobileNetV2, "vgg16": VGG16}


def cnn_layers(model: str, batch: int = 1, image: int = 224) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """Every Conv2d and Linear of an image model in the measured forward's execution order:
    (name, meta module shared between calls, input shape); see ``mtap_schemas.cnn.cnn_layers``."""
    return cnn.cnn_layers(model, batch, image, shortcut_first=SHORTCUT_FIRST)


def resnet50_layers(batch: int = 1, image: int = 224) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """Every Conv2d and Linear of ResNet-50 in execution order (see :func:`cnn_layers`)."""
    return cnn_layers("resnet50", batch, image)


# --------------------------------------------------------------------------- transformers


@dataclass(frozen=True)
class TransformerConfig:
    name: str
    kind: str  # "encoder" (BERT), "decoder" (GPT-2 / OPT), "llama"
    vocab: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 2048
    activation: str = "gelu"  # gelu (BERT), gelu-tanh (GPT-2 "gelu_new"), relu (OPT), silu (Llama SwiGLU)
    lm_head: bool = True
    pooler: bool = False
    type_vocab: int = 0
    kv_heads: int | None = None
    norm_eps: float = 1e-5

    def scaled(self, **kw: object) -> TransformerConfig:
        return replace(self, **kw)


#: Standard configurations. BERT-base is BertModel (encoder + pooler, no MLM head: W4 is
#: "encoder inference"); GPT-2 is GPT2LMHeadModel (tied LM head); Llama-2-7B is
#: LlamaForCausalLM's shape. The NeuSight models follow their HF architectures
#: (BertLMHeadModel, GPT2LMHeadModel, OPTForCausalLM) from NeuSight's model configs.
CONFIGS: dict[str, TransformerConfig] = {
    "bert-base": TransformerConfig("bert-base", "encoder", 30522, 768, 12, 12, 3072, 512, "gelu", lm_head=False, pooler=True, type_vocab=2, norm_eps=1e-12),
    "gpt2": TransformerConfig("gpt2", "decoder", 50257, 768, 12, 12, 3072, 1024, "gelu-tanh"),
    "llama2-7b": TransformerConfig("llama2-7b", "llama", 32000, 4096, 32, 32, 11008, 4096, "silu", norm_eps=1e-5),
    "bert-large": TransformerConfig("bert-large", "encoder", 30522, 1024, 24, 16, 4096, 512, "gelu", lm_head=True, type_vocab=2, norm_eps=1e-12),
    "gpt2-large": TransformerConfig("gpt2-large", "decoder", 50257, 1280, 36, 20, 5120, 1024, "gelu-tanh"),
    "gpt3-xl": TransformerConfig("gpt3-xl", "decoder", 50257, 3072, 24, 24, 12288, 2048, "gelu-tanh"),
    "gpt3-2.7b": TransformerConfig("gpt3-2.7b", "decoder", 50257, 2560, 32, 32, 10240, 2048, "gelu-tanh"),
    "opt-1.3b": TransformerConfig("opt-1.3b", "decoder", 50272, 2048, 24, 32, 8192, 2050, "relu"),
}

#: Small stand-ins with the same code paths, for CPU tests (``--tiny``).
TINY: dict[str, TransformerConfig] = {
    name: cfg.scaled(hidden=64, layers=2, heads=4, ffn=128, vocab=512, max_positions=2048, kv_heads=None)
    for name, cfg in CONFIGS.items()
}


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu-tanh":
        return F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {name!r}")


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig, fused_qkv: bool, bias: bool = True) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.hidden // cfg.heads
        self.fused_qkv = fused_qkv
        if fused_qkv:  # GPT-2's c_attn
            self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=bias)
        else:  # BERT's query/key/value
            self.query = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
            self.key = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
            self.value = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
        self.out = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, t, d = x.shape
        if self.fused_qkv:
            q, k, v = self.qkv(x).split(d, dim=-1)
        else:
            q, k, v = self.query(x), self.key(x), self.value(x)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """BERT post-norm layer."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attention = Attention(cfg, fused_qkv=False)
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.intermediate = nn.Linear(cfg.hidden, cfg.ffn)
        self.output = nn.Linear(cfg.ffn, cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attention(x, causal=False))
        return self.ln2(x + self.output(_act(self.cfg.activation, self.intermediate(x))))


class DecoderBlock(nn.Module):
    """GPT-2 / OPT pre-norm block."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.attention = Attention(cfg, fused_qkv=True)
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.fc = nn.Linear(cfg.hidden, cfg.ffn)
        self.proj = nn.Linear(cfg.ffn, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x), causal=True)
        return x + self.proj(_act(self.cfg.activation, self.fc(self.ln2(x))))


class EncoderModel(nn.Module):
    """BertModel (with pooler) or BertLMHeadModel (MLM head with a tied decoder)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab, cfg.hidden)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type = nn.Embedding(max(cfg.type_vocab, 1), cfg.hidden)
        self.ln = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.pooler = nn.Linear(cfg.hidden, cfg.hidden) if cfg.pooler else None
        if cfg.lm_head:
            self.head_dense = nn.Linear(cfg.hidden, cfg.hidden)
            self.head_ln = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
            self.head_bias = nn.Parameter(torch.zeros(cfg.vocab))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)
        x = self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids))
        x = self.ln(x)
        for layer in self.layers:
            x = layer(x)
        if self.cfg.lm_head:
            h = self.head_ln(F.gelu(self.head_dense(x)))
            return F.linear(h, self.word.weight, self.head_bias)
        if self.pooler is not None:
            return torch.tanh(self.pooler(x[:, 0]))
        return x


class DecoderModel(nn.Module):
    """GPT2LMHeadModel (tied head) / OPTForCausalLM-shaped decoder."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.hidden)
        self.wpe = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t, device=ids.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight) if self.cfg.lm_head else x


# --------------------------------------------------------------------------- Llama


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(head_dim: int, positions: torch.Tensor, dtype: torch.dtype, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = torch.outer(positions.float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class LlamaLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.kv_heads = cfg.kv_heads or cfg.heads
        self.head_dim = cfg.hidden // cfg.heads
        self.input_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.q_proj = nn.Linear(cfg.hidden, cfg.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.heads * self.head_dim, cfg.hidden, bias=False)
        self.post_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.gate_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        past: int = 0,
    ) -> torch.Tensor:
        """Prefill (``cache`` None: causal attention over the ``t`` new tokens) or one decode
        step (``cache`` = (K, V) of shape [b, kv_heads, past+1, head_dim]: the new token's K/V
        are written at position ``past`` and it attends to all ``past+1`` entries)."""
        b, t, d = x.shape
        h = self.input_norm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        else:
            kc, vc = cache
            kc[:, :, past : past + t].copy_(k)
            vc[:, :, past : past + t].copy_(v)
            y = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=self.kv_heads != self.heads)
        x = x + self.o_proj(y.transpose(1, 2).reshape(b, t, d))
        h = self.post_norm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class LlamaModel(nn.Module):
    """LlamaForCausalLM's shape. ``prefill`` returns the last token's logits (as serving
    engines compute them); ``decode`` returns logits for the batch's new tokens."""

    def __init__(self, cfg: TransformerConfig, layers: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        self.layers = nn.ModuleList(LlamaLayer(cfg) for _ in range(layers if layers is not None else cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)

    @property
    def head_dim(self) -> int:
        return self.cfg.hidden // self.cfg.heads

    def new_cache(self, batch: int, length: int, dtype: torch.dtype, device: torch.device | str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        kvh = self.cfg.kv_heads or self.cfg.heads
        shape = (batch, kvh, length, self.head_dim)
        return [
            (torch.randn(shape, dtype=dtype, device=device), torch.randn(shape, dtype=dtype, device=device))
            for _ in self.layers
        ]

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        cos, sin = rope_tables(self.head_dim, torch.arange(t, device=ids.device), self.embed.weight.dtype)
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x[:, -1:]))

    def decode(self, ids: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]], past: int) -> torch.Tensor:
        cos, sin = rope_tables(self.head_dim, torch.arange(past, past + ids.shape[1], device=ids.device), self.embed.weight.dtype)
        x = self.embed(ids)
        for layer, kv in zip(self.layers, cache):
            x = layer(x, cos, sin, kv, past)
        return self.lm_head(self.norm(x))


def build_transformer(cfg: TransformerConfig, layers: int | None = None) -> nn.Module:
    if cfg.kind == "encoder":
        return EncoderModel(cfg)
    if cfg.kind == "decoder":
        return DecoderModel(cfg)
    if cfg.kind == "llama":
        return LlamaModel(cfg, layers)
    raise ValueError(f"unknown model kind {cfg.kind!r}")


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once), as ``sum(p.numel() for p in model.parameters())``."""
    return sum(p.numel() for p in model.parameters())


def init_random_(model: nn.Module, std: float = 0.02, seed: int = 0) -> nn.Module:
    """Fill every parameter in place: normal(0, std) for weights, ones for norm scales, zeros
    for biases. Works on tensors made with ``to_empty`` (fast init on the GPU)."""
    gen_device = next(model.parameters()).device
    g = torch.Generator(device=gen_device)
    g.manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d, RMSNorm)):
                for name, p in mod.named_parameters(recurse=False):
                    p.fill_(1.0 if name == "weight" else 0.0)
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.zero_()
                    mod.running_var.fill_(1.0)
                    mod.num_batches_tracked.zero_()
            elif isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
                mod.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, (nn.Linear, nn.Embedding)):
                mod.weight.normal_(0.0, std, generator=g)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()
            elif isinstance(mod, EncoderModel) and mod.cfg.lm_head:
                mod.head_bias.zero_()
    return model
