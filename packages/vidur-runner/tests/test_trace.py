"""VIDUR on a serving trace: the trace command, the trace-replay arguments, and a real run whose
requests are exactly the trace's (vidur 0.0.26, offline, the committed H100 profile)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import REPO

import mtap_schemas as ms
from mtap_vidur_runner import simulate
from mtap_vidur_runner import trace as trace_mod
from mtap_vidur_runner.cli import main

OUTPUTS = REPO / "data" / "evaluation" / "vidur" / "outputs"
COMMITTED = REPO / "data" / "workloads" / "serving" / "w5-serving-trace.json"


def test_trace_command_takes_the_first_requests_and_their_arrivals(tmp_path):
    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, ["trace", "--point", f"{OUTPUTS / 'h200-vllm-qps2'}:qps2:2:5",
                                  "--point", f"{OUTPUTS / 'h200-vllm-static'}:static:static:3", "--output", str(out)])
    assert r.exit_code == 0, r.output
    doc = ms.read(out, "serving-trace")
    q, s = doc["points"]
    rows = trace_mod.read_requests(OUTPUTS / "h200-vllm-qps2" / "request_metrics.csv.xz")
    assert [x["prompt_tokens"] for x in q["requests"]] == [x["prompt_tokens"] for x in rows[:5]]
    assert q["requests"][0]["arrival_s"] == 0.0
    assert q["requests"][4]["arrival_s"] == pytest.approx(sum(x["delay_s"] for x in rows[1:5]))
    assert s["qps"] is None and {x["arrival_s"] for x in s["requests"]} == {0.0}


def test_the_committed_trace_is_what_the_command_writes(tmp_path):
    committed = ms.read(COMMITTED, "serving-trace")
    args = ["trace"]
    for p in committed["points"]:
        rate = "static" if p["qps"] is None else f"{p['qps']:g}"
        args += ["--point", f"{OUTPUTS / ('h200-vllm-' + p['id'])}:{p['id']}:{rate}:{len(p['requests'])}"]
    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, [*args, "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["points"] == committed["points"]


@pytest.mark.parametrize("spec, message", [
    ("nowhere:qps1:1:5", "cannot read"),
    (f"{OUTPUTS / 'h200-vllm-qps1'}:qps1:fast:5", "QPS must be a number"),
    (f"{OUTPUTS / 'h200-vllm-qps1'}:qps1:1:501", "has 500 requests"),
    ("justone", "expected DIR:ID:QPS:N"),
])
def test_trace_command_user_errors(tmp_path, spec, message):
    r = CliRunner().invoke(main, ["trace", "--point", spec, "--output", str(tmp_path / "t.json")])
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "t.json").exists()


def test_trace_replay_arguments_replace_the_synthetic_generator(tmp_path):
    case = simulate.SimCase("m", "h100", "h100_pairwise_nvlink", "sarathi", 2.0, 5, 1, 4096, 20.0, 42, 256,
                            trace_file="t.csv", batch_size_cap=64, block_size=256, num_blocks=1000)
    args = simulate.vidur_args(case, "c", "n", tmp_path, tmp_path)
    assert "--trace_request_generator_config_trace_file" in args and "synthetic" not in args
    for flag in ("prefill", "decode", "time"):
        i = args.index(f"--trace_request_generator_config_{flag}_scale_factor")
        assert args[i + 1] == "1"
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--sarathi_scheduler_config_batch_size_cap"] == "64"
    assert pairs["--cache_config_block_size"] == "256" and pairs["--cache_config_num_blocks"] == "1000"
    assert pairs["--sarathi_scheduler_config_chunk_size"] == "256"


def test_trace_csv_is_in_arrival_order(tmp_path):
    point = {"id": "p", "requests": [{"id": 3, "arrival_s": 0.5, "prompt_tokens": 9, "output_tokens": 2},
                                     {"id": 1, "arrival_s": 0.0, "prompt_tokens": 7, "output_tokens": 3}]}
    trace_mod.write_trace_csv(point, tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "Date,Time,PromptTokenCount,CompletionTokenCount"
    assert lines[1:] == [f"{trace_mod.TRACE_DATE},0.0,7,3", f"{trace_mod.TRACE_DATE},0.5,9,2"]


def test_vidur_predicts_exactly_the_traced_requests(tmp_path):
    pytest.importorskip("vidur")
    doc = ms.read(COMMITTED, "serving-trace")
    qps8 = next(p for p in doc["points"] if p["id"] == "qps8")
    small = {**doc, "points": [{**qps8, "requests": qps8["requests"][:12]}]}
    tpath = tmp_path / "trace.json"
    tpath.write_text(json.dumps(small))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"trace": str(tpath), "hardware": ["H100-SXM5-80GB"], "variant": "matched", "scheduler": "sarathi",
                               "sarathi_chunk_size": 256, "batch_size_cap": 64,
                               "reasoning": "test", "determinism_check": False}))
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--output", str(tmp_path / "out"), "--jobs", "1",
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    out = ms.read_tool_run(tmp_path / "out" / "vidur-serving-matched.tool-run.json")
    assert out["tool"]["name"] == "vidur"
    keys = [c["key"] for c in out["cases"]]
    assert keys[0] == "llama2-7b.serving.hfcb.qps8.n12.fp16"
    assert keys[1:] == [f"llama2-7b.serving.hfcb.qps8.n12.fp16.req{r['id']}" for r in qps8["requests"][:12]]
    point = out["cases"][0]
    assert point["parameters"]["batch_size_cap"] == 64 and point["parameters"]["variant"] == "matched"
    got = {m["name"]: m["value"] for m in point["metrics"]}
    assert got["requests"] == 12 and 0 < got["ttft_p50"] < got["e2e_latency_p50"]
    for c in out["cases"][1:]:
        m = {x["name"]: x["value"] for x in c["metrics"]}
        assert 0 < m["ttft"] <= m["e2e_latency"]
