"""Network calibration (issue 29): the committed calibration document, the calibrated predictions,
the before/after table, and the fit and the 4/8-GPU paths with the real ASTRA-sim (skipped without it)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from conftest import REAL_BIN, REPO, invoke

import mtap_schemas as ms
from mtap_astra_runner import accuracy, calibration, cases
from mtap_astra_runner.setup import find_cached_build

CALIB = REPO / accuracy.CALIBRATION
BEFORE = REPO / accuracy.BEFORE
AFTER = REPO / accuracy.AFTER
MEASURED = REPO / accuracy.MEASURED
#: a real ASTRA-sim: the environment's, else a cached `setup` build (read before conftest's fixture empties the cache)
_cached = find_cached_build()
BIN = REAL_BIN or (str(_cached / "bin") if _cached else None)
needs_tool = pytest.mark.skipif(BIN is None, reason="needs ASTRA-sim (MTAP_ASTRA_SIM_PATH or an `astra-runner setup` build)")


def latency(case: dict) -> float:
    return next(m["value"] for m in case["metrics"] if m["name"] == "latency")


def test_committed_calibration_reproduces_its_points_within_the_tools_resolution() -> None:
    doc = ms.read(CALIB, "calibration")
    assert doc["hardware"] == "H200-SXM-141GB-x2-nvlink" and doc["npus"] == 2
    assert [p["key"] for p in doc["points"]] == ["all-reduce.n2.1mib", "all-reduce.n2.1gib"]
    assert doc["measured"] == {"path": accuracy.MEASURED, "sha256": ms.sha256_file(MEASURED), "metric": "latency", "timing": "device"}
    truth = {c["key"]: c for c in ms.read_tool_run(MEASURED)["cases"]}
    for p, coef in zip(doc["points"], doc["model"]["coefficients"]):
        m = next(x for x in truth[p["key"]]["metrics"] if x["name"] == "latency" and x["timing"] == "device")
        assert p["measured_ns"] == pytest.approx(m["value"] * 1e6)
        assert p["residual_ns"] == p["simulated_ns"] - p["measured_ns"]
        # ASTRA-sim's clock is integer ns and the link latency is paid c_latency times: half a step
        assert p["resolution_ns"] == pytest.approx(max(1.0, coef["c_latency"] / 2), abs=0.01)
        assert abs(p["residual_ns"]) <= p["resolution_ns"]
    # the local model says what was fitted: 4 latencies at 1 MiB, 1 at 1 GiB, ~1 GiB of bytes on the critical path
    small, large = doc["model"]["coefficients"]
    assert round(small["c_latency"]) == 4 and round(large["c_latency"]) == 1
    assert large["c_bytes"] == pytest.approx(1 << 30, rel=1e-3)
    assert doc["model"]["max_deviation_ns"] < 20
    # the fit moved the catalog's figures: more latency, less bandwidth than the datasheet
    assert doc["fitted"]["latency_ns"] > 10 * doc["network"]["catalog"]["latency_ns"]
    assert doc["fitted"]["bandwidth_bytes_per_s"] < doc["network"]["catalog"]["bandwidth_bytes_per_s"]


def test_calibrated_document_declares_it_and_never_scores_its_points() -> None:
    calib = ms.read(CALIB, "calibration")
    after = ms.read_tool_run(AFTER)
    assert after["tool"]["name"] == "astra-sim-calibrated"
    points = {(p["collective"], p["npus"], p["size_bytes"]) for p in calib["points"]}
    ok = [c for c in after["cases"] if c["status"] == "ok"]
    assert len(ok) == len(after["cases"]) == 22
    for c in ok:
        p = c["parameters"]
        assert c["independence"]["class"] == "calibrated-separately", c["id"]
        assert accuracy.CALIBRATION in c["independence"]["what"]
        assert p["calibration"] == accuracy.CALIBRATION and p["calibration_sha256"] == ms.sha256_file(CALIB)
        assert p["link_latency_ns"] == calib["fitted"]["latency_ns"]
        assert p["link_bandwidth_gbps"] == calib["fitted"]["link_bandwidth_gbps"]
        if p["kind"] == "collective":
            assert (p["collective"], p["npus"], p["size_bytes"]) not in points, c["id"]
        else:  # the DDP step names both of its calibrations: the network and the per-layer compute
            assert "h200-x1.tool-run.json" in c["independence"]["what"]
    assert not {c.get("key") for c in ok} & {p["key"] for p in calib["points"]}


def test_calibrated_predictions_differ_from_the_uncalibrated_ones() -> None:
    before = {c["id"]: c for c in ms.read_tool_run(BEFORE)["cases"]}
    after = ms.read_tool_run(AFTER)["cases"]
    assert {c["id"] for c in after} < set(before)
    for c in after:
        b = before[c["id"]]
        assert c["parameters"]["et_sha256"] == b["parameters"]["et_sha256"]  # the same workload
        assert c["parameters"]["network_config_sha256"] != b["parameters"]["network_config_sha256"]
        assert latency(c) > latency(b), c["id"]  # more latency, less bandwidth: every collective takes longer


def test_readme_table_matches_the_committed_documents() -> None:
    text = (REPO / "packages/astra-runner/README.md").read_text()
    table = accuracy.markdown(REPO)
    assert table in text, "regenerate: python -m mtap_astra_runner.accuracy > table (packages/astra-runner/README.md)"
    rows = {r["collective"]: r for r in accuracy.table_rows(REPO)}
    assert rows["all"]["before"]["n"] == rows["all"]["after"]["n"] == 10
    assert rows["all"]["after"]["geomean"] < rows["all"]["before"]["geomean"]


def test_plan_with_a_calibration_leaves_its_points_out(tmp_path: Path) -> None:
    full = invoke("cases", "--platform", "H200-x2-NVLink")
    cal = invoke("cases", "--platform", "H200-x2-NVLink", "--calibration", CALIB)
    assert full.exit_code == cal.exit_code == 0, cal.output
    ids = [json.loads(x)["id"] for x in full.output.splitlines()]
    kept = [json.loads(x) for x in cal.output.splitlines()]
    gone = sorted(set(ids) - {c["id"] for c in kept})
    assert gone == sorted(i for i in ids if "/all-reduce.n2.1mib/" in i or "/all-reduce.n2.1gib/" in i) and len(gone) == 4
    assert all(c["parameters"]["calibration"] == accuracy.CALIBRATION for c in kept)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["fitted"].__setitem__("latency_ns", "17 us"), "fitted.latency_ns"),
        (lambda d: d["fitted"].__setitem__("bandwidth_bytes_per_s", 0), "fitted.bandwidth_bytes_per_s"),
        (lambda d: d["points"][0].__setitem__("extra", 1), "points[0]"),
        (lambda d: d["points"][1].__setitem__("size_bytes", 5), "points[1].size_bytes"),
        (lambda d: d.__setitem__("hardware", "HGX-H100x8"), "hardware"),
    ],
)
def test_a_calibration_with_a_wrong_field_is_refused_in_one_line(tmp_path: Path, mutate, field) -> None:
    doc = json.loads(CALIB.read_text())
    mutate(doc)
    bad = tmp_path / "bad-calibration.json"
    bad.write_text(json.dumps(doc))
    for verb in ("cases", "run"):
        extra = ("--output", tmp_path / "out") if verb == "run" else ()
        r = invoke(verb, "--platform", "H200-x2-NVLink", "--calibration", bad, *extra)
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.output, r.output
        assert str(bad) in lines[0] and f"field {field}" in lines[0], lines[0]
    assert not list(tmp_path.glob("out/*.json"))  # nothing written


def test_calibrate_refuses_a_wrong_measured_document(tmp_path: Path) -> None:
    doc = json.loads(MEASURED.read_text())
    doc["cases"] = [c for c in doc["cases"] if c["key"] != "all-reduce.n2.1gib"]
    bad = tmp_path / "measured.tool-run.json"
    bad.write_text(json.dumps(doc))
    r = invoke("calibrate", "--measured", bad, "--output", tmp_path / "c.json", "--tool-path", tmp_path)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert str(bad) in r.output and "all-reduce.n2.1gib" in r.output
    r = invoke("calibrate", "--measured", MEASURED, "--point", "all-reduce:1mib", "--output", tmp_path / "c.json", "--tool-path", tmp_path)
    assert r.exit_code == 2 and "expected 2 points" in r.output


# --- with the real ASTRA-sim ---------------------------------------------------------------


@needs_tool
def test_calibrate_rebuilds_the_committed_document(tmp_path: Path) -> None:
    out = tmp_path / "calib.json"
    r = invoke("calibrate", "--measured", MEASURED, "--output", out, "--tool-path", BIN, "--data-dir", REPO / "data")
    assert r.exit_code == 0, r.output
    new, old = json.loads(out.read_text()), json.loads(CALIB.read_text())
    for d in (new, old):
        d["generated_by"].pop("command")
        d["tool"].pop("version")  # a checkout's git state, not the binary (its sha256 is in location)
    assert new == old


@needs_tool
def test_calibrated_run_rebuilds_the_committed_document(tmp_path: Path) -> None:
    r = invoke(
        "run",
        "--platform",
        "H200-x2-NVLink",
        "--calibration",
        CALIB,
        "--name",
        "cal",
        "--output",
        tmp_path,
        "--tool-path",
        BIN,
        "--data-dir",
        REPO / "data",
        "--jobs",
        "1",
    )
    assert r.exit_code == 0, r.output
    new = ms.read_tool_run(tmp_path / "cal.tool-run.json")
    old = ms.read_tool_run(AFTER)
    assert [(c["id"], c["status"], c["metrics"], c.get("independence")) for c in new["cases"]] == [
        (c["id"], c["status"], c["metrics"], c.get("independence")) for c in old["cases"]
    ]
    assert [c["parameters"] for c in new["cases"]] == [c["parameters"] for c in old["cases"]]


def _measured_like(tmp_path: Path, hardware: str, npus: int, times_ns: dict[str, float]) -> Path:
    """A measured-format document whose two all-reduce "measurements" are ASTRA-sim's own times at a
    known network (a round trip: the fit must find that network again); only in a test folder."""
    doc = json.loads(MEASURED.read_text())
    template = next(c for c in doc["cases"] if c["key"] == "all-reduce.n2.1mib")
    doc["cases"] = []
    for size, t in times_ns.items():
        c = copy.deepcopy(template)
        c["id"] = c["key"] = f"all-reduce.n{npus}.{size}"
        c["hardware"] = hardware
        c["metrics"] = [dict(m, value=round(t / 1e6, 6)) for m in c["metrics"] if m["name"] == "latency" and m["timing"] == "device"]
        doc["cases"].append(c)
    path = tmp_path / f"roundtrip-n{npus}.tool-run.json"
    ms.write(path, doc, "tool-run", 2)
    return path


@needs_tool
@pytest.mark.parametrize("platform, npus", [("HGX-H100", 4), ("HGX-H100", 8), ("HGX-H200", 8)])
def test_hgx_4_and_8_gpus_calibrate_and_run_with_the_calibration(tmp_path: Path, platform: str, npus: int) -> None:
    """The 4/8-GPU paths (issue 29 item 3): fit an HGX node at 4 or 8 NPUs from ASTRA-sim's own
    times at a known network (recovered), then run its 2/4/8-NPU collectives with that calibration."""
    from mtap_astra_runner.tool import native_tool

    prefix, hid = cases.PLATFORMS[platform].prefix, cases.PLATFORMS[platform].nodes[8]
    hw = {h["id"]: h for h in ms.read(REPO / "data/hardware/hardware.json", "hardware")["hardware"]}[hid]
    tool = native_tool(BIN, "test")
    known = (3000.0, 300e9)
    pts = [calibration.Point(calibration.point_case(platform, "all-reduce", npus, s), 1.0, {}) for s in ("1mib", "1gib")]
    truth = calibration.Simulator(tool, hw, pts, 60)(*known)
    measured = _measured_like(tmp_path, hid, npus, dict(zip(("1mib", "1gib"), truth)))
    out = tmp_path / "calib.json"
    r = invoke(
        "calibrate",
        "--measured",
        measured,
        "--platform",
        platform,
        "--npus",
        str(npus),
        "--output",
        out,
        "--tool-path",
        BIN,
        "--data-dir",
        REPO / "data",
    )
    assert r.exit_code == 0, r.output
    doc = ms.read(out, "calibration")
    assert doc["hardware"] == hid and doc["npus"] == npus and doc["network"]["topology"] == "Switch"
    assert all(abs(p["residual_ns"]) <= p["resolution_ns"] for p in doc["points"])
    assert doc["fitted"]["latency_ns"] == pytest.approx(known[0], rel=2e-3)
    assert doc["fitted"]["bandwidth_bytes_per_s"] == pytest.approx(known[1], rel=2e-3)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {"studies": ["w6"], "binaries": ["congestion-aware"], "include": [f"{prefix}w6/all-reduce.*", f"{prefix}w6/all-gather.n8.*"]}
        )
    )
    common = ("--platform", platform, "--config", cfg, "--tool-path", BIN, "--data-dir", REPO / "data", "--jobs", "1")
    r = invoke("run", *common, "--calibration", out, "--name", "cal", "--output", tmp_path)
    r0 = invoke("run", *common, "--name", "raw", "--output", tmp_path)
    assert r.exit_code == r0.exit_code == 0, r.output + r0.output
    cal = {c["id"]: c for c in ms.read_tool_run(tmp_path / "cal.tool-run.json")["cases"]}
    raw = {c["id"]: c for c in ms.read_tool_run(tmp_path / "raw.tool-run.json")["cases"]}
    assert set(cal) == set(raw) - {f"{prefix}w6/all-reduce.n{npus}.{s}/switch.ring/congestion-aware" for s in ("1mib", "1gib")}
    assert {c["parameters"]["npus"] for c in cal.values()} == ({2, 4, 8, 16} if platform == "HGX-H100" else {2, 4, 8})
    for cid, c in cal.items():
        assert c["status"] == "ok"
        if c["hardware"] != hid:  # 16 NPUs run on HGX-H100x16: another machine, not calibrated
            assert "independence" not in c and "calibration" not in c["parameters"]
            assert c["metrics"] == raw[cid]["metrics"]
            continue
        assert c["independence"]["class"] == "calibrated-separately"
        assert c["parameters"]["link_latency_ns"] == doc["fitted"]["latency_ns"]
        assert latency(c) != latency(raw[cid])


def test_platform_defaults() -> None:
    assert calibration.default_npus("H200-x2-NVLink") == 2
    assert calibration.default_npus("HGX-H100") == calibration.default_npus("HGX-H200") == 8
    assert calibration.default_output("H200-x2-NVLink") == accuracy.CALIBRATION
    assert cases.DEFAULT_CALIBRATION_PLATFORM == "H200-x2-NVLink"
    assert os.path.basename(calibration.default_output("HGX-H100")) == "astra-sim-hgx-h100.json"
