"""``profiler --ops hf-cb``: VIDUR's operators as transformers' continuous-batching engine runs them.

Runs the engine's own code (transformers 5.17's paged SDPA, its cache update and mask builder, a real
Llama decoder layer) on the CPU with a toy shape; the test extra installs CPU torch and transformers.
"""

from __future__ import annotations

import csv
import io
import lzma

import pytest

from mtap_vidur_runner import engine_ops, profiler

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY = "mtap/tiny-test"
CFG = profiler.MODELS[TINY]
F = torch.nn.functional


def _per_request(parts: dict, i: int, new: int, kv: int):
    """Request i's attention computed alone: its queries against its own cached K/V, causal."""
    sl = parts["slots"][i]
    k = parts["k_cache"][sl].transpose(0, 1)
    v = parts["v_cache"][sl].transpose(0, 1)
    q = parts["q"][0][:, i * new:(i + 1) * new]
    mask = torch.ones(new, kv + new, dtype=torch.bool).tril(diagonal=kv)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize(("batch", "new", "kv", "q_pad", "kv_pad"), [
    (3, 1, 5, 0, 0),     # a decode step of three requests, packed into one SDPA
    (1, 6, 0, 0, 0),     # a first prefill: written, not read back
    (1, 6, 7, 0, 0),     # a chunked prefill after 7 cached tokens
    (3, 1, 5, 8, 16),    # CUDA-graph padding of queries and KV reads
    (1, 6, 7, 8, 32),
])
def test_the_packed_step_computes_each_requests_own_attention(batch, new, kv, q_pad, kv_pad):
    save, attend = engine_ops.attention_ops(torch, CFG, "cpu", torch.float32, batch=batch, new=new, kv=kv,
                                            block_size=4, num_slots=128, q_pad=q_pad, kv_pad=kv_pad)
    parts = save.parts
    assert parts["q_padded"] == engine_ops.pad_to(batch * new, q_pad, None) and parts["q_padded"] >= batch * new
    assert parts["kv_padded"] >= batch * (kv + new)
    save()
    out = attend()[0][0]  # [queries, heads, head_dim]
    for i in range(batch):
        ref = _per_request(parts, i, new, kv)
        assert torch.allclose(out[i * new:(i + 1) * new].transpose(0, 1), ref, atol=1e-5)


def test_the_mlp_ops_are_the_engines_llama_layer():
    model = engine_ops.layer(torch, CFG, "cpu", torch.float32)
    ops = engine_ops.mlp_ops(torch, CFG, "cpu", torch.float32, 10, q_pad=8, max_batch_tokens=64, model=model)
    assert list(ops) == profiler.MLP_OPS
    gate, up = ops["mlp_up_proj"]()
    assert gate.shape == (1, 16, CFG["mlp_hidden_dim"])  # 10 tokens padded to the engine's interval of 8
    q, k, v = ops["attn_pre_proj"]()  # three GEMMs, not one fused QKV
    assert q.shape == k.shape == v.shape == (1, CFG["num_q_heads"], 16, CFG["embedding_dim"] // CFG["num_q_heads"])
    layer = model.layers[0]
    x = torch.randn(1, 5, CFG["embedding_dim"])
    with torch.no_grad():
        composed = layer.mlp.down_proj(layer.mlp.act_fn(layer.mlp.gate_proj(x)) * layer.mlp.up_proj(x))
        assert torch.allclose(composed, layer.mlp(x))
    assert engine_ops.pad_to(10, 0, 64) == 10 and engine_ops.pad_to(70, 64, 100) == 100 and engine_ops.pad_to(10, 64, 4) == 10


def test_an_engine_profile_is_vidurs_format_and_never_mixed_with_another_operator_set(tmp_path):
    grid = dict(max_tokens=32, max_seq_len=64, max_batch_size=2, max_chunk_size=32, log=lambda m: None)
    meta = profiler.run_profile(tmp_path, TINY, "cpu", block_size=16, ops="hf-cb",
                                engine={"q_pad": 8, "kv_pad": 32, "max_batch_tokens": 32}, command="t", **grid)
    assert meta["ops"] == "hf-cb" and meta["compiled_ops"] is False
    assert meta["engine"]["q_pad"] == 8 and meta["engine"]["transformers"]
    assert meta["coverage"]["mlp"]["percent"] == meta["coverage"]["attention"]["percent"] == 100.0
    folder = tmp_path / TINY
    for kind, header in (("mlp", profiler.mlp_header()), ("attention", profiler.attention_header())):
        rows = list(csv.reader(io.StringIO(lzma.decompress((folder / f"{kind}.csv.xz").read_bytes()).decode())))
        assert rows[0] == header and len(rows) > 1
    att = list(csv.DictReader(io.StringIO(lzma.decompress((folder / "attention.csv.xz").read_bytes()).decode())))
    assert {r["attention_backend"] for r in att} == {"hf-paged-sdpa"} and {r["block_size"] for r in att} == {"16"}
    with pytest.raises(profiler.ProfileError, match="operator set 'hf-cb'"):
        profiler.run_profile(tmp_path, TINY, "cpu", block_size=16, **grid)
    with pytest.raises(profiler.ProfileError, match="engine_q_pad"):
        profiler.run_profile(tmp_path, TINY, "cpu", block_size=16, ops="hf-cb", engine={"q_pad": 16, "kv_pad": 32, "max_batch_tokens": 32}, **grid)


def test_the_command_line_refuses_engine_options_without_the_engine_set(capsys):
    with pytest.raises(SystemExit) as exc:
        profiler.main(["--output-dir", "x", "--q-pad", "64"])
    assert exc.value.code == 2 and "only with --ops hf-cb" in capsys.readouterr().err
