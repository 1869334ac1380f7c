"""The profiler's resume logic (partial files, skip, coverage, refusals) and the committed H200 profile.

The logic tests need no torch (they run in CI); the end-to-end ones run the real profiler on a
toy shape on the CPU where torch is installed.
"""

from __future__ import annotations

import csv
import io
import json
import lzma

import pytest
from conftest import REPO

from mtap_vidur_runner import grid, profiler

H200_PROFILE = REPO / "data" / "profiles" / "vidur" / "h200" / "meta-llama" / "Llama-2-7b-hf"
TINY = "mtap/tiny-test"
TINY_GRID = {"max_tokens": 16, "max_seq_len": 64, "max_batch_size": 2, "max_chunk_size": 64}


def _mlp_row(n: int, t: float = 0.5) -> dict:
    row = {"n_head": 4, "n_kv_head": 4, "n_embd": 256, "n_expanded_embd": 512, "vocab_size": 1024, "use_gated_mlp": True,
           "num_tokens": n, "num_tensor_parallel_workers": 1}
    for op in profiler.MLP_OPS:
        row |= {f"time_stats.{op}.{s}": t for s in profiler.STATS}
    return row


def _attn_row(ai: grid.AttentionInput, t: float = 0.25) -> dict:
    row = {"n_embd": 256, "n_q_head": 4, "n_kv_head": 4, "block_size": 16, "num_tensor_parallel_workers": 1, "max_model_len": 256,
           "batch_size": ai.batch_size, "prefill_chunk_size": ai.prefill_chunk_size, "kv_cache_size": ai.kv_cache_size,
           "is_prefill": ai.is_prefill, "attention_backend": "torch-sdpa"}
    op = "attn_prefill" if ai.is_prefill else "attn_decode"
    row |= {f"time_stats.{o}.{s}": t for o in ("attn_kv_cache_save", op) for s in profiler.STATS}
    return row


def _xz_rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(lzma.decompress(path.read_bytes()).decode())))


def _tiny_points():
    return profiler.grid_points(**TINY_GRID)


def test_a_killed_runs_partial_file_keeps_every_finished_point(tmp_path):
    tokens, inputs = _tiny_points()
    sink = profiler._Appender(tmp_path / "attention.partial.csv", profiler.attention_header())
    for ai in inputs[:3]:
        sink.add(_attn_row(ai))
    sink.close()
    # the kill came in the middle of writing the fourth row
    with open(tmp_path / "attention.partial.csv", "a") as f:
        f.write("0.1,0.2,0.3")
    assert {profiler.attention_key(r) for r in profiler.read_rows(tmp_path, "attention")} == set(inputs[:3])
    cov = profiler.coverage(tmp_path, tokens, inputs)
    assert cov["attention"] == {"measured": 3, "needed": len(inputs), "percent": round(300 / len(inputs), 2)}
    assert cov["mlp"]["measured"] == 0 and cov["mlp"]["needed"] == len(tokens) == 5
    # the next appender drops the half line and continues the file
    sink = profiler._Appender(tmp_path / "attention.partial.csv", profiler.attention_header())
    sink.add(_attn_row(inputs[3]))
    sink.close()
    assert len(profiler.read_rows(tmp_path, "attention")) == 4
    counts = profiler.merge_partials(tmp_path)
    assert counts["attention"] == 4 and not (tmp_path / "attention.partial.csv").exists()
    rows = _xz_rows(tmp_path / "attention.csv.xz")
    assert [list(r) for r in rows[:1]] == [profiler.attention_header()]
    assert {profiler.attention_key(r) for r in rows} == set(inputs[:4])
    assert profiler.merge_partials(tmp_path) == counts  # idempotent


def test_merge_keeps_the_first_measurement_of_a_point_and_vidurs_order(tmp_path):
    tokens, _ = _tiny_points()
    profiler.write_csv_xz(tmp_path / "mlp.csv.xz", profiler.mlp_header(), [_mlp_row(16, 0.5), _mlp_row(1, 0.5)])
    sink = profiler._Appender(tmp_path / "mlp.partial.csv", profiler.mlp_header())
    sink.add(_mlp_row(16, 9.0))  # measured again: the committed value stays
    sink.add(_mlp_row(8, 0.7))
    sink.close()
    profiler.merge_partials(tmp_path)
    rows = _xz_rows(tmp_path / "mlp.csv.xz")
    assert [int(r["num_tokens"]) for r in rows] == [16, 8, 1]
    assert float(rows[0]["time_stats.mlp_up_proj.median"]) == 0.5
    cov = profiler.coverage(tmp_path, tokens, [])
    assert cov["mlp"] == {"measured": 3, "needed": 5, "percent": 60.0}


