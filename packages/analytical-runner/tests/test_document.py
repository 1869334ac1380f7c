"""Cases are built by mtap_schemas.toolrun: a degenerate value gives a failed/invalid-value case, not a crash."""

from __future__ import annotations

import json

import pytest

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_analytical_runner.cases import Case, plan, shape_id
from mtap_analytical_runner.document import evaluate, ok_case, units_for
from mtap_analytical_runner.models import Shape
from mtap_analytical_runner.roofline import Estimate, Hardware
from mtap_analytical_runner.trace import Op, Trace


@pytest.fixture(scope="module")
def h100(data_dir) -> Hardware:
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    return next(Hardware.from_catalog(e) for e in catalog["hardware"] if e["id"] == "H100-SXM5-80GB")


CONV1 = Case("resnet50.conv1.b1.fp16", "W1", "H100-SXM5-80GB", "fp16", Shape("resnet50", "model", 1, "fp16"), layer="conv1")


def _doc(case: dict) -> None:
    ms.validate(tr.ToolRun("analytical-runner", "2.0.0", tr.Tool("analytical", "1.0.0", "native", "x"), argv=["run"])
                .document([case]), "tool-run", 2)


def test_real_op_gives_an_ok_case(h100):
    op = Op("convolution", "conv1", 236_027_904, 1_925_504, "fp16")
    case = evaluate(CONV1, Trace([op]), h100, [])
    assert case["status"] == "ok" and case["key"] == CONV1.key
    _doc(case)


@pytest.mark.parametrize(
    "op, expected",
    [
        (Op("convolution", "conv1", 236_027_904, 0, "fp16"), "arithmetic_intensity (FLOPs / bytes): divisor is 0"),
        (Op("convolution", "conv1", 236_027_904, -1_925_504, "fp16"), "cannot be negative"),
        (Op("convolution", "conv1", -10, 100, "fp16"), "cannot be negative"),
    ],
)
def test_degenerate_counts_give_invalid_value(h100, op, expected):
    case = evaluate(CONV1, Trace([op]), h100, [])
    assert case["status"] == "failed" and case["error"]["kind"] == "invalid-value", case
    assert expected in case["error"]["message"] and CONV1.key in case["error"]["message"]
    _doc(case)


def test_non_finite_estimate_gives_invalid_value(h100):
    est = Estimate(flops=10, bytes=10, latency_s=float("inf"), compute_s=1e999, memory_s=0.0, compute_bound_share=1.0,
                   operators=1, peak_flops=989.4e12)
    case = ok_case(CONV1, est, h100, [])
    assert case["status"] == "failed" and case["error"]["kind"] == "invalid-value" and "finite" in case["error"]["message"]
    _doc(case)


def test_a_scope_with_no_operator_is_unsupported(h100):
    case = evaluate(CONV1, Trace([Op("relu", "layer1", 0, 10, "fp16")]), h100, [])
    assert (case["status"], case["error"]["kind"]) == ("unsupported", "no-operators")


def test_units_are_the_distinct_shapes_in_plan_order(h100):
    selected = plan(("H100-SXM5-80GB",))
    units = units_for(selected, {"H100-SXM5-80GB": h100}, [])
    # resnet, bert, gpt2, prefill, decode, mobilenet-v2 and vgg16 (4 batches x fp32/fp16; their b1 layers share the b1 trace)
    assert len(units) == len({c.shape for c in selected}) == 4 + 8 + 8 + 5 + 18 + 8 + 8 == 59
    assert len({u.ident for u in units}) == len(units)
    assert units[0].ident == shape_id(selected[0].shape) == "resnet50.model.b1.fp32"
    assert sum(len(u.cases) for u in units) == len(selected)
    assert shape_id(Shape("llama2-7b", "decode", 8, "fp16", kv=1024)) == "llama2-7b.decode.b8.kv1024.fp16"
