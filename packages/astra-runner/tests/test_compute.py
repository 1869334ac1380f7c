from __future__ import annotations

import hashlib
import json

import pytest

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_astra_runner import compute, resnet50


@pytest.fixture
def layers(data_dir):
    return resnet50.layers(data_dir)


@pytest.fixture
def hgx(data_dir):
    hw = json.loads((data_dir / "hardware" / "hardware.json").read_text())["hardware"]
    return {h["id"]: h for h in hw}["HGX-H100x8"]


def test_roofline_conv1(hgx, layers):
    lt = compute.roofline(layers, hgx, 32)
    conv1 = layers[0]
    flops = 2 * conv1.macs(32)
    a_in, a_out = conv1.activation_elements(32)
    expect = max(flops / 67e12, 4 * (a_in + a_out + conv1.params) / 3.35e12) * 1e6
    assert lt.forward_us["conv1"] == pytest.approx(expect)
    assert lt.source == "roofline" and "HGX-H100x8" in lt.detail
    name, fwd, bwd, grad, fl = lt.step_layers(32)[0]
    assert (name, fwd, bwd, grad, fl) == ("conv1", round(expect), round(2 * expect), 4 * conv1.params, flops)


def _gt_doc(layers, values_ms, timing="device", drop=None):
    """A ground-truth tool-run v2 document as groundtruth writes it (built with the kit)."""
    cases = []
    for layer in layers:
        if layer.name == drop:
            continue
        cases.append(tr.ok(f"layer/{layer.slug}", workload="W1", hardware="H100-SXM5-80GB",
                           key=f"resnet50.layer.{layer.slug}.b32.fp32", metrics=[
                               tr.metric("latency", values_ms[layer.name] * 3, "ms", "measurement", timing="eager-end-to-end"),
                               tr.metric("latency", values_ms[layer.name], "ms", "measurement", timing=timing)]))
    return tr.ToolRun("groundtruth", "1.0.0", tr.Tool("groundtruth", None, "measured", "torch 2.13.0"), argv=[]).document(cases)


def test_groundtruth_preferred_when_complete(tmp_path, hgx, layers):
    values = {layer.name: 0.01 * (i + 1) for i, layer in enumerate(layers)}
    gt = tmp_path / "evaluation" / "groundtruth"
    gt.mkdir(parents=True)
    (gt / "groundtruth.tool-run.json").write_text(ms.dumps(_gt_doc(layers, values)))
    lt = compute.layer_times("auto", tmp_path, hgx, 32, layers)
    assert lt.source == "groundtruth"
    assert lt.forward_us["conv1"] == pytest.approx(10.0)  # 0.01 ms, device timing preferred
    assert lt.detail.startswith("data/evaluation/groundtruth/groundtruth.tool-run.json")
    assert lt.sha256 == hashlib.sha256((gt / "groundtruth.tool-run.json").read_bytes()).hexdigest()


def test_incomplete_groundtruth_falls_back_or_errors(tmp_path, hgx, layers):
    values = {layer.name: 0.01 for layer in layers}
    gt = tmp_path / "evaluation" / "groundtruth"
    gt.mkdir(parents=True)
    (gt / "g.tool-run.json").write_text(ms.dumps(_gt_doc(layers, values, drop="fc")))
    assert compute.layer_times("auto", tmp_path, hgx, 32, layers).source == "roofline"
    with pytest.raises(LookupError, match="resnet50.layer"):
        compute.layer_times("groundtruth", tmp_path, hgx, 32, layers)


def test_unreadable_groundtruth_is_passed_over(tmp_path, hgx, layers):
    values = {layer.name: 0.02 for layer in layers}
    gt = tmp_path / "evaluation" / "groundtruth"
    gt.mkdir(parents=True)
    (gt / "a.tool-run.json").write_bytes(b'{"schema": "tool-run", "cases": ["\xff"]}')  # not UTF-8: no crash
    (gt / "b.tool-run.json").write_text(ms.dumps(_gt_doc(layers, values)))
    lt = compute.layer_times("auto", tmp_path, hgx, 32, layers)
    assert lt.source == "groundtruth" and lt.detail.startswith("data/evaluation/groundtruth/b.tool-run.json")


def test_committed_ground_truth_gives_the_committed_ddp_inputs(data_dir, tmp_path, layers):
    """The committed astra-sim document's ResNet-50 steps were built from the committed ground
    truth: reading it again (tool-run v1 or v2) gives the same per-layer compute and traces."""
    from mtap_astra_runner import traces

    doc = ms.read_tool_run(data_dir / "evaluation" / "astra-sim" / "astra-sim.tool-run.json")
    case = next(c for c in doc["cases"] if c["id"] == "w3/resnet50.ddp-step.n2.b32.fp32/switch.ring/congestion-aware")
    p = case["parameters"]
    source = p["compute_detail"].split()[0]
    if p["compute_source"] != "groundtruth" or not (data_dir.parent / source).is_file():
        pytest.skip(f"the committed run did not use a ground-truth file that is still there ({source})")
    lt = compute.from_groundtruth(layers, data_dir, 32)
    assert lt is not None and lt.detail == p["compute_detail"]
    step = lt.step_layers(32)
    assert sum(s[1] for s in step) == p["forward_compute_us"] and sum(s[2] for s in step) == p["backward_compute_us"]
    assert traces.digest(traces.write_ddp_step(tmp_path, "trace", 2, step)) == p["et_sha256"]
