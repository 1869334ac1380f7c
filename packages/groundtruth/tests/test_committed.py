"""The committed measurements (data/evaluation/groundtruth/) are valid, complete and filed under
the hardware they ran on."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

import mtap_schemas as ms
from mtap_groundtruth import cases

REPO = Path(__file__).resolve().parents[3]
EVAL = REPO / "data" / "evaluation" / "groundtruth"
CHIP = re.compile(r"\b([A-Z]{1,2}\d{2,3})\b")  # H100, H200, A100, ...


def docs() -> dict[str, dict]:
    if not EVAL.is_dir():
        pytest.skip("no committed measurements")
    return {p.relative_to(EVAL).as_posix(): ms.read_tool_run(p) for p in sorted(EVAL.rglob("*.tool-run.json"))}


def catalog() -> dict[str, dict]:
    return {h["id"]: h for h in json.loads((REPO / "data" / "hardware" / "hardware.json").read_text())["hardware"]}


def chip(name: str) -> str | None:
    """The GPU's model token: 'NVIDIA H200' -> 'H200', 'NVIDIA H100 SXM5 80GB' -> 'H100'."""
    m = CHIP.search(name)
    return m.group(1) if m else None


def mislabels(doc: dict, hw: dict[str, dict]) -> list[str]:
    """Cases whose hardware id names another GPU than the one in ``environment.gpu.name``
    (for a node id, its ``device``'s GPU)."""
    gpu = (doc["environment"].get("gpu") or {}).get("name")
    bad = []
    for c in doc["cases"]:
        entry = hw.get(c["hardware"])
        if gpu is None:
            if c["hardware"] != "cpu":
                bad.append(f"{c['key']}: hardware {c['hardware']} but no GPU in the environment")
            continue
        if entry is None:
            bad.append(f"{c['key']}: hardware {c['hardware']} is not in the catalog")
            continue
        device = hw.get(entry.get("device", entry["id"]), entry)
        if chip(device["name"]) is None or chip(device["name"]) != chip(gpu):
            bad.append(f"{c['key']}: hardware {c['hardware']} is a {device['name']}, measured on {gpu}")
    return bad


def test_every_case_is_filed_under_the_gpu_it_ran_on() -> None:
    hw = catalog()
    found = docs()
    assert found, "no groundtruth documents"
    assert any(name.startswith("spread/") for name in found) or not (EVAL / "spread").is_dir()  # repeats are checked too
    for name, d in found.items():
        assert mislabels(d, hw) == [], name


def test_the_mislabel_check_catches_the_old_h200_filing() -> None:
    """h200-x2 was first filed under HGX-H100x8 (2 x H200 measured): the check must refuse that."""
    d = docs().get("h200-x2.tool-run.json")
    if d is None:
        pytest.skip("h200-x2 not committed")
    old = copy.deepcopy(d)
    for c in old["cases"]:
        c["hardware"] = "HGX-H100x8"
    bad = mislabels(old, catalog())
    assert len(bad) == len(old["cases"]) and "measured on NVIDIA H200" in bad[0]
    assert chip("NVIDIA H100 80GB HBM3") == "H100" and chip("NVIDIA H200 SXM 141GB") == "H200"


def test_single_gpu_document_covers_the_matrix_on_an_h100() -> None:
    d = docs().get("h100-x1.tool-run.json")
    if d is None:
        pytest.skip("h100-x1 not committed")
    assert "H100" in d["environment"]["gpu"]["name"]
    got = {c["key"]: c for c in d["cases"]}
    # W8/W9 joined the single suite after the H100 campaign (the H100 machines were gone by then)
    assert set(got) == {c.key for c in cases.plan("single") if c.workload not in ("W8", "W9")}
    for c in got.values():
        assert c["status"] == "ok" and c["hardware"] == "H100-SXM5-80GB"
        timings = {m.get("timing") for m in c["metrics"] if m["name"] == "latency"}
        assert timings == {"device", "eager-end-to-end"}
        assert next(m for m in c["metrics"] if m["name"] == "latency_samples")["value"] >= 30


