"""VIDUR's operators as transformers' continuous-batching engine runs them (``profiler --ops hf-cb``).

The committed profiles time a vLLM-like fused operator set (one QKV GEMM, one gate+up GEMM,
``torch.compile``d RMSNorm / RoPE / SiLU-and-mul, FlashAttention per sequence). The engine that
serving-groundtruth measures (``transformers.generation.continuous_batching``, pinned 5.17.0) runs
Hugging Face's Llama modules instead, and this module times *those*, one VIDUR op at a time, with
VIDUR's profiling method (the same grid, warm-up and active counts and device-time events of
``profiler.Timer``):

- MLP side, from a real ``LlamaDecoderLayer`` (random fp16 weights): ``input_layernorm`` and
  ``post_attention_layernorm`` are ``LlamaRMSNorm`` (unfused: float32 cast, pow, mean, rsqrt, two
  multiplies); ``attn_pre_proj`` is the three ``q_proj`` / ``k_proj`` / ``v_proj`` GEMMs with their
  view/transpose; ``attn_rope`` is ``apply_rotary_pos_emb`` (unfused rotate-half); ``attn_post_proj``
  the reshape and ``o_proj``; ``mlp_up_proj`` the two ``gate_proj`` / ``up_proj`` GEMMs; ``mlp_act``
  ``act_fn(gate) * up``; ``mlp_down_proj``; ``add`` one residual add; ``emb`` ``embed_tokens``.
  The engine packs a step's requests into one ``[1, tokens, hidden]`` sequence, as here.
- Attention, through the engine's own ``paged|sdpa`` function
  (``transformers.integrations.sdpa_paged.sdpa_attention_paged_forward``) and the engine's own
  ``PagedAttentionCache.update`` (``index_copy_`` of the new K/V into the paged cache, then one
  ``index_select`` of every K/V the step reads), and its block-diagonal float mask built by the
  engine's ``build_attention_mask``. A VIDUR prefill point (chunk c after k cached tokens) is one
  request: c queries against k + c keys; a decode point (batch b, KV k) is b requests of one query
  against k + 1 keys each, packed into one SDPA call over b queries and b(k + 1) keys, which is
  how the engine runs a decode step. ``attn_kv_cache_save`` is the write; the read-back and the
  masked SDPA are ``attn_prefill`` / ``attn_decode``.
- With CUDA graphs the engine pads each step's query tokens and KV reads to fixed intervals
  (``q_padding_interval_size``, ``kv_padding_interval_size``, capped by ``max_batch_tokens`` and the
  cache's pages): ``q_pad`` / ``kv_pad`` > 0 time each op at the padded sizes the engine would run.

What VIDUR's format cannot say: a mixed step runs all its requests' attention in one masked SDPA
over the step's total queries and keys, while VIDUR adds per-request prefill times to one decode
time; the model-level ops the engine runs once per step (rotary cos/sin, final norm, ``lm_head``,
sampling) have no VIDUR op. Both are part of VIDUR-vs-engine error, not of this profile.
"""

from __future__ import annotations

import math

#: the engine these operators are timed as (recorded in the profile's meta)
ENGINE = "transformers.generation.continuous_batching (paged|sdpa, eager modules, no torch.compile)"


