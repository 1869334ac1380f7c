"""W8/W9 and the H200 in the matrix, and the second baseline: roofline + per-kernel floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_analytical_runner import models
from mtap_analytical_runner.cases import plan
from mtap_analytical_runner.cli import main
from mtap_analytical_runner.document import FLOOR_KEYS, read_floors
from mtap_analytical_runner.roofline import Floor, Hardware, estimate, op_latency
from mtap_analytical_runner.trace import Op

REPO = Path(__file__).resolve().parents[3]
GT_H200 = REPO / "data" / "evaluation" / "groundtruth" / "h200-x1.tool-run.json"
FLOOR_DOC = REPO / "data" / "evaluation" / "groundtruth" / "h200-floor.tool-run.json"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def floor_doc(path: Path, hardware: str = "H200-SXM-141GB", gemm_ms: float = 0.002, other_ms: float = 0.001,
              timing: str = "device", backend: str = "measured") -> Path:
    """A floor document as groundtruth writes it (built with the kit's constructors)."""
    run = tr.ToolRun("groundtruth", "0", tr.Tool("groundtruth", "torch", backend, "torch"))
    cases = []
    for key, value in ((FLOOR_KEYS["gemm"], gemm_ms), (FLOOR_KEYS["other"], other_ms), ("floor.empty-kernel.graph", 0.0005)):
        cases.append(tr.ok(f"{hardware}:{key}", workload="W1", hardware=hardware, key=key,
                           metrics=[tr.metric("latency", value, "ms", "measurement", timing=timing),
                                    tr.metric("latency_p10", round(value * 0.9, 6), "ms", "measurement", timing=timing),
                                    tr.metric("latency_p90", round(value * 1.1, 6), "ms", "measurement", timing=timing)]))
    ms.write(path, run.document(cases), "tool-run", 2)
    return path


def test_mobilenet_and_vgg_have_torchvisions_parameter_counts():
    assert models.parameter_count(models.mobilenet_v2()) == 3_504_872
    assert models.parameter_count(models.vgg16()) == 138_357_544
    assert len(models.cnn_layer_names("mobilenet-v2")) == 53 and len(models.cnn_layer_names("vgg16")) == 16


def test_every_h200_groundtruth_key_is_predicted():
    """The keys are groundtruth's, character for character (read from its committed H200 document)."""
    if not GT_H200.exists():
        pytest.skip("no committed H200 ground truth")
    gt = {c["key"] for c in ms.read_tool_run(GT_H200)["cases"]}
    ours = {c.key for c in plan(("H200-SXM-141GB",))}
    assert {k for k in gt if k.startswith(("mobilenet-v2.", "vgg16."))}  # W8/W9 measured
    assert gt <= ours


def test_floor_is_the_max_per_operator_and_leaves_the_roofline_unchanged(gpus):
    h200 = gpus["H200-SXM-141GB"]
    floor = Floor(gemm_s=2e-6, other_s=1e-6, gemm_source="g", other_source="o")
    big = Op("mm", "a", int(2e12), int(1e9), "fp16")  # 2 ms of math: the floor does not bind
    tiny_mm = Op("mm", "b", 2 * 16**3, 3 * 16 * 16 * 2, "fp16")  # nanoseconds: the GEMM floor binds
    tiny_add = Op("add", "c", 0, 6, "fp16")  # the element-wise floor binds
    ops = [big, tiny_mm, tiny_add]
    plain = estimate(ops, h200, "fp16")
    floored = estimate(ops, h200, "fp16", floor)
    assert floored.latency_s == plain.latency_s and floored.compute_s == plain.compute_s  # the pure roofline is untouched
    assert plain.floor_latency_s is None
    assert floored.floor_latency_s == pytest.approx(op_latency(big, h200, "fp16")[0] + 2e-6 + 1e-6)
    assert floored.floored == 2 and floored.operators == 3


def test_read_floors_takes_each_gpu_its_own_floor_never_anothers(tmp_path):
    floors = read_floors(floor_doc(tmp_path / "f.tool-run.json"), ["H200-SXM-141GB", "H100-SXM5-80GB"])
    h200 = floors["H200-SXM-141GB"]
    assert isinstance(h200, Floor) and h200.gemm_s == pytest.approx(2e-6) and h200.other_s == pytest.approx(1e-6)
    assert "floor.mm-16.graph = 0.002 ms median [p10 0.0018, p90 0.0022]" in h200.gemm_source
    assert isinstance(floors["H100-SXM5-80GB"], str) and "no per-kernel floor measured on H100-SXM5-80GB" in floors["H100-SXM5-80GB"]


@pytest.mark.parametrize("bad, field", [({"timing": "eager-end-to-end"}, "metrics.latency"), ({"backend": "native"}, "tool.backend")])
def test_a_floor_that_is_not_a_device_measurement_is_one_line_exit_2(tmp_path, data_dir, bad, field):
    path = floor_doc(tmp_path / "f.tool-run.json", **bad)
    res = invoke("run", "--floor", path, "--config", _cfg(tmp_path), "--data-dir", data_dir, "--output", tmp_path / "out", "--jobs", "1")
    assert res.exit_code == 2 and f"field {field}" in res.output and str(path) in res.output
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_floor_file_that_is_not_a_tool_run_is_one_line_exit_2(tmp_path, data_dir):
    path = tmp_path / "f.json"
    path.write_bytes(b"\xff not json")
    res = invoke("run", "--floor", path, "--config", _cfg(tmp_path), "--data-dir", data_dir, "--output", tmp_path / "out")
    assert res.exit_code == 2 and str(path) in res.output and len(res.output.strip().splitlines()) == 1


def _cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"include": ["resnet50.conv1.b1.fp16", "vgg16.layer.classifier-6.b1.fp16"],
                               "hardware": ["H100-SXM5-80GB", "H200-SXM-141GB"]}))
    return cfg