def test_h200_single_gpu_document_has_300_ok_cases_across_the_workloads() -> None:
    d = docs().get("h200-x1.tool-run.json")
    if d is None:
        pytest.skip("h200-x1 not committed")
    assert d["environment"]["gpu"]["name"] == "NVIDIA H200" and d["environment"]["gpu"]["count"] == 1
    planned = {c.key for c in cases.plan("single")}
    ok = [c for c in d["cases"] if c["status"] == "ok"]
    assert {c["key"] for c in d["cases"]} <= planned
    assert len(ok) >= 300
    assert {c["workload"] for c in ok} == {"W1", "W4", "W5", "W7", "W8", "W9"}
    for c in ok:
        assert c["hardware"] == "H200-SXM-141GB"
        timings = {m.get("timing") for m in c["metrics"] if m["name"] == "latency"}
        assert timings == {"device", "eager-end-to-end"}


def test_multi_gpu_documents_name_their_cards() -> None:
    """Multi-suite cases: a 1-GPU case under the GPU's own id, a multi-GPU case under the node of that GPU
    with the GPU count the run had (h200-x2: the 2-GPU direct-NVLink host, not an 8-GPU HGX)."""
    multi = {k: v for k, v in docs().items() if any(c["key"].startswith(("resnet50.ddp-step", "all-")) for c in v["cases"])}
    if not multi:
        pytest.skip("no multi-GPU document committed")
    hw = catalog()
    for name, d in multi.items():
        card = Path(name).name.split("-")[0].upper()
        count = d["environment"]["gpu"]["count"]
        assert card in d["environment"]["gpu"]["name"]
        assert re.search(rf"-x{count}\b", name), name
        for c in d["cases"]:
            entry = hw[c["hardware"]]
            assert card in c["hardware"] and card in c["parameters"]["gpu_name"]
            if c["parameters"]["ranks"] == 1:
                assert entry["kind"] == "gpu" and entry["devices"] == 1, (name, c["id"])
            else:
                assert entry["kind"] == "gpu-node" and entry["devices"] == count == c["parameters"]["ranks"], (name, c["id"])
                assert hw[entry["device"]]["kind"] == "gpu" and card in entry["device"]
    x2 = multi.get("h200-x2.tool-run.json")
    if x2 is not None:  # the 2-GPU host: two H200s joined directly by NVLink
        assert {c["hardware"] for c in x2["cases"] if c["parameters"]["ranks"] == 2} == {"H200-SXM-141GB-x2-nvlink"}
        assert hw["H200-SXM-141GB-x2-nvlink"]["interconnect"]["topology"] == "point-to-point"
        assert "HGX-H100x8" not in x2["invocation"]["command"] and all("filing_note" in c["parameters"] for c in x2["cases"])


def test_the_floor_was_measured_on_the_h200_with_its_spread() -> None:
    found = docs()
    d = found.get("h200-floor.tool-run.json")
    if d is None:
        pytest.skip("h200-floor not committed")
    assert d["environment"]["gpu"]["name"] == "NVIDIA H200"
    planned = {c.key for c in cases.plan("floor")}
    for doc in (d, found.get("spread/h200-floor-repeat.tool-run.json") or d):
        assert {c["key"] for c in doc["cases"]} == planned
        for c in doc["cases"]:
            assert c["status"] == "ok" and c["hardware"] == "H200-SXM-141GB" and c["parameters"]["suite"] == "floor"
            m = {x["name"]: x for x in c["metrics"]}
            assert m["latency"]["timing"] == ("device" if c["key"].endswith(".graph") else "eager-end-to-end")
            assert 0 < m["latency_p10"]["value"] <= m["latency"]["value"] <= m["latency_p90"]["value"] < 1.0  # ms: under 1 ms per launch
    by = {c["key"]: {x["name"]: x["value"] for x in c["metrics"]} for c in d["cases"]}
    # a graph node costs less than an eager launch: host launch overhead is left out of the graph
    for k in ("empty-kernel", "fill-1", "add-1", "mm-16"):
        assert by[f"floor.{k}.graph"]["latency"] < by[f"floor.{k}.eager"]["latency"]
