"""The HGX-H200 platform: its matrix and the per-layer compute of the GPU being simulated (never
another GPU's ground truth). The committed H200 predictions are the 2-GPU direct-NVLink host's
(test_h200_x2.py): no H200 measurement is filed under the 8-GPU node."""

from __future__ import annotations

import json

import pytest
from conftest import config, invoke

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_astra_runner import cases as cases_mod
from mtap_astra_runner import compute, resnet50


def _planned(*args) -> list[dict]:
    res = invoke("cases", *args)
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.output.splitlines()]


def test_h200_matrix(data_dir):
    planned = _planned("--data-dir", data_dir, "--platform", "HGX-H200")
    ids = [c["id"] for c in planned]
    assert len(ids) == len(set(ids)) == 322
    assert all(i.startswith("hgx-h200/") for i in ids)
    assert {c["hardware"] for c in planned} == {"HGX-H200x8"}
    assert max(c["parameters"].get("npus", 0) for c in planned) == 8  # the catalog has no 16-GPU HGX-H200
    assert not [c for c in planned if c["study"] == "reference"]  # ASTRA-sim's example is an HGX-H100
    assert len([c for c in planned if c["key"]]) == 36 + 4  # W6 at 2/4/8 NPUs, W3 n2/n4/n8 and W2 n8
    # no measurement is filed under the 8-GPU node (the 2-GPU measurements are the direct-NVLink host's: test_h200_x2.py)
    gt = ms.read_tool_run(data_dir / "evaluation" / "groundtruth" / "h200-x2.tool-run.json")
    assert not [c for c in gt["cases"] if c["hardware"] == "HGX-H200x8"]
    # the H100 matrix is unchanged by the platform option
    h100 = _planned("--data-dir", data_dir, "--platform", "HGX-H100")
    assert h100 == _planned("--data-dir", data_dir) and len(h100) == 373


def test_platform_from_config_and_option(tmp_path, data_dir):
    from_cfg = _planned("--data-dir", data_dir, "--config", config(tmp_path, {"platform": "HGX-H200", "studies": ["w6"]}))
    assert len(from_cfg) == 72 and {c["hardware"] for c in from_cfg} == {"HGX-H200x8"}
    # the option wins over the config
    both = _planned("--data-dir", data_dir, "--platform", "HGX-H100",
                    "--config", config(tmp_path, {"platform": "HGX-H200", "studies": ["w6"]}, "b.json"))
    assert len(both) == 96 and not [c for c in both if c["id"].startswith("hgx-h200/")]
    res = invoke("cases", "--data-dir", data_dir, "--config", config(tmp_path, {"platform": "HGX-B200"}, "c.json"))
    assert res.exit_code == 2 and "field platform" in res.output
    res = invoke("cases", "--data-dir", data_dir, "--platform", "HGX-B200")
    assert res.exit_code == 2


def test_hardware_for():
    assert cases_mod.hardware_for(2) == "HGX-H100x8" and cases_mod.hardware_for(16) == "HGX-H100x16"
    assert cases_mod.hardware_for(8, "HGX-H200") == "HGX-H200x8" and cases_mod.hardware_for(16, "HGX-H200") is None
    with pytest.raises(ValueError, match="unknown platform"):
        cases_mod.build("HGX-B200")


def _catalog(data_dir) -> dict:
    return {h["id"]: h for h in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


def test_gpu_of_a_node_is_its_device(data_dir):
    cat = _catalog(data_dir)
    assert compute.gpu_of(cat["HGX-H200x8"]) == "H200-SXM-141GB"
    assert compute.gpu_of(cat["HGX-H100x8"]) == "H100-SXM5-80GB"
    assert compute.gpu_of(cat["H200-SXM-141GB"]) == "H200-SXM-141GB"


def _gt(layers, hardware, ms_per_layer):
    cases = [tr.ok(f"{hardware}:{layer.slug}", workload="W1", hardware=hardware, key=f"resnet50.layer.{layer.slug}.b32.fp32",
                   metrics=[tr.metric("latency", ms_per_layer, "ms", "measurement", timing="device")]) for layer in layers]
    return tr.ToolRun("groundtruth", "1.0.0", tr.Tool("groundtruth", None, "measured", "torch"), argv=[]).document(cases)


def test_ground_truth_of_the_simulated_gpu_only(tmp_path, data_dir):
    """An H100 document that sorts first is never used for the H200, nor the H200's for the H100;
    without the simulated GPU's layers, auto falls back to the roofline and groundtruth refuses."""
    layers = resnet50.layers(data_dir)
    cat = _catalog(data_dir)
    gt = tmp_path / "evaluation" / "groundtruth"
    gt.mkdir(parents=True)
    (gt / "a-h100.tool-run.json").write_text(ms.dumps(_gt(layers, "H100-SXM5-80GB", 0.01)))
    h200 = compute.layer_times("auto", tmp_path, cat["HGX-H200x8"], 32, layers, gpu="H200-SXM-141GB")
    assert h200.source == "roofline" and "HGX-H200x8" in h200.detail
    with pytest.raises(LookupError, match="filed under H200-SXM-141GB"):
        compute.layer_times("groundtruth", tmp_path, cat["HGX-H200x8"], 32, layers, gpu="H200-SXM-141GB")
    (gt / "b-h200.tool-run.json").write_text(ms.dumps(_gt(layers, "H200-SXM-141GB", 0.02)))
    h200 = compute.layer_times("groundtruth", tmp_path, cat["HGX-H200x8"], 32, layers, gpu="H200-SXM-141GB")
    assert h200.detail.startswith("data/evaluation/groundtruth/b-h200.tool-run.json")
    assert list(h200.forward_us.values()) == pytest.approx([20.0] * len(layers))
    h100 = compute.layer_times("groundtruth", tmp_path, cat["HGX-H100x8"], 32, layers, gpu="H100-SXM5-80GB")
    assert h100.detail.startswith("data/evaluation/groundtruth/a-h100.tool-run.json")
    assert list(h100.forward_us.values()) == pytest.approx([10.0] * len(layers))
