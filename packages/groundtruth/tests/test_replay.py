"""Suite replay (mtap_groundtruth.replay): compositions, the forward pass and the CLI, on CPU.

The GPU run itself (device timing, torch.compile'd ops, FlashAttention) is exercised on the lent
H200 (data/evaluation/groundtruth/h200-vidur-replay*.tool-run.json, README there)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_groundtruth import replay
from mtap_groundtruth.cli import main

MODEL = {"name": "meta-llama/Llama-2-7b-hf", "key": "llama2-7b", "layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32,
         "ffn": 11008, "vocab": 32768}
COMPOSITIONS = [
    {"key": "p130x130", "prefill": [[130, 130]], "decode": [0, 0], "batches": 1},
    {"key": "d1x132", "prefill": [], "decode": [1, 132], "batches": 5},
    {"key": "p20x52-p40x40-d3x300", "prefill": [[20, 52], [40, 40]], "decode": [3, 300], "batches": 2},
]


def _plan(tmp_path: Path, compositions=None, **over) -> Path:
    doc = {"schema": "batch-plan", "schema_version": "1.0.0", "model": dict(MODEL), "hardware": "H200-SXM-141GB", "workload": "W5",
           "sources": [{"path": "data/evaluation/vidur/outputs/h200-vllm-qps1/batch_composition.csv.xz", "sha256": "0" * 64}],
           "compositions": copy.deepcopy(compositions or COMPOSITIONS)} | over
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(doc))
    return p


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_composition_keys_round_trip_and_count_tokens() -> None:
    c = replay.parse_key("p40x40-p20x52-d3x300")
    assert c.prefill == ((20, 52), (40, 40)) and c.decode == (3, 300)
    assert c.key == "p20x52-p40x40-d3x300"  # prefill parts sorted
    assert c.tokens == 63 and c.kv_tokens == 52 + 40 + 3 * 300
    assert replay.parse_key("d1x132").tokens == 1
    for bad in ("", "p0x4", "p8x4", "d0x5", "q1x2", "d1x3-d1x2", "d1x3-d2x3", "d1x2-p1x2", "p1x2+d1x3"):
        with pytest.raises(ValueError):
            replay.parse_key(bad)


def test_v2_keys_name_each_decode_length_and_the_replay_reads_exactly_those_kv_rows() -> None:
    c = replay.parse_key("p20x52-d2x120-d1x300")
    assert c.groups == ((2, 120), (1, 300)) and c.decode == (3, 300)
    assert c.key == "p20x52-d2x120-d1x300" and c.tokens == 23
    assert c.kv_tokens == 52 + 2 * 120 + 300  # v1 (padded) would read 52 + 3 * 300
    s = replay.ReplaySettings(device=torch.device("cpu"), tiny=True)
    model = replay.Model(MODEL, c.kv_tokens, c.tokens, s)
    with torch.inference_mode():
        out = model.batch(c)()
    assert out.shape == (23, replay.TINY["hidden"]) and torch.isfinite(out).all()
    # the padded v1 composition of the same batch reads more K/V than these buffers hold
    with pytest.raises(ValueError, match="K/V rows"):
        model.batch(replay.parse_key("p20x52-d3x300"))


def test_plan_v2_cases_and_a_v1_plan_refuses_several_decode_parts() -> None:
    base = {"model": {"key": "llama2-7b"}, "workload": "W5"}
    v2 = {**base, "schema_version": "2.0.0",
          "compositions": [{"key": "d2x120-d1x300", "prefill": [], "decode": [[2, 120], [1, 300]], "batches": 4}]}
    (case,) = replay.plan_cases(v2)
    assert case.key == "llama2-7b.batch.d2x120-d1x300.fp16" and case.params["decode_groups"] == 2
    assert case.params["decode_requests"] == 3
    v1 = {**base, "schema_version": "1.0.0",
          "compositions": [{"key": "d2x120-d1x300", "prefill": [], "decode": [3, 300], "batches": 4}]}
    with pytest.raises(ValueError, match="batch-plan v2"):
        replay.plan_cases(v1)


def test_the_forward_pass_runs_every_attention_kind_with_the_right_shapes() -> None:
    s = replay.ReplaySettings(device=torch.device("cpu"), tiny=True)
    comp = replay.parse_key("p20x52-p40x40-d3x300")
    model = replay.Model(MODEL, comp.kv_tokens, comp.tokens, s)
    assert model.layers == replay.TINY["layers"] and not model.compiled
    with torch.inference_mode():
        out = model.batch(comp)()
    assert out.shape == (63, replay.TINY["hidden"]) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="K/V rows"):
        model.batch(replay.parse_key("d4x300"))


def test_cpu_replay_writes_one_case_per_composition(tmp_path: Path, data_dir: Path) -> None:
    plan = _plan(tmp_path)
    r = invoke("run", "--suite", "replay", "--plan", str(plan), "--device", "cpu", "--tiny", "--data-dir", str(data_dir),
               "--output", str(tmp_path / "out"), "--name", "rp", "--iters", "2")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "out" / "rp.tool-run.json")
    assert [c["key"] for c in doc["cases"]] == [f"llama2-7b.batch.{c['key']}.fp16" for c in COMPOSITIONS]
    for c, want in zip(doc["cases"], COMPOSITIONS):
        assert c["status"] == "ok" and c["workload"] == "W5" and c["hardware"] == "cpu"
        p = c["parameters"]
        assert p["composition"] == want["key"] and p["simulator_batches"] == want["batches"] and p["tiny"] is True
        m = {(x["name"], x.get("timing")): x["value"] for x in c["metrics"]}
        assert m[("latency", "eager-end-to-end")] > 0 and m[("latency_samples", "eager-end-to-end")] == 2
        assert ("latency", "device") not in m  # device time needs CUDA: on CPU only the host clock
    assert all(c["parameters"]["warmup"] == 1 for c in doc["cases"])  # replay's default: one untimed call
    r = invoke("cases", "--suite", "replay", "--plan", str(plan), "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["id"] for row in rows] == [f"H200-SXM-141GB:llama2-7b.batch.{c['key']}.fp16" for c in COMPOSITIONS]


def test_plan_errors_are_one_line_exit_2(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    common = ("--device", "cpu", "--tiny", "--data-dir", str(data_dir), "--output", str(out))
    r = invoke("run", "--suite", "replay", *common)
    assert r.exit_code == 2 and "--plan" in r.output and len(r.output.strip().splitlines()) == 1
    r = invoke("run", "--suite", "floor", "--plan", str(_plan(tmp_path)), *common)
    assert r.exit_code == 2 and "only suite replay" in r.output
    bad = _plan(tmp_path, [{"key": "p20x52", "prefill": [[20, 60]], "decode": [0, 0], "batches": 1}])
    r = invoke("run", "--suite", "replay", "--plan", str(bad), *common)
    assert r.exit_code == 2 and "disagree with the key" in r.output and len(r.output.strip().splitlines()) == 1
    bad = _plan(tmp_path, [{"key": "p20x52+d1x3", "prefill": [[20, 52]], "decode": [1, 3], "batches": 1}])
    r = invoke("run", "--suite", "replay", "--plan", str(bad), *common)
    assert r.exit_code == 2 and "compositions" in r.output and "batch-plan" in r.output
    assert not list(out.glob("*.json"))


def test_a_spent_time_budget_leaves_the_rest_out_of_the_document(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    clock = iter(range(0, 10_000, 1000))  # every look at the clock is 1000 s later
    monkeypatch.setattr(replay.time, "monotonic", lambda: float(next(clock)))
    cases = replay.plan_cases(json.loads(_plan(tmp_path).read_text()))
    s = replay.ReplaySettings(device=torch.device("cpu"), tiny=True, reps=1, eager_reps=1)
    out = replay.run_cases(cases, {"model": MODEL}, s, "cpu", deadline=500.0)
    assert [c["status"] for c in out] == ["ok"]  # the first started before the deadline, none after