def test_coverage_counts_only_grid_points(tmp_path):
    tokens, inputs = _tiny_points()
    outside = grid.AttentionInput(4096, 0, 1, True)
    assert outside not in inputs
    profiler.write_csv_xz(tmp_path / "attention.csv.xz", profiler.attention_header(), [_attn_row(inputs[0]), _attn_row(outside)])
    cov = profiler.coverage(tmp_path, tokens, inputs)
    assert cov["attention"]["measured"] == 1 and cov["outside_grid"]["attention"] == 1
    pre = sum(ai.is_prefill for ai in inputs)
    assert cov["attention_prefill"]["needed"] == pre and cov["attention_decode"]["needed"] == len(inputs) - pre


def test_attention_order_is_prefill_first_then_a_fixed_permutation_of_decode():
    _, inputs = profiler.grid_points(4096, 4096, 128, 4096)
    order = profiler.attention_order(inputs)
    assert sorted(order, key=inputs.index) == inputs and len(set(order)) == len(inputs) == 10502
    n_pre = sum(ai.is_prefill for ai in inputs)
    assert n_pre == 390 and all(ai.is_prefill for ai in order[:n_pre])
    assert order == profiler.attention_order(inputs)
    # a run cut after the first quarter of the decode points still has every batch size
    quarter = order[n_pre : n_pre + (len(inputs) - n_pre) // 4]
    assert {ai.batch_size for ai in quarter} == set(range(1, 129))


def _meta(folder, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": TINY, "device": "cuda", "gpu_name": "NVIDIA H200", "grid": {**TINY_GRID, "block_size": 16}} | kw
    (folder / "profile-meta.json").write_text(json.dumps(meta))


def test_check_resumable_refuses_another_gpu_grid_or_model(tmp_path):
    params = {**TINY_GRID, "block_size": 16}
    assert profiler.check_resumable(tmp_path / "none", TINY, "NVIDIA H200", params, "cuda") is None
    _meta(tmp_path / "a")
    assert profiler.check_resumable(tmp_path / "a", TINY, "NVIDIA H200", params, "cuda")["gpu_name"] == "NVIDIA H200"
    with pytest.raises(profiler.ProfileError, match="NVIDIA H100 80GB HBM3"):
        profiler.check_resumable(tmp_path / "a", TINY, "NVIDIA H100 80GB HBM3", params, "cuda")
    with pytest.raises(profiler.ProfileError, match="max_seq_len"):
        profiler.check_resumable(tmp_path / "a", TINY, "NVIDIA H200", params | {"max_seq_len": 128}, "cuda")
    with pytest.raises(profiler.ProfileError, match="model"):
        profiler.check_resumable(tmp_path / "a", "meta-llama/Llama-2-7b-hf", "NVIDIA H200", params, "cuda")
    with pytest.raises(profiler.ProfileError, match="device"):
        profiler.check_resumable(tmp_path / "a", TINY, None, params, "cpu")
    (tmp_path / "a" / "profile-meta.json").write_text("{not json")
    with pytest.raises(profiler.ProfileError, match="not readable JSON"):
        profiler.check_resumable(tmp_path / "a", TINY, "NVIDIA H200", params, "cuda")


def test_a_partial_file_with_other_columns_is_refused(tmp_path):
    (tmp_path / "mlp.partial.csv").write_text("a,b\n1,2\n")
    with pytest.raises(profiler.ProfileError, match="columns differ"):
        profiler.read_rows(tmp_path, "mlp")


def test_coverage_verb_merges_and_reports_without_torch(tmp_path, capsys):
    folder = tmp_path / TINY
    folder.mkdir(parents=True)
    tokens, inputs = _tiny_points()
    sink = profiler._Appender(folder / "mlp.partial.csv", profiler.mlp_header())
    for n in tokens:
        sink.add(_mlp_row(n))
    sink.close()
    args = ["--output", str(tmp_path), "--model", TINY, "--coverage"] + [f"--{k.replace('_', '-')}={v}" for k, v in TINY_GRID.items()]
    assert profiler.main(args) == 0
    cov = json.loads(capsys.readouterr().out)
    assert cov["mlp"]["percent"] == 100.0 and cov["attention"]["measured"] == 0
    assert (folder / "mlp.csv.xz").is_file() and not (folder / "mlp.partial.csv").exists()
    assert profiler.main(["--output", str(tmp_path / "nothing"), "--coverage"]) == 2
    assert "no such profile folder" in capsys.readouterr().err


def test_cli_profile_coverage_and_bad_input(tmp_path):
    from click.testing import CliRunner

    from mtap_schemas.kinds import Exit
    from mtap_vidur_runner.cli import main

    r = CliRunner().invoke(main, ["profile", "--coverage", "--output", str(REPO / "data" / "profiles" / "vidur" / "h200")])
    assert r.exit_code == 0, r.output
    cov = json.loads(r.output)
    assert cov["mlp"]["percent"] == cov["attention"]["percent"] == 100.0
    r = CliRunner().invoke(main, ["profile", "--coverage", "--output", str(tmp_path / "none")])
    assert r.exit_code == Exit.USER_ERROR and "no such profile folder" in r.output
    r = CliRunner().invoke(main, ["profile", "--time-budget", "0", "--output", str(tmp_path / "p")])
    assert r.exit_code == Exit.USER_ERROR and not (tmp_path / "p").exists()
    r = CliRunner().invoke(main, ["profile", "--coverage"])
    assert r.exit_code == Exit.USER_ERROR and "--hardware" in r.output


# ---- the committed H200 profile ------------------------------------------------------------


def test_committed_h200_profile_is_complete_and_from_an_h200():
    tokens, inputs = profiler.grid_points(4096, 4096, 128, 4096)
    cov = profiler.coverage(H200_PROFILE, tokens, inputs)
    assert cov["mlp"] == {"measured": 259, "needed": 259, "percent": 100.0}
    assert cov["attention"] == {"measured": 10502, "needed": 10502, "percent": 100.0}
    assert cov["outside_grid"] == {"mlp": 0, "attention": 0}
    assert not list(H200_PROFILE.glob("*.partial.csv"))
    meta = json.loads((H200_PROFILE / "profile-meta.json").read_text())
    assert meta["coverage"] == cov and meta["hardware"] == "H200-SXM-141GB"
    assert meta["gpu_name"] == "NVIDIA H200" and all(r["gpu_name"] == "NVIDIA H200" for r in meta["runs"])
    assert sum(r["attention_measured"] for r in meta["runs"]) == 10502
    assert sum(r["mlp_measured"] - len(r.get("mlp_remeasured", {})) for r in meta["runs"]) == 259
    # no op whose median is more than 3x its fastest call (host launch gaps; re-measured in run 3)
    for r in _xz_rows(H200_PROFILE / "mlp.csv.xz"):
        for op in profiler.MLP_OPS:
            assert float(r[f"time_stats.{op}.median"]) <= 3 * float(r[f"time_stats.{op}.min"]), (r["num_tokens"], op)
    for kind, header in (("mlp", profiler.mlp_header()), ("attention", profiler.attention_header())):
        rows = _xz_rows(H200_PROFILE / f"{kind}.csv.xz")
        assert list(rows[0]) == header
    for r in _xz_rows(H200_PROFILE / "attention.csv.xz"):
        op = "attn_prefill" if r["is_prefill"] == "True" else "attn_decode"
        lo, med, hi = (float(r[f"time_stats.{op}.{s}"]) for s in ("min", "median", "max"))
        assert 0 < lo <= med <= hi


# ---- end to end on the CPU (torch) ---------------------------------------------------------


def test_a_budget_cut_run_is_continued_by_the_next_and_never_remeasures(tmp_path):
    pytest.importorskip("torch")
    kw = dict(TINY_GRID, compile_ops=False, log=lambda m: None)
    out = tmp_path / TINY
    m1 = profiler.run_profile(tmp_path, TINY, "cpu", time_budget_s=1e-9, command="first", **kw)
    # the deadline is checked before each point: nothing measured, everything written and counted
    assert m1["coverage"]["mlp"]["measured"] == 0 and m1["attention"]["skipped_for_time"] == m1["attention"]["grid_points"]
    # a killed run left two MLP points in its partial file
    tokens, inputs = _tiny_points()
    sink = profiler._Appender(out / "mlp.partial.csv", profiler.mlp_header())
    sink.add(_mlp_row(tokens[0], 123.0))
    sink.add(_mlp_row(tokens[1], 123.0))
    sink.close()
    m2 = profiler.run_profile(tmp_path, TINY, "cpu", command="second", **kw)
    assert m2["runs"][-1]["mlp_measured"] == len(tokens) - 2 and m2["runs"][-1]["attention_measured"] == len(inputs)
    assert m2["coverage"]["mlp"]["percent"] == m2["coverage"]["attention"]["percent"] == 100.0
    assert [r["command"] for r in m2["runs"]] == ["first", "second"]
    mlp = {int(r["num_tokens"]): r for r in _xz_rows(out / "mlp.csv.xz")}
    assert float(mlp[tokens[0]]["time_stats.emb.median"]) == 123.0  # kept, not measured again
    m3 = profiler.run_profile(tmp_path, TINY, "cpu", command="third", **kw)
    assert m3["runs"][-1]["mlp_measured"] == m3["runs"][-1]["attention_measured"] == 0
    # --remeasure-mlp: the row is measured again and the old medians are kept in the run's record
    m4 = profiler.run_profile(tmp_path, TINY, "cpu", command="fourth", remeasure_mlp=[tokens[0]], **kw)
    assert m4["runs"][-1]["mlp_measured"] == 1 and m4["runs"][-1]["mlp_remeasured"][str(tokens[0])]["emb"] == 123.0
    mlp = {int(r["num_tokens"]): r for r in _xz_rows(out / "mlp.csv.xz")}
    assert float(mlp[tokens[0]]["time_stats.emb.median"]) != 123.0 and m4["coverage"]["mlp"]["percent"] == 100.0
    assert m4["runs"][-1]["mlp_sleep_ms"] == profiler.MLP_SLEEP_MS
    with pytest.raises(profiler.ProfileError, match="max_seq_len"):
        profiler.run_profile(tmp_path, TINY, "cpu", **(kw | {"max_seq_len": 128}))
