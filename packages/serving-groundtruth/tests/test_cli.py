"""The CLI end to end on the CPU with a tiny Llama served by the real engine (transformers 5.17.0)."""

from __future__ import annotations

import json
import lzma

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_serving_groundtruth import cli


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def test_cases_lists_the_points_in_order(tiny_trace):
    r = invoke("cases", "--trace", str(tiny_trace), "--repeat", "qps8")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["id"] for x in lines] == ["qps8", "static", "qps8.run2"]
    assert lines[0]["requests"] == 8 and lines[1]["arrival"] == "static"


@pytest.mark.parametrize("args, message", [
    ([], "--trace: a serving-trace v1 document is required"),
    (["--points", "qps99"], "no point 'qps99'"),
    (["--device", "cpu"], "needs --tiny"),
])
def test_user_errors_are_one_line_exit_2(tiny_trace, tmp_path, args, message):
    base = [] if not args or args[0] != "--points" and args[0] != "--device" else ["--trace", str(tiny_trace)]
    r = invoke("run", *base, *args, "--output", str(tmp_path))
    assert r.exit_code == 2
    assert message in r.output and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not list(tmp_path.glob("*.tool-run.json"))


def test_a_trace_that_is_not_a_serving_trace_names_the_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "serving-trace", "schema_version": "1.0.0", "workload": "W5", "model": "llama2-7b",
                               "source": {"what": "x", "files": []},
                               "points": [{"id": "p", "arrival": "poisson", "qps": 1, "requests": [
                                   {"id": 0, "arrival_s": 0, "prompt_tokens": 0, "output_tokens": 1}]}]}))
    r = invoke("cases", "--trace", str(bad))
    assert r.exit_code == 2 and "prompt_tokens" in r.output and str(bad) in r.output


def test_serves_the_trace_and_writes_a_valid_document(tiny_trace, tiny_config, tmp_path):
    out, raw = tmp_path / "out", tmp_path / "raw"
    r = invoke("run", "--trace", str(tiny_trace), "--device", "cpu", "--tiny", "--config", str(tiny_config),
               "--output", str(out), "--keep-raw", str(raw), "--repeat", "qps8")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(out / "serving-groundtruth.tool-run.json")
    assert doc["tool"]["name"] == "transformers-cb" and doc["tool"]["backend"] == "measured"
    cases = {c["key"]: c for c in doc["cases"]}
    point = cases["tiny-llama.serving.hfcb.qps8.n8.fp32"]
    assert point["status"] == "ok"
    names = {m["name"] for m in point["metrics"]}
    assert {"ttft_p50", "tpot_p99", "e2e_latency_p90", "makespan", "ttft_p50_spread"} <= names
    assert point["parameters"]["scheduler"] == "fifo" and point["parameters"]["num_blocks"] == 64
    assert "tiny-llama.serving.hfcb.qps8.n8.fp32.run2" in cases
    trace = json.loads(tiny_trace.read_text())
    for p in trace["points"]:
        for req in p["requests"]:
            c = cases[f"tiny-llama.serving.hfcb.{p['id']}.n8.fp32.req{req['id']}"]
            got = {m["name"]: m["value"] for m in c["metrics"]}
            assert c["status"] == "ok" and 0 < got["ttft"] <= got["e2e_latency"]
            assert ("tpot" in got) == (req["output_tokens"] > 1)
    # the raw record: every request generated exactly its trace's tokens; steps name the trace's requests
    kept = json.loads(lzma.decompress((raw / "cpu-qps8.json.xz").read_bytes()))
    assert all(r["tokens"] == r["output_tokens"] for r in kept["requests"])
    ids = {r["id"] for r in trace["points"][0]["requests"]}
    assert {rid for s in kept["steps"] for rid, _, _ in s["requests"]} == ids
    assert sum(q for s in kept["steps"] for rid, q, _ in s["requests"] if rid == 0) == \
        trace["points"][0]["requests"][0]["prompt_tokens"] + trace["points"][0]["requests"][0]["output_tokens"] - 1


def test_an_interrupted_run_resumes_with_only_the_missing_points(tiny_trace, tiny_config, tmp_path, monkeypatch):
    import mtap_serving_groundtruth.engine as engine_mod

    out = tmp_path / "out"
    args = ["run", "--trace", str(tiny_trace), "--device", "cpu", "--tiny", "--config", str(tiny_config), "--output", str(out)]
    served: list[str] = []
    real = engine_mod.Engine.serve

    def interrupting(self, requests, **kw):
        if kw.get("label") == "static-":
            raise KeyboardInterrupt
        served.append(kw.get("label"))
        return real(self, requests, **kw)

    monkeypatch.setattr(engine_mod.Engine, "serve", interrupting)
    first = invoke(*args)
    assert first.exit_code == 130 and "--resume" in first.output
    assert not (out / "serving-groundtruth.tool-run.json").exists()
    assert (out / ".serving-groundtruth.progress.jsonl").exists()
    assert served == ["warm-", "qps8-"]

    served.clear()
    monkeypatch.setattr(engine_mod.Engine, "serve", lambda self, requests, **kw: served.append(kw.get("label")) or real(self, requests, **kw))
    second = invoke(*args, "--resume")
    assert second.exit_code == 0, second.output
    assert served == ["warm-", "static-"]  # qps8 came from the checkpoint
    doc = ms.read_tool_run(out / "serving-groundtruth.tool-run.json")
    points = [c for c in doc["cases"] if ".req" not in c["key"]]
    assert [c["parameters"]["point"] for c in points] == ["qps8", "static"] and all(c["status"] == "ok" for c in points)
    assert not (out / ".serving-groundtruth.progress.jsonl").exists()


def test_points_past_the_time_budget_are_failed_cases_for_resume(tiny_trace, tiny_config, tmp_path):
    out = tmp_path / "out"
    r = invoke("run", "--trace", str(tiny_trace), "--device", "cpu", "--tiny", "--config", str(tiny_config),
               "--output", str(out), "--time-budget", "5")
    assert r.exit_code == 3, r.output  # the contract's "every case failed"
    doc = ms.read_tool_run(out / "serving-groundtruth.tool-run.json")
    assert {c["status"] for c in doc["cases"]} == {"failed"}
    assert all("--time-budget" in c["error"]["message"] and c["error"]["kind"] == "timeout" for c in doc["cases"])
    assert (out / ".serving-groundtruth.progress.jsonl").exists()  # kept for --resume
    again = invoke("run", "--trace", str(tiny_trace), "--device", "cpu", "--tiny", "--config", str(tiny_config),
                   "--output", str(out), "--resume", "--overwrite")
    assert again.exit_code == 0, again.output
    doc = ms.read_tool_run(out / "serving-groundtruth.tool-run.json")
    assert {c["status"] for c in doc["cases"]} == {"ok"}