def pad_to(size: int, interval: int, cap: int | None) -> int:
    """The engine's ``pad_to_interval``: the smallest multiple of ``interval`` >= ``size``, at most ``cap``."""
    if interval <= 0:
        return size
    padded = -(-size // interval) * interval
    return max(size, min(padded, cap)) if cap else padded


def layer(torch, cfg: dict, device: str, dtype):
    """A one-layer Llama of the profiled model's shape, random weights, the engine's attention setting."""
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(
        hidden_size=cfg["embedding_dim"], intermediate_size=cfg["mlp_hidden_dim"], num_hidden_layers=1,
        num_attention_heads=cfg["num_q_heads"], num_key_value_heads=cfg["num_kv_heads"], vocab_size=cfg["vocab_size"],
        max_position_embeddings=cfg["max_model_len"], rope_theta=cfg["rope_theta"], rms_norm_eps=1e-5,
        hidden_act="silu", tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaModel._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def mlp_ops(torch, cfg: dict, device: str, dtype, n: int, q_pad: int = 0, max_batch_tokens: int | None = None, model=None):
    """{VIDUR op: callable} for ``n`` tokens, as the engine runs them (padded to its query interval)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model = model if model is not None else layer(torch, cfg, device, dtype)
    block = model.layers[0]
    attn, mlp = block.self_attn, block.mlp
    h, hd = cfg["embedding_dim"], cfg["embedding_dim"] // cfg["num_q_heads"]
    t = pad_to(n, q_pad, max_batch_tokens)
    gen = torch.Generator(device=device).manual_seed(n)
    x = torch.randn(1, t, h, device=device, dtype=dtype, generator=gen)
    y = torch.randn(1, t, h, device=device, dtype=dtype, generator=gen)
    ids = torch.randint(0, cfg["vocab_size"], (1, t), device=device, generator=gen)
    pos = (torch.arange(t, device=device) % cfg["max_model_len"])[None]
    cos, sin = model.rotary_emb(x, pos)
    shape = (1, t, -1, hd)
    q = attn.q_proj(x).view(shape).transpose(1, 2)
    k = attn.k_proj(x).view(shape).transpose(1, 2)
    attn_out = torch.randn(1, cfg["num_q_heads"], t, hd, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    gate, up = mlp.gate_proj(x), mlp.up_proj(x)
    act = mlp.act_fn(gate) * up

    def pre_proj():
        return (attn.q_proj(x).view(shape).transpose(1, 2), attn.k_proj(x).view(shape).transpose(1, 2),
                attn.v_proj(x).view(shape).transpose(1, 2))

    return {
        "emb": lambda: model.embed_tokens(ids),
        "input_layernorm": lambda: block.input_layernorm(x),
        "attn_pre_proj": pre_proj,
        "attn_rope": lambda: apply_rotary_pos_emb(q, k, cos, sin),
        "attn_post_proj": lambda: attn.o_proj(attn_out.reshape(1, t, -1).contiguous()),
        "post_attention_layernorm": lambda: block.post_attention_layernorm(x),
        "mlp_up_proj": lambda: (mlp.gate_proj(x), mlp.up_proj(x)),
        "mlp_act": lambda: mlp.act_fn(gate) * up,
        "mlp_down_proj": lambda: mlp.down_proj(act),
        "add": lambda: x + y,
    }


class _Cache:
    """The attributes ``PagedAttentionCache.update`` reads, over one layer's paged K/V tensors."""

    def __init__(self, k_cache, v_cache):
        self.layer_index_to_group_indices = {0: (0, 0)}
        self.key_cache, self.value_cache = [k_cache], [v_cache]
        self.sliding_windows = {0: 1}
        self.sentinel_index = -1

    def update(self, **kwargs):
        from transformers.generation.continuous_batching.cache import PagedAttentionCache

        return PagedAttentionCache.update(self, **kwargs)


class _Module:
    """What ``sdpa_attention_paged_forward`` reads of the attention module."""

    def __init__(self, groups: int):
        self.layer_idx = 0
        self.num_key_value_groups = groups


def attention_ops(torch, cfg: dict, device: str, dtype, *, batch: int, new: int, kv: int, block_size: int,
                  num_slots: int, q_pad: int = 0, kv_pad: int = 0, max_batch_tokens: int | None = None, gen=None,
                  caches=None):
    """(save, attend) callables for ``batch`` requests of ``new`` query tokens after ``kv`` cached ones each,
    as one engine step runs them: the K/V write, then the read-back and the masked SDPA. ``caches``: a
    (K, V) pair of paged caches of ``num_slots`` slots to reuse across points (made here when None)."""
    from transformers.generation.continuous_batching.utils import build_attention_mask
    from transformers.integrations.sdpa_paged import sdpa_attention_paged_forward

    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = cfg["embedding_dim"] // heads
    gen = gen if gen is not None else torch.Generator(device=device).manual_seed(1)
    per_req = kv + new
    q_len, kv_len = batch * new, batch * per_req
    q_p = pad_to(q_len, q_pad, max_batch_tokens)
    kv_p = pad_to(kv_len, kv_pad, num_slots)
    if kv_p > num_slots:
        raise ValueError(f"{kv_p} KV slots read, the cache holds {num_slots}")
    if caches is None:
        caches = (torch.randn(num_slots, kv_heads, hd, device=device, dtype=dtype, generator=gen),
                  torch.randn(num_slots, kv_heads, hd, device=device, dtype=dtype, generator=gen))
    k_cache, v_cache = caches
    cache = _Cache(k_cache, v_cache)
    # each request's tokens in its own run of blocks, as the engine's block table lays them out
    blocks_per = math.ceil(per_req / block_size)
    pick = torch.randperm(num_slots // block_size, device=device, generator=gen)[: batch * blocks_per]
    slots = (pick.view(batch, blocks_per, 1) * block_size + torch.arange(block_size, device=device)).view(batch, -1)[:, :per_req]
    read = slots.reshape(-1)
    write = slots[:, kv:].reshape(-1)
    trash = num_slots - 1  # padded positions read and write a trash slot, as the engine's do
    read_index = [torch.cat([read, torch.full((kv_p - kv_len,), trash, device=device, dtype=read.dtype)])]
    write_index = [torch.cat([write, torch.full((q_p - q_len,), trash, device=device, dtype=write.dtype)])]
    if kv == 0 and batch == 1:
        read_index = [read_index[0][:0]]  # a lone first prefill: the engine writes only, no read-back
    q = torch.randn(1, q_p, heads, hd, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    k_new = torch.randn(1, q_p, kv_heads, hd, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    v_new = torch.randn(1, q_p, kv_heads, hd, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    k_read = kv_p if read_index[0].numel() else q_p
    mask = torch.full((1, 1, q_p, k_read), torch.finfo(dtype).min, device=device, dtype=dtype)
    build_attention_mask(mask, [i * new for i in range(batch + 1)],
                         [i * per_req for i in range(batch + 1)] if read_index[0].numel() else [i * new for i in range(batch + 1)])
    module = _Module(heads // kv_heads)
    scale = hd**-0.5

    def save():
        k_cache.index_copy_(0, write_index[0], k_new.transpose(1, 2).squeeze(0))
        v_cache.index_copy_(0, write_index[0], v_new.transpose(1, 2).squeeze(0))

    def attend():
        return sdpa_attention_paged_forward(module, q, k_new, v_new, mask, scaling=scale, cache=cache,
                                            read_index=read_index, write_index=write_index)

    save.parts = {"q": q, "k_new": k_new, "v_new": v_new, "k_cache": k_cache, "v_cache": v_cache, "slots": slots,
                  "q_padded": q_p, "kv_padded": kv_p}
    return save, attend
