"""compose-analysis on small hand-made documents (synthetic tool 'tool-a'; not any real tool's output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_compose.cli import analyse, main

HW = "H100-SXM5-80GB"


def case(cid, key, metrics, hardware=HW, workload="W1"):
    return {"id": cid, "key": key, "workload": workload, "hardware": hardware, "parameters": {}, "status": "ok",
            "error": None, "metrics": metrics, "artifacts": []}


def m(name, value, unit="ms", kind="prediction", timing=None):
    out = {"name": name, "value": value, "unit": unit, "kind": kind}
    if timing:
        out["timing"] = timing
    return out


def doc(tool, cases, backend="native"):
    return {"schema": "tool-run", "schema_version": "2.0.0", "runner": {"name": "t", "version": "0"},
            "tool": {"name": tool, "version": "1", "backend": backend},
            "environment": {"python": "3", "platform": "x", "cpu": "y"}, "invocation": {"command": ["t"], "config": None},
            "wall_clock": {"started_at": "2026-11-26T00:00:00Z", "setup_seconds": 0, "run_seconds": 0}, "cases": cases}


@pytest.fixture
def evaluation(tmp_path: Path) -> Path:
    ms.write(tmp_path / "a/a.tool-run.json", doc("tool-a", [
        case("l1", "resnet50.layer.conv1.b1.fp32", [m("latency", 110.0, "us")]),
        case("l2", "resnet50.layer.fc.b1.fp32", [m("latency", 0.09)]),
        case("l3", "resnet50.layer.pool.b1.fp32", [m("latency", 0.05)]),  # no measurement of this layer
        case("mod", "resnet50.model.b1.fp32", [m("latency", 0.3)]),
        case("other", "bert-base.model.b1.s128.fp32", [m("latency", 1.0)]),
    ]), "tool-run", 2)
    ms.write(tmp_path / "a/astra.tool-run.json", doc("tool-b", [
        case("s2", "resnet50.ddp-step.n2.b32.fp32", [m("latency", 2.0e6, "ns"), m("compute_time", 1.5e6, "ns"), m("exposed_communication", 0.5e6, "ns")], hardware="HGX-H100x8", workload="W3"),
        case("s8", "resnet50.ddp-step.n8.b32.fp32", [m("latency", 3.0e6, "ns"), m("compute_time", 1.5e6, "ns")], hardware="HGX-H100x8", workload="W3"),
    ]), "tool-run", 2)
    ms.write(tmp_path / "m.tool-run.json", doc("groundtruth", [
        case("l1", "resnet50.layer.conv1.b1.fp32", [m("latency", 0.1, kind="measurement", timing="device"), m("latency", 0.5, kind="measurement", timing="eager-end-to-end")]),
        case("l2", "resnet50.layer.fc.b1.fp32", [m("latency", 0.1, kind="measurement", timing="eager-end-to-end")]),
        case("mod", "resnet50.model.b1.fp32", [m("latency", 0.2, kind="measurement", timing="device")]),
        case("s2", "resnet50.ddp-step.n2.b32.fp32", [m("latency", 2.5, kind="measurement", timing="device")], hardware="HGX-H100x8", workload="W3"),
    ], backend="measured"), "tool-run", 2)
    return tmp_path


def test_layer_to_model(evaluation: Path) -> None:
    out = analyse(evaluation)
    ms.validate(out, "compositional")
    rows = out["layer_to_model"]
    assert len(rows) == 1  # bert has no per-layer predictions; groundtruth's are measurements
    r = rows[0]
    assert (r["tool"], r["model"], r["config"], r["layers"], r["layers_measured"]) == ("tool-a", "resnet50", "b1.fp32", 3, 2)
    assert r["sum_layers_predicted_ms"] == pytest.approx(0.25)
    assert r["measured_model_ms"] == 0.2 and r["measured_timing"] == "device"
    # conv1 paired with device time (preferred, 10%), fc with eager time (10%).
    assert r["mean_layer_ape_percent"] == pytest.approx(10.0)
    assert r["sum_layers_measured_ms"] == pytest.approx(0.2)
    assert r["composed_ape_percent"] == pytest.approx(25.0)
    assert r["model_ape_percent"] == pytest.approx(50.0)
    assert r["amplification"] == pytest.approx(2.5)


def test_compute_to_system(evaluation: Path) -> None:
    rows = analyse(evaluation)["compute_to_system"]
    assert [(r["npus"], r["exposed_fraction"], r["system_over_compute"]) for r in rows] == [(2, 0.25, pytest.approx(4 / 3)), (8, None, 2.0)]
    assert rows[0]["measured_ms"] == 2.5 and rows[0]["ape_percent"] == pytest.approx(20.0)
    assert rows[1]["measured_ms"] is None


def test_batch_to_request(tmp_path: Path) -> None:
    hw = "H200-SXM-141GB"
    ms.write(tmp_path / "sim.tool-run.json", doc("tool-s", [
        case("b1", "m.batch.d1x100.fp16", [m("latency", 5.5)], hardware=hw, workload="W5"),
        case("b2", "m.batch.p100x100.fp16", [m("latency", 9.0)], hardware=hw, workload="W5"),
        case("b3", "m.batch.d2x100.fp16", [m("latency", 6.0)], hardware=hw, workload="W5"),  # no measurement
        case("c1", "m.serving.q1", [m("ttft_p50", 0.011, "s"), m("e2e_latency_p50", 0.1, "s"), m("requests", 5, "count")], hardware=hw, workload="W5"),
    ]), "tool-run", 2)
    ms.write(tmp_path / "gt.tool-run.json", doc("groundtruth", [
        case("g1", "m.batch.d1x100.fp16", [m("latency", 5.0, kind="measurement", timing="device"), m("latency", 20.0, kind="measurement", timing="eager-end-to-end")], hardware=hw, workload="W5"),
        case("g2", "m.batch.p100x100.fp16", [m("latency", 10.0, kind="measurement", timing="device")], hardware=hw, workload="W5"),
    ], backend="measured"), "tool-run", 2)
    replayed = doc("tool-s-replay", [case("c1", "m.serving.q1", [
        m("ttft_p50", 0.010, "s", kind="measurement", timing="device"), m("e2e_latency_p50", 0.08, "s", kind="measurement", timing="device"),
        m("e2e_latency_p50", 0.3, "s", kind="measurement", timing="eager-end-to-end"),
        m("ttft_cdf_p050", 0.011, "s", kind="prediction", timing="simulated")], hardware=hw, workload="W5")], backend="replayed")
    ms.write(tmp_path / "rep.tool-run.json", replayed | {"schema_version": "2.1.0"}, "tool-run", 2)
    out = analyse(tmp_path)
    ms.validate(out, "compositional")
    rows = {r["metric"]: r for r in out["batch_to_request"]}
    assert sorted(rows) == ["e2e_latency_p50", "ttft_p50"]  # the replay's own CDF series is not a prediction
    r = rows["e2e_latency_p50"]
    assert (r["tool"], r["batch_pairs"], r["case"]) == ("tool-s", 2, "c1")
    assert r["batch_mape_percent"] == pytest.approx(10.0)  # (10 % + 10 %) / 2, device time preferred
    assert (r["predicted_ms"], r["replayed_ms"]) == (pytest.approx(100.0), pytest.approx(80.0))
    assert r["ape_percent"] == pytest.approx(25.0) and r["amplification"] == pytest.approx(2.5)
    assert r["measured_timing"] == "device (replayed)"
    assert rows["ttft_p50"]["ape_percent"] == pytest.approx(10.0)


def test_cli_writes_report_deterministically(evaluation: Path, tmp_path_factory) -> None:
    out = tmp_path_factory.mktemp("out")
    texts = []
    for _ in range(2):
        res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(evaluation), "--output", str(out / "c.json"), "--report", str(out / "r.md")])
        assert res.exit_code == 0, res.output
        texts.append(((out / "c.json").read_bytes(), (out / "r.md").read_text()))
    assert texts[0] == texts[1]
    report = texts[0][1]
    assert "| tool-a | H100-SXM5-80GB | resnet50 | b1.fp32 | 3 (2) |" in report
    assert "| tool-b | s2 | 2 | 2 | 1.5 | 0.5 | 0.25 | 1.33 | 2.5 (device) | 20.0% |" in report
    res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(evaluation / "missing")])
    assert res.exit_code == 2 and "evaluation folder does not exist" in res.output


def _run(folder: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--evaluation-dir", str(folder), "--output", str(folder / "c.json"),
                                     "--report", str(folder / "c.md"), *extra])


def test_a_copied_document_does_not_change_the_result(evaluation: Path) -> None:
    before = analyse(evaluation)
    (evaluation / "copy").mkdir()
    (evaluation / "copy" / "a.tool-run.json").write_bytes((evaluation / "a" / "a.tool-run.json").read_bytes())
    after = analyse(evaluation)
    assert after["layer_to_model"] == before["layer_to_model"]
    assert {"path": "copy/a.tool-run.json", "reason": "identical to a/a.tool-run.json"} in after["skipped"]


def test_a_rerun_of_the_same_cases_is_read_once(evaluation: Path) -> None:
    before = analyse(evaluation)
    rerun = ms.read_tool_run(evaluation / "a" / "a.tool-run.json")
    rerun["runner"]["version"] = "1"  # another run: not byte-identical
    ms.write(evaluation / "a" / "z-rerun.tool-run.json", rerun, "tool-run", 2)
    after = analyse(evaluation)
    assert after["layer_to_model"] == before["layer_to_model"]
    assert any(s["path"] == "a/z-rerun.tool-run.json" and "already read" in s["reason"] for s in after["skipped"])


def test_zero_measurement_is_skipped_with_a_reason_not_a_crash(evaluation: Path) -> None:
    ms.write(evaluation / "zero.tool-run.json", doc("groundtruth", [
        case("z1", "resnet50.layer.pool.b1.fp32", [m("latency", 0.0, kind="measurement", timing="device")])], backend="measured"), "tool-run", 2)
    result = _run(evaluation)
    assert result.exit_code == 0, result.output
    written = ms.read(evaluation / "c.json", "compositional")
    assert any("measured time is 0" in s["reason"] for s in written["skipped"])


def test_non_utf8_document_is_named_and_skipped(evaluation: Path) -> None:
    (evaluation / "bad.tool-run.json").write_bytes(b'{"schema": "tool-run", "x": "\xff"}')
    result = _run(evaluation)
    assert result.exit_code == 0 and result.exception is None
    assert "skipped bad.tool-run.json: not UTF-8" in result.output
    assert any(s["path"] == "bad.tool-run.json" for s in ms.read(evaluation / "c.json", "compositional")["skipped"])
