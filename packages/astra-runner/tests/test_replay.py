"""The runner end to end against stand-in binaries that replay outputs captured from real
ASTRA-sim runs (tests/fixtures): checks the generated inputs reach the binary and that ok,
aborted and unparsable runs become ok / failed cases. The real binary is exercised by
test_cli.py::test_reference_reproduces_57426_cycles when MTAP_ASTRA_SIM_PATH is set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, config, fake_bin, invoke

import mtap_schemas as ms

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())

REPLAY = """#!{python}
import json, sys, pathlib
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
net = pathlib.Path(args["network-configuration"]).read_text()
system = json.loads(pathlib.Path(args["system-configuration"]).read_text())
et = sorted(p.name for p in pathlib.Path(args["workload-configuration"]).parent.glob("*.et"))
pathlib.Path({seen!r}).write_text(json.dumps({{"args": sorted(args), "network": net, "system": system, "et": et}}))
sys.stdout.write(pathlib.Path({log!r}).read_text())
sys.stdout.flush()
rc = {rc}
if rc < 0:  # the real binary was killed by a signal (an assertion's SIGABRT): be killed the same way
    import os, signal
    signal.signal(-rc, signal.SIG_DFL)
    os.kill(os.getpid(), -rc)
sys.exit(rc)
"""


def replay_bin(tmp_path: Path, entry: dict) -> tuple[Path, Path]:
    seen = tmp_path / "seen.json"
    script = REPLAY.format(python=sys.executable, seen=str(seen), log=str(FIXTURES / entry["log"]), rc=entry["exit_status"])
    return fake_bin(tmp_path / "bin", script), seen


def run_one(tmp_path, data_dir, entry, case_id, expect=0):
    folder, seen = replay_bin(tmp_path, entry)
    cfg = config(tmp_path, {"include": [case_id]})
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--tool-path", folder,
                 "--config", cfg, "--keep-raw", tmp_path / "raw", "--jobs", "1")
    assert res.exit_code == expect, res.output
    doc = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")
    return doc, json.loads(seen.read_text())


def test_reference_case(tmp_path, data_dir):
    entry = MANIFEST["reference"]
    doc, seen = run_one(tmp_path, data_dir, entry, entry["case"])
    assert seen["args"] == ["network-configuration", "remote-memory-configuration", "system-configuration", "workload-configuration"]
    assert "topology: [ Switch ]" in seen["network"] and "bandwidth: [ 400 ]" in seen["network"] and "latency: [ 936.25 ]" in seen["network"]
    assert seen["system"]["all-reduce-implementation"] == ["ring"] and seen["system"]["local-mem-bw"] == 3350
    assert seen["et"] == [f"trace.{i}.et" for i in range(8)]
    (case,) = doc["cases"]
    assert case["status"] == "ok"
    assert {m["name"]: m["value"] for m in case["metrics"]}["latency"] == 57426
    assert case["parameters"]["reproduces_expected"] is True
    # a binary outside the repository is recorded by name and sha256, never by its folder
    aware = tmp_path / "bin" / "AstraSim_Analytical_Congestion_Aware"
    assert doc["tool"]["location"] == f"AstraSim_Analytical_Congestion_Aware (sha256 {ms.sha256_file(aware)})"
    assert doc["environment"]["packages"]["astra-sim:AstraSim_Analytical_Congestion_Aware:sha256"] == ms.sha256_file(aware)
    assert str(tmp_path) not in json.dumps(doc)
    # --keep-raw: the generated configs and the raw output, by name and sha256
    kept = {a["path"].rsplit("/", 1)[-1]: a["sha256"] for a in case["artifacts"]}
    stem = "reference_hgx-h100-validated_all-reduce.n8.1mib_congestion-aware"
    assert set(kept) == {f"{stem}.{n}" for n in ("network.yml", "system.json", "memory.json", "log")}
    for name, sha in kept.items():
        assert ms.sha256_file(tmp_path / "raw" / name) == sha
    # the kept log is the binary's output (work folder path replaced), as the committed fixture
    assert (tmp_path / "raw" / f"{stem}.log").read_text().strip() == (FIXTURES / entry["log"]).read_text().strip()


def test_hardware_network_from_catalog(tmp_path, data_dir):
    entry = MANIFEST["reference"]
    _, seen = run_one(tmp_path, data_dir, entry, "topology/all-reduce.n16.64mib/fullyconnected.ring/congestion-unaware", expect=3)
    # 450e9 B/s per GPU over 15 links, in 2^30 B/s
    assert f"bandwidth: [ {450e9 / 2**30 / 15!r} ]" in seen["network"]
    assert "npus_count: [ 16 ]" in seen["network"] and "FullyConnected" in seen["network"]


@pytest.mark.parametrize("which,kind,how", [("abort_ring2", "killed-by-signal", "killed by SIGABRT"),
                                            ("abort_halving_a2a", "tool-crashed", "exited 1")])
def test_abort_is_a_failed_case(tmp_path, data_dir, which, kind, how):
    entry = MANIFEST[which]
    doc, _ = run_one(tmp_path, data_dir, entry, entry["case"], expect=3)  # 3: every case failed
    (case,) = doc["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == kind
    assert how in case["error"]["message"] and entry["message_contains"] in case["error"]["message"]
    assert case["metrics"] == []


def test_ddp_case_and_scaling(tmp_path, data_dir):
    entry = MANIFEST["ddp"]
    doc, seen = run_one(tmp_path, data_dir, entry, "scaling/resnet50.ddp-step.b32.n2-n8/congestion-aware")
    assert len(seen["et"]) == 8  # the last run: the 8-NPU step
    cases = {c["id"]: c for c in doc["cases"]}
    assert len(cases) == 3
    scaling = cases["scaling/resnet50.ddp-step.b32.n2-n8/congestion-aware"]
    assert scaling["status"] == "ok" and scaling["metrics"][0]["kind"] == "derived"
    assert scaling["metrics"][0]["value"] == 1.0  # both inputs replay the same log
    step = cases["w3/resnet50.ddp-step.n2.b32.fp32/switch.ring/congestion-aware"]
    assert step["key"] == "resnet50.ddp-step.n2.b32.fp32"
    assert step["parameters"]["compute_source"] in ("groundtruth", "roofline")
    assert step["parameters"]["gradient_bytes"] == 4 * 25_557_032


def test_binary_that_cannot_start_is_a_failed_case(tmp_path, data_dir):
    folder = fake_bin(tmp_path / "bin", "\x7fELF not really")  # executable bit, but no valid program
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--tool-path", folder,
                 "--config", config(tmp_path, {"studies": ["reference"]}), "--jobs", "1")
    assert res.exit_code == 3, res.output
    (case,) = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "tool-crashed"
    assert "could not be started" in case["error"]["message"]
