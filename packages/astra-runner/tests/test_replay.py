"""The runner end to end against stand-in binaries that replay outputs captured from real
ASTRA-sim runs (tests/fixtures): checks the generated inputs reach the binary and that ok,
aborted and unparsable runs become ok / failed cases. The real binary is exercised by
test_cli.py::test_reference_reproduces_57426_cycles when ASTRA_SIM_BIN is set."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_astra_runner.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
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


@pytest.fixture(autouse=True)
def no_env_tool(monkeypatch):
    for var in ("ASTRA_SIM_BIN", "MTAP_ASTRA_SIM_PATH"):
        monkeypatch.delenv(var, raising=False)


def replay_bin(tmp_path: Path, entry: dict) -> tuple[Path, Path]:
    folder = tmp_path / "bin"
    folder.mkdir()
    seen = tmp_path / "seen.json"
    for name in ("AstraSim_Analytical_Congestion_Aware", "AstraSim_Analytical_Congestion_Unaware"):
        p = folder / name
        p.write_text(REPLAY.format(python=sys.executable, seen=str(seen), log=str(FIXTURES / entry["log"]), rc=entry["exit_status"]))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return folder, seen


def run_one(tmp_path, data_dir, entry, case_id):
    folder, seen = replay_bin(tmp_path, entry)
    cfg = tmp_path / "sel.json"
    cfg.write_text(json.dumps({"include": [case_id]}))
    res = CliRunner().invoke(main, ["run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--tool-path", str(folder),
                                    "--config", str(cfg), "--keep-logs", str(tmp_path / "logs")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = ms.read(tmp_path / "astra-sim.tool-run.json", "tool-run")
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
    assert doc["tool"]["location"].endswith("bin") and "astra-sim:AstraSim_Analytical_Congestion_Aware:sha256" in doc["environment"]["packages"]
    # --keep-logs: the generated configs and the raw output, referenced by sha256
    paths = {a["path"].rsplit(".", 2)[-2] + "." + a["path"].rsplit(".", 1)[-1] for a in case["artifacts"]}
    assert {"network.yml", "system.json", "memory.json"} <= paths
    for a in case["artifacts"]:
        assert ms.sha256_file(tmp_path / a["path"]) == a["sha256"]


def test_hardware_network_from_catalog(tmp_path, data_dir):
    entry = MANIFEST["reference"]
    _, seen = run_one(tmp_path, data_dir, entry, "topology/all-reduce.n16.64mib/fullyconnected.ring/congestion-unaware")
    # 450e9 B/s per GPU over 15 links, in 2^30 B/s
    assert f"bandwidth: [ {450e9 / 2**30 / 15!r} ]" in seen["network"]
    assert "npus_count: [ 16 ]" in seen["network"] and "FullyConnected" in seen["network"]


@pytest.mark.parametrize("which", ["abort_ring2", "abort_halving_a2a"])
def test_abort_is_a_failed_case(tmp_path, data_dir, which):
    entry = MANIFEST[which]
    doc, _ = run_one(tmp_path, data_dir, entry, entry["case"])
    (case,) = doc["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "tool-crashed"
    assert entry["message_contains"] in case["error"]["message"]
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
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("AstraSim_Analytical_Congestion_Aware", "AstraSim_Analytical_Congestion_Unaware"):
        p = folder / name
        p.write_bytes(b"\x7fELF not really")  # executable bit, but no valid program
        p.chmod(0o755)
    cfg = tmp_path / "sel.json"
    cfg.write_text(json.dumps({"studies": ["reference"]}))
    res = CliRunner().invoke(main, ["run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--tool-path", str(folder),
                                    "--config", str(cfg)], catch_exceptions=False)
    assert res.exit_code == 0
    (case,) = ms.read(tmp_path / "astra-sim.tool-run.json", "tool-run")["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "tool-crashed"
    assert "could not start" in case["error"]["message"]
