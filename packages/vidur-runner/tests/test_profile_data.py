"""The committed H100 profile and the profiler: VIDUR's column schema and grid."""

from __future__ import annotations

import csv
import io
import json
import lzma

import pytest
from conftest import H100_PROFILE, MODEL

from mtap_vidur_runner import grid, profiler


def _rows(name: str) -> tuple[list[str], list[dict[str, str]]]:
    text = lzma.decompress((H100_PROFILE / name).read_bytes()).decode()
    r = csv.DictReader(io.StringIO(text))
    rows = list(r)
    return list(r.fieldnames or []), rows


def test_grid_matches_installed_vidur():
    pytest.importorskip("torch")  # vidur.profiling.utils imports torch
    u = pytest.importorskip("vidur.profiling.utils")
    assert grid.num_tokens_to_profile(4096) == u.get_num_tokens_to_profile(4096)
    assert grid.prefill_chunk_sizes(4096, 4096) == u.get_attention_prefill_chunk_sizes_to_profile(4096, 4096)
    assert grid.seq_lengths(4096) == u.get_seq_lengths_to_profile(4096)
    assert grid.attention_batch_sizes(1, 128) == u.get_attention_batch_sizes_to_profile(1, 128)
    ours = [(a.prefill_chunk_size, a.kv_cache_size, a.batch_size, a.is_prefill) for a in grid.attention_inputs(4096, 1, 128, 4096)]
    theirs = [(a.prefill_chunk_size, a.kv_cache_size, a.batch_size, a.is_prefill) for a in u.get_attention_input_combinations(4096, 1, 128, False, False, 4096)]
    assert ours == theirs


def test_grid_sizes():
    assert len(set(grid.num_tokens_to_profile(4096))) == 259
    assert len(set(grid.attention_inputs(4096, 1, 128, 4096))) == 10502


def test_committed_mlp_schema_and_grid(shared=None):
    header, rows = _rows("mlp.csv.xz")
    assert header == profiler.mlp_header()
    assert sorted(int(r["num_tokens"]) for r in rows) == sorted(set(grid.num_tokens_to_profile(4096)))
    for r in rows:
        assert (r["n_head"], r["n_kv_head"], r["n_embd"], r["n_expanded_embd"], r["vocab_size"], r["use_gated_mlp"], r["num_tensor_parallel_workers"]) == ("32", "32", "4096", "11008", "32768", "True", "1")
        for op in profiler.MLP_OPS:
            lo, med, hi = (float(r[f"time_stats.{op}.{s}"]) for s in ("min", "median", "max"))
            assert 0 < lo <= med <= hi


def test_committed_mlp_header_is_upstreams(shared):
    up = (shared / "compute" / "h100" / MODEL / "mlp.csv").read_text().splitlines()[0].split(",")
    assert _rows("mlp.csv.xz")[0] == up


def test_committed_attention_schema_and_grid():
    header, rows = _rows("attention.csv.xz")
    assert header == profiler.attention_header()
    full = set(grid.attention_inputs(4096, 1, 128, 4096))
    seen = set()
    for r in rows:
        ai = grid.AttentionInput(int(r["prefill_chunk_size"]), int(r["kv_cache_size"]), int(r["batch_size"]), r["is_prefill"] == "True")
        assert ai in full and ai not in seen
        seen.add(ai)
        op = "attn_prefill" if ai.is_prefill else "attn_decode"
        other = "attn_decode" if ai.is_prefill else "attn_prefill"
        assert float(r[f"time_stats.{op}.median"]) > 0 and r[f"time_stats.{other}.median"] == ""
        assert float(r["time_stats.attn_kv_cache_save.median"]) > 0
    meta = json.loads((H100_PROFILE / "profile-meta.json").read_text())
    assert meta["attention"]["profiled"] == len(rows) and meta["attention"]["grid_points"] == len(full)
    assert meta["gpu_name"].startswith("NVIDIA H100")
    # every decode batch size and both kinds of prefill are represented
    assert {int(r["batch_size"]) for r in rows if r["is_prefill"] == "False"} == set(range(1, 129))
    assert any(r["is_prefill"] == "True" and r["kv_cache_size"] != "0" for r in rows)


def test_profiler_on_cpu(tmp_path):
    """The profiler end to end on a toy shape (CPU, float32): files in VIDUR's schema."""
    pytest.importorskip("torch")
    meta = profiler.run_profile(tmp_path, "mtap/tiny-test", "cpu", max_tokens=16, max_seq_len=64, max_batch_size=2, max_chunk_size=64, compile_ops=False, log=lambda m: None)
    out = tmp_path / "mtap/tiny-test"
    text = lzma.decompress((out / "mlp.csv.xz").read_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["num_tokens"]) for r in rows] == grid.num_tokens_to_profile(16)
    assert all(float(r["time_stats.mlp_up_proj.median"]) > 0 for r in rows)
    att = list(csv.DictReader(io.StringIO(lzma.decompress((out / "attention.csv.xz").read_bytes()).decode())))
    assert len(att) == len(set(grid.attention_inputs(64, 1, 2, 64))) == meta["attention"]["profiled"]
    assert meta["dtype"] == "float32" and meta["attention"]["skipped_for_time"] == 0
