"""The mapping onto LLMCompass's blocks, and the document's cases rebuilt from the raw outputs
LLMCompass gave in the committed run (data/evaluation/llmcompass/raw, kept with --keep-raw)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from mtap_llmcompass_runner.cases import plan
from mtap_llmcompass_runner.predict import compose, mapping_parameters, raw_name, request

OUT = REPO / "data/evaluation/llmcompass"
BY_KEY = {c.id: c for c in plan()}


def case(hw: str, key: str):
    return BY_KEY[f"{hw}:{key}"]


def test_llama_mapping():
    c = case("H100-SXM5-80GB", "llama2-7b.decode.b8.kv2048.fp16")
    r = request(c)
    assert (r.block, r.d_model, r.n_heads, r.batch, r.seq, r.layers) == ("decode", 4096, 32, 8, 2048, 32)
    assert r.head == (8, 4096, 32000)  # LM head on each sequence's new token
    p = request(case("H100-SXM5-80GB", "llama2-7b.prefill.b1.t512.fp16"))
    assert (p.block, p.seq, p.head) == ("prefill", 512, (1, 4096, 32000))  # last-token logits, as measured
    m = mapping_parameters(c, r)
    assert m["block_mlp_macs_per_token"] == 2 * 4096 * 16384
    assert m["model_mlp_macs_per_token"] == 3 * 4096 * 11008
    assert m["block_expresses_model_exactly"] is False
    assert m["llmcompass_compile_mode"] == "heuristic-GPU"


def test_gpt2_and_bert_heads():
    g = request(case("H200-SXM-141GB", "gpt2.model.b8.s512.fp16"))
    assert (g.block, g.d_model, g.layers, g.head) == ("prefill", 768, 12, (8 * 512, 768, 50257))
    b = request(case("H200-SXM-141GB", "bert-base.model.b8.s128.fp16"))
    assert b.head == (8, 768, 768)  # the pooler on the first token
    assert mapping_parameters(case("H200-SXM-141GB", "gpt2.model.b8.s512.fp16"), g)["block_expresses_model_exactly"] is True


def _committed():
    doc = json.loads((OUT / "llmcompass.tool-run.json").read_text())
    return {c["id"]: c for c in doc["cases"]}


def test_committed_ok_cases_are_rebuilt_from_their_raw_output():
    cases = _committed()
    ok = [c for c in cases.values() if c["status"] == "ok"]
    assert ok, "the committed document has no ok case"
    for c in ok:
        raw = json.loads((OUT / "raw" / raw_name(c["id"])).read_text())
        planned = BY_KEY[c["id"]]
        req = request(planned)
        assert raw["request"] == req.json("mtap-arch.json")
        rebuilt = compose(planned, req, raw["output"], c["parameters"], tuple(c["artifacts"]))
        assert rebuilt["metrics"] == c["metrics"], c["id"]
        assert rebuilt["parameters"] == c["parameters"], c["id"]


def test_raw_outputs_used_the_recorded_description():
    cases = _committed()
    for c in (c for c in cases.values() if c["status"] == "ok"):
        raw = json.loads((OUT / "raw" / raw_name(c["id"])).read_text())
        p = c["parameters"]
        assert raw["architecture"]["device"]["frequency_Hz"] == p["arch.device.frequency_Hz"]
        assert raw["output"]["system"]["io_bandwidth_bytes_per_s"] == pytest.approx(p["llmcompass_memory_bandwidth_bytes_per_s"], rel=1e-9)
        assert raw["output"]["system"]["core_count"] == p["arch.device.compute_chiplet.core_count"]


def test_parse_failures_are_named():
    c = case("H100-SXM5-80GB", "llama2-7b.decode.b1.kv512.fp16")
    r = request(c)
    bad = compose(c, r, None, c.parameters(), (), "Traceback ... boom")
    assert bad["status"] == "failed" and bad["error"]["kind"] == "parse-failed" and "boom" in bad["error"]["message"]
    out = {
        "block_latency_s": float("nan"),
        "block_log": "0",
        "system": {"overhead_s": {"matmul": 0, "softmax": 0, "layernorm": 0, "gelu": 0}},
    }
    nan = compose(c, r, out, c.parameters())
    assert nan["status"] == "failed" and nan["error"]["kind"] == "invalid-value"
