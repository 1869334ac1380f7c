"""The profiler's per-point operators compute what their names say (CPU, toy shape, float32), and vidur's
memory filter of the attention grid.

The end-to-end tests (test_profiler_resume.py, test_profile_data.py) check the files; these check the
ops each row times: an RMSNorm that normalises, RoPE that rotates, the gated activation of the up
projection, attention masked lower-right causal per sequence, and the KV save writing whole blocks.
"""

from __future__ import annotations

import types

import pytest

from mtap_vidur_runner import grid, profiler

torch = pytest.importorskip("torch")
F = torch.nn.functional

TINY = "mtap/tiny-test"
CFG = profiler.MODELS[TINY]
HD = CFG["embedding_dim"] // CFG["num_q_heads"]


def _mlp_ops(n: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    weights = profiler._mlp_weights(torch, CFG, "cpu", torch.float32, gen)
    kernels = profiler._mlp_kernels(torch, CFG, weights, False, lambda m: None)
    return profiler._mlp_point_ops(torch, CFG, "cpu", torch.float32, n, weights, kernels, gen)


def test_the_mlp_point_ops_are_the_layer_they_name():
    n, h, ffn = 12, CFG["embedding_dim"], CFG["mlp_hidden_dim"]
    ops = _mlp_ops(n)
    assert list(ops) == profiler.MLP_OPS
    with torch.inference_mode():
        out = {op: fn() for op, fn in ops.items()}
    assert out["emb"].shape == out["attn_post_proj"].shape == out["mlp_down_proj"].shape == out["add"].shape == (n, h)
    # RMSNorm with unit weights: every token's mean square is 1
    for op in ("input_layernorm", "post_attention_layernorm"):
        assert torch.allclose(out[op].pow(2).mean(-1), torch.ones(n), atol=1e-4)
    # RoPE of the QKV projection's q and k: position 0 is not rotated, every (i, i + hd/2) pair keeps its length
    qkv = out["attn_pre_proj"]
    heads, kv_heads = CFG["num_q_heads"], CFG["num_kv_heads"]
    q, k = qkv[:, : heads * HD], qkv[:, heads * HD: (heads + kv_heads) * HD]
    q_rot, k_rot = out["attn_rope"]
    assert q_rot.shape == q.shape and k_rot.shape == k.shape
    assert torch.allclose(q_rot[0], q[0]) and torch.allclose(k_rot[0], k[0])
    assert not torch.allclose(q_rot[1:], q[1:])

    def pair_norms(x, n_heads):
        x = x.reshape(n, n_heads, HD)
        return x[..., : HD // 2] ** 2 + x[..., HD // 2:] ** 2

    assert torch.allclose(pair_norms(q_rot, heads), pair_norms(q, heads), rtol=1e-4, atol=1e-12)
    # SiLU-and-mul of the (gate | up) projection
    up = out["mlp_up_proj"]
    assert up.shape == (n, 2 * ffn)
    assert torch.allclose(out["mlp_act"], F.silu(up[:, :ffn]) * up[:, ffn:])


def _attention(inputs: list[grid.AttentionInput], block_size: int = 4):
    gen = torch.Generator().manual_seed(1)
    buffers = profiler._sdpa_buffers(torch, CFG, "cpu", torch.float32, inputs, block_size, gen)
    return buffers, [profiler._sdpa_point_ops(torch, CFG, "cpu", torch.float32, ai, buffers, block_size, gen) for ai in inputs]


def _perturbed(attend, buffers: dict, row: int):
    """attend()'s output, then again with K row ``row`` of the contiguous buffer changed."""
    before = attend().clone()
    buffers["k"][row] += 1.0
    after = attend().clone()
    buffers["k"][row] -= 1.0
    return before, after


@pytest.mark.parametrize("kv", [0, 5])
def test_prefill_attention_is_causal_from_the_lower_right(kv):
    new = 6
    ai = grid.AttentionInput(new, kv, 1, True)
    buffers, [(_, attend)] = _attention([ai])
    out = attend()
    assert out.shape == (1, CFG["num_q_heads"], new, HD)
    # query i sees the kv cached tokens and the new ones up to itself: key kv + 1 matters from query 1 on
    before, after = _perturbed(attend, buffers, kv + 1)
    changed = [not torch.allclose(before[0, :, i], after[0, :, i]) for i in range(new)]
    assert changed == [False] + [True] * (new - 1)


def test_decode_attention_reads_each_sequences_own_kv():
    batch, kv = 3, 7
    ai = grid.AttentionInput(0, kv, batch, False)
    buffers, [(_, attend)] = _attention([ai])
    assert attend().shape == (batch, CFG["num_q_heads"], 1, HD)
    # the last cached token of sequence 1 (rows kv + 1 per sequence) changes sequence 1's output only
    before, after = _perturbed(attend, buffers, 1 * (kv + 1) + kv)
    assert [not torch.allclose(before[b], after[b]) for b in range(batch)] == [False, True, False]


@pytest.mark.parametrize(("ai", "written"), [(grid.AttentionInput(6, 5, 1, True), 6), (grid.AttentionInput(0, 7, 3, False), 3)])
def test_the_kv_save_writes_the_new_tokens_into_whole_blocks(ai, written):
    block = 4
    buffers, [(save, _)] = _attention([ai], block)
    buffers["k_cache"].zero_()
    buffers["v_cache"].zero_()
    save()
    rows = [int(i) for i in buffers["k_cache"].abs().sum((1, 2)).nonzero().flatten()]
    assert rows == [int(i) for i in buffers["v_cache"].abs().sum((1, 2)).nonzero().flatten()]
    assert len(rows) == written
    # slot runs start at block boundaries: every written block is filled from its first slot on
    by_block: dict[int, list[int]] = {}
    for r in rows:
        by_block.setdefault(r // block, []).append(r % block)
    assert all(offsets == list(range(len(offsets))) for offsets in by_block.values())
    assert sum(len(o) == block for o in by_block.values()) >= written // block


def test_the_memory_filter_is_vidurs_90_percent_of_the_card_over_an_eighth_of_the_layers():
    cfg = profiler.MODELS["meta-llama/Llama-2-7b-hf"]
    _, inputs = profiler.grid_points(4096, 4096, 128, 4096)

    def card(total_bytes: int):
        return types.SimpleNamespace(cuda=types.SimpleNamespace(mem_get_info=lambda: (0, total_bytes)))

    # an 80 GiB card holds every point of the grid
    assert profiler._within_memory(card(80 << 30), cfg, inputs, 16) == inputs
    # a KV block of 16 tokens: 2 (K, V) x 16 x 32 heads x 128 x 2 bytes x 32 / 8 layers = 1 MiB; 1000 MiB -> 900 blocks
    kept = profiler._within_memory(card(1000 << 20), cfg, inputs, 16)
    assert kept == [ai for ai in inputs if ai.batch_size * (ai.kv_cache_size + ai.prefill_chunk_size) <= 900 * 16]
    assert 0 < len(kept) < len(inputs)
