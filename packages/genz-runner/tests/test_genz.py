"""Real GenZ calls: the model catalog, the systems, reference values, unsupported cases."""

from __future__ import annotations

import pytest

import mtap_schemas as ms
from mtap_genz_runner.cases import MODELS, plan
from mtap_genz_runner.genz import BERT_REASON, FP32_REASON, GIB, genz_system, model_config, predict

H100, H200 = "H100-SXM5-80GB", "H200-SXM-141GB"


@pytest.fixture(scope="module")
def catalog(data_dir):
    return {e["id"]: e for e in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


@pytest.fixture(scope="module")
def systems(catalog):
    return {h: genz_system(h, catalog[h], "data/hardware/hardware.json") for h in (H100, H200)}


def _case(hw, key):
    return next(c for c in plan((hw,)) if c.key == key)


def _metrics(doc_case):
    return {m["name"]: m for m in doc_case["metrics"]}


@pytest.mark.parametrize("model", ["llama2-7b", "gpt2"])
def test_genz_catalog_entry_equals_our_model(model):
    got = model_config(model)
    assert {k: got[k] for k in MODELS[model]} == MODELS[model]
    assert got["kv_heads"] == got["heads"]  # both are multi-head (no GQA), as measured
    assert got["ffn_matrices"] == (2 if model == "llama2-7b" else 1)  # SwiGLU gate+up vs GPT-2's single up


def test_h100_is_genz_own_system(systems):
    from Systems.system_configs import system_configs

    s = systems[H100]
    assert s.genz_name == "H100_GPU" and s.spec() == "H100_GPU"
    assert dict(s.figures) == system_configs["H100_GPU"]
    # GenZ's H100: 989 TFLOPS, 3400 "GB/s" that GenZ reads as GiB/s (3.65e12 B/s, the datasheet says 3.35e12)
    assert s.parameters()["bandwidth_bytes_per_s"] == 3400 * GIB


def test_h200_system_is_built_from_the_hardware_catalog(systems, catalog):
    entry = catalog[H200]
    s = systems[H200]
    assert s.genz_name is None and s.source == f"data/hardware/hardware.json#{H200}"
    spec = s.spec()
    assert spec["real_values"] is True
    assert spec["Flops"] * 1e12 == pytest.approx(entry["peak_flops"]["fp16"])
    assert spec["Memory_BW"] * GIB == pytest.approx(entry["memory"]["bandwidth_bytes_per_s"])
    assert spec["Memory_size"] * GIB == pytest.approx(entry["memory"]["bytes"])
    assert spec["ICN"] * GIB == pytest.approx(entry["interconnect"]["bandwidth_bytes_per_s"])
    p = s.parameters()
    assert p["peak_flops_per_s"] == pytest.approx(989.4e12) and p["bandwidth_bytes_per_s"] == pytest.approx(4.8e12)


@pytest.mark.parametrize(
    "hw_key",
    [
        "H100-SXM5-80GB:llama2-7b.decode.b1.kv512.fp16",
        "H100-SXM5-80GB:llama2-7b.prefill.b1.t2048.fp16",
        "H100-SXM5-80GB:gpt2.model.b8.s512.fp16",
    ],
)
def test_runner_reproduces_genz_captured_latency(hw_key, reference, systems):
    """The runner's case equals the latency GenZ itself gave (fixtures/README.md: the direct call)."""
    hw, key = hw_key.split(":")
    out = predict(_case(hw, key), systems[hw])
    assert out["status"] == "ok", out["error"]
    lat = _metrics(out)["latency"]
    assert lat["unit"] == "ms" and lat["kind"] == "prediction" and lat["timing"] == "simulated"
    assert lat["value"] == pytest.approx(reference["latency"][hw_key], rel=1e-5)


def test_h200_decode_is_the_weights_over_the_catalog_bandwidth(systems):
    """A batch-1 decode step is memory-bound in GenZ: ~all of it is the 16-bit weights read at the
    catalog's 4.8 TB/s (a check of the catalog-built system that does not depend on GenZ's numbers)."""
    out = predict(_case(H200, "llama2-7b.decode.b1.kv512.fp16"), systems[H200])
    assert out["status"] == "ok", out["error"]
    p = out["parameters"]
    lat_s = _metrics(out)["latency"]["value"] / 1e3
    weights_s = p["weights_bytes"] / 4.8e12
    assert weights_s == pytest.approx(lat_s, rel=0.03)
    # GenZ's decode weights: the linear layers of Llama-2-7B (32 x (4 x 4096^2 attention + 3 x 4096 x 11008
    # FFN)) and the 32000 x 4096 LM head, 2 bytes each; no embedding lookup, no norm weights
    assert p["weights_bytes"] == pytest.approx(2 * (32 * (4 * 4096**2 + 3 * 4096 * 11008) + 32000 * 4096), rel=1e-5)
    assert p["hardware_source"] == f"data/hardware/hardware.json#{H200}"
    assert p["genz_entry"] == "GenZ.decode_moddeling" and p["input_tokens"] == 512 and p["output_tokens"] == 1 and p["Bb"] == 1
    assert p["genz_bits"] == "bf16" and p["tensor_parallel"] == 1 and p["is_offload"] is False
    # the same computation's FLOPs as the ground truth counted (13,483,114,496 for this case)
    assert _metrics(out)["flops"]["value"] == pytest.approx(13_483_114_496, rel=1e-5)


def test_prefill_parameters_name_genz_lm_head(systems):
    out = predict(_case(H100, "llama2-7b.prefill.b1.t128.fp16"), systems[H100])
    p = out["parameters"]
    assert p["genz_entry"] == "GenZ.prefill_moddeling" and p["input_tokens"] == 128 and p["lm_head_tokens"] == 128
    assert p["genz_operators"].split(", ")[0] == "embeddings" and p["genz_operators"].split(", ")[-1] == "classifier"
    assert 0 < p["classifier_latency_ms"] < _metrics(out)["latency"]["value"]
    assert out["artifacts"] == []  # GenZ's own H100: no catalog figure used


@pytest.mark.parametrize(
    "key, reason",
    [
        ("bert-base.model.b1.s128.fp16", BERT_REASON),
        ("bert-base.model.b8.s512.fp32", BERT_REASON),
        ("gpt2.model.b1.s128.fp32", FP32_REASON),
    ],
)
def test_unsupported_cases_name_the_reason(key, reason, systems):
    out = predict(_case(H100, key), systems[H100])
    assert out["status"] == "unsupported" and out["metrics"] == []
    assert out["error"]["kind"] == "unsupported-case" and out["error"]["message"] == " ".join(reason.split())
    assert "BERT" in BERT_REASON and "FP32" in FP32_REASON and "494.5" in FP32_REASON


def test_fp32_reason_matches_genz_precision_model():
    """FP32_REASON's figures are GenZ's: f32 costs twice bf16 (half the peak), on H100_GPU 989/2."""
    from GenZ.system import System
    from Systems.system_configs import system_configs

    assert System.compute_multiplier["f32"] == 2 * System.compute_multiplier["bf16"]
    assert system_configs["H100_GPU"]["Flops"] / 2 == 494.5


def test_genz_has_no_bert():
    from GenZ.Models import get_configs

    for name in ("bert-base", "bert", "google-bert/bert-base-uncased", "bert-base-uncased"):
        with pytest.raises(ValueError, match="model name parsed incorrect"):
            get_configs(name)


def test_genz_failure_is_a_failed_case(systems, monkeypatch):
    import mtap_genz_runner.genz as g

    def boom(case, system):
        raise ValueError("All params would not fit on chip.\nmore")

    monkeypatch.setattr(g, "call_genz", boom)
    out = predict(_case(H100, "llama2-7b.decode.b1.kv512.fp16"), systems[H100])
    assert out["status"] == "failed" and out["error"]["kind"] == "tool-crashed"
    assert out["error"]["message"] == "GenZ raised ValueError: All params would not fit on chip."
