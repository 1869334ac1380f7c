"""The roofline arithmetic and the bound selection."""

from __future__ import annotations

import json

import pytest

from mtap_analytical_runner.roofline import Hardware, estimate, op_latency, peak_key
from mtap_analytical_runner.trace import Op


@pytest.fixture(scope="module")
def gpus(data_dir):
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    return {e["id"]: Hardware.from_catalog(e) for e in catalog["hardware"]}


def test_catalog_figures(gpus):
    h100, a100 = gpus["H100-SXM5-80GB"], gpus["A100-SXM4-80GB"]
    assert h100.bandwidth == 3.35e12 and a100.bandwidth == 2039e9
    assert h100.peak_flops["fp16"] == 989.4e12 and a100.peak_flops["fp32"] == 19.5e12


def test_peak_key_by_dtype_and_precision():
    assert peak_key("fp16", "fp16") == "fp16"
    assert peak_key("fp32", "fp32") == "fp32"
    assert peak_key("fp32", "tf32") == "tf32"
    assert peak_key("fp16", "tf32") == "fp16"  # a half-precision op stays on the fp16 peak
    assert peak_key("bf16", "fp32") == "bf16"


def test_conv1_fp16_on_h100_is_memory_bound(gpus):
    h100 = gpus["H100-SXM5-80GB"]
    op = Op("convolution", "conv1", 236_027_904, 2 * (3 * 224 * 224 + 64 * 3 * 49 + 64 * 112 * 112), "fp16")
    latency, compute, memory = op_latency(op, h100, "fp16")
    assert compute == pytest.approx(236_027_904 / 989.4e12)
    assert memory == pytest.approx(1_925_504 / 3.35e12)
    assert latency == memory  # 0.575 us of bytes vs 0.239 us of math
    est = estimate([op], h100, "fp16")
    assert est.bound == "memory" and est.compute_bound_share == 0.0
    assert est.arithmetic_intensity == pytest.approx(236_027_904 / 1_925_504)


def test_conv1_fp32_on_a100_is_compute_bound_but_not_with_tf32(gpus):
    a100 = gpus["A100-SXM4-80GB"]
    op = Op("convolution", "conv1", 236_027_904, 4 * (3 * 224 * 224 + 64 * 3 * 49 + 64 * 112 * 112), "fp32")
    fp32 = estimate([op], a100, "fp32")
    assert fp32.bound == "compute"
    assert fp32.latency_s == pytest.approx(236_027_904 / 19.5e12)
    tf32 = estimate([op], a100, "tf32")
    assert tf32.latency_s == pytest.approx(max(236_027_904 / 156e12, 3_851_008 / 2039e9))
    assert tf32.bound == "memory"


def test_sum_over_operators_and_majority_bound(gpus):
    h100 = gpus["H100-SXM5-80GB"]
    matmul = Op("mm", "a", int(2e12), int(1e9), "fp16")  # 2.02 ms of math vs 0.30 ms of bytes
    relu = Op("relu", "b", 0, int(1e9), "fp16")  # no FLOPs: bytes only, 0.30 ms
    est = estimate([matmul, relu], h100, "fp16")
    assert est.flops == int(2e12) and est.bytes == int(2e9) and est.operators == 2
    assert est.latency_s == pytest.approx(2e12 / 989.4e12 + 1e9 / 3.35e12)
    assert est.compute_s == pytest.approx(2e12 / 989.4e12)
    assert est.memory_s == pytest.approx(2e9 / 3.35e12)
    assert est.compute_bound_share == pytest.approx((2e12 / 989.4e12) / est.latency_s)
    assert est.bound == "compute"
    assert estimate([relu, relu, relu, matmul], h100, "fp16").bound == "compute"  # 2.02 > 0.90 ms
    assert estimate([relu] * 7 + [matmul], h100, "fp16").bound == "memory"  # 2.09 > 2.02 ms
    assert est.peak_flops == 989.4e12


def test_missing_peak_is_named(gpus):
    eyeriss = gpus["Eyeriss-like"]
    with pytest.raises(KeyError, match="Eyeriss-like has no peak_flops.fp16"):
        op_latency(Op("mm", "", 10, 10, "fp16"), Hardware(eyeriss.id, eyeriss.name, eyeriss.peak_flops, 1.0), "fp16")