def test_floor_run_writes_its_own_tool_and_unavailable_without_a_floor(tmp_path, data_dir):
    path = floor_doc(tmp_path / "f.tool-run.json")
    res = invoke("run", "--floor", path, "--config", _cfg(tmp_path), "--data-dir", data_dir, "--output", tmp_path, "--jobs", "1")
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "analytical-floor.tool-run.json")  # its own default name and tool name: its own D1 row
    assert doc["tool"]["name"] == "analytical-floor" and not (tmp_path / "analytical.tool-run.json").exists()
    by = {c["id"]: c for c in doc["cases"]}
    for key in ("resnet50.conv1.b1.fp16", "vgg16.layer.classifier-6.b1.fp16"):
        h100 = by[f"H100-SXM5-80GB:{key}"]
        assert h100["status"] == "unavailable" and h100["error"]["kind"] == "profile-missing" and h100["metrics"] == []
        c = by[f"H200-SXM-141GB:{key}"]
        m = {x["name"]: x for x in c["metrics"]}
        # one operator (the conv / the linear), under 2 us of roofline: the GEMM floor (0.002 ms) binds
        assert c["parameters"]["operators"] == 1 and c["parameters"]["floored_operators"] == 1
        assert m["roofline_latency"]["value"] < 0.002 and m["latency"]["value"] == 0.002
        assert "floor.mm-16.graph = 0.002 ms" in m["latency"]["source"] and c["parameters"]["floor_gemm_s"] == pytest.approx(2e-6)
        # D1 class: calibrated on a microbenchmark of the scored GPU, naming the floor document
        assert c["independence"]["class"] == "calibrated-separately" and ms_rel(path) in c["independence"]["what"]
        assert "independence" not in h100
    assert {"path": ms_rel(path), "sha256": ms.sha256_file(path)} in by["H200-SXM-141GB:resnet50.conv1.b1.fp16"]["artifacts"]
    # the pure roofline of the same cases: the floor variant's roofline_latency is its latency, digit for digit
    res = invoke("run", "--config", _cfg(tmp_path), "--data-dir", data_dir, "--output", tmp_path, "--jobs", "1")
    assert res.exit_code == 0, res.output
    plain = {c["id"]: c for c in ms.read_tool_run(tmp_path / "analytical.tool-run.json")["cases"]}
    for cid, c in by.items():
        if c["status"] == "ok":
            lat = next(x["value"] for x in plain[cid]["metrics"] if x["name"] == "latency")
            assert lat == next(x["value"] for x in c["metrics"] if x["name"] == "roofline_latency")


def ms_rel(path: Path) -> str:
    from mtap_schemas.paths import relative_to_repo

    return relative_to_repo(path)


def test_committed_floor_document_gives_h200_floors_only():
    if not FLOOR_DOC.exists():
        pytest.skip("no committed floor")
    floors = read_floors(FLOOR_DOC, ["H200-SXM-141GB", "H100-SXM5-80GB", "A100-SXM4-80GB"])
    h200 = floors["H200-SXM-141GB"]
    assert isinstance(h200, Floor) and 0 < h200.other_s < h200.gemm_s < 1e-5
    assert isinstance(floors["H100-SXM5-80GB"], str) and isinstance(floors["A100-SXM4-80GB"], str)


@pytest.fixture(scope="module")
def gpus(data_dir):
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    return {e["id"]: Hardware.from_catalog(e) for e in catalog["hardware"]}
