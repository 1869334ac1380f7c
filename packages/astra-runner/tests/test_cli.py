from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_astra_runner.cli import main

#: read before the autouse fixture below clears it for the other tests
REAL_BIN = os.environ.get("ASTRA_SIM_BIN")


@pytest.fixture(autouse=True)
def no_env_tool(monkeypatch):
    for var in ("ASTRA_SIM_BIN", "MTAP_ASTRA_SIM_PATH"):
        monkeypatch.delenv(var, raising=False)


def run(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_cases_matrix(data_dir):
    res = run(["cases", "--data-dir", str(data_dir)])
    assert res.exit_code == 0
    planned = [json.loads(line) for line in res.output.splitlines()]
    ids = [c["id"] for c in planned]
    assert len(ids) == len(set(ids)) == 373
    keyed = [c for c in planned if c["key"]]
    # one keyed (hardware-as-is, Congestion_Aware) case per W6 key and per DDP workload/npus
    assert len(keyed) == 48 + 5
    assert len({(c["workload"], c["hardware"], c["key"]) for c in keyed}) == len(keyed)
    assert {"all-reduce.n8.1mib", "resnet50.ddp-step.n8.b32.fp32", "all-to-all.n16.1gib"} <= {c["key"] for c in keyed}
    assert all(c["hardware"] == ("HGX-H100x16" if c["parameters"].get("npus") == 16 else "HGX-H100x8") for c in planned)


def test_no_tool_writes_unavailable_document_elsewhere(tmp_path, data_dir):
    res = run(["run", "--output", str(tmp_path), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "astra-sim.tool-run.json").exists()  # never replaces real results
    doc = ms.read(tmp_path / "astra-sim.unavailable.tool-run.json", "tool-run")
    statuses = {c["status"] for c in doc["cases"]}
    assert statuses == {"unavailable", "unsupported"}
    for c in doc["cases"]:
        if c["status"] == "unavailable" and not c["id"].startswith("scaling/"):
            assert c["error"]["kind"] == "binary-missing"
            assert "--tool-path" in c["error"]["message"] and "ASTRA_SIM_BIN" in c["error"]["message"]
    unsupported = [c for c in doc["cases"] if c["status"] == "unsupported"]
    assert unsupported and all(c["parameters"]["algorithm"] == "doubleBinaryTree" for c in unsupported)
    assert doc["tool"]["version"] is None and doc["tool"]["location"] is None
    # deterministic apart from wall_clock
    run(["run", "--output", str(tmp_path / "again"), "--data-dir", str(data_dir)])
    again = ms.read(tmp_path / "again" / "astra-sim.unavailable.tool-run.json", "tool-run")
    doc["invocation"] = again["invocation"] = None
    assert ms.canonical(doc) == ms.canonical(again)


def test_folder_without_binaries_is_unavailable_naming_it(tmp_path, data_dir):
    empty = tmp_path / "bin"
    empty.mkdir()
    res = run(["run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--binary", str(empty),
               "--config", str(_config(tmp_path, {"studies": ["reference"]}))])
    assert res.exit_code == 0
    (case,) = ms.read(tmp_path / "astra-sim.unavailable.tool-run.json", "tool-run")["cases"]
    assert case["status"] == "unavailable" and str(empty) in case["error"]["message"]


def test_image_without_docker_daemon_is_unavailable(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    res = run(["run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--image", "astra-sim:none",
               "--name", "img", "--config", str(_config(tmp_path, {"studies": ["reference"]}))])
    assert res.exit_code == 0
    doc = ms.read(tmp_path / "img.tool-run.json", "tool-run")
    assert doc["tool"]["backend"] == "docker" and doc["tool"]["location"] == "astra-sim:none"
    (case,) = doc["cases"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "docker-unavailable"


def _config(tmp_path, cfg):
    p = tmp_path / "sel.json"
    p.write_text(json.dumps(cfg))
    return p


@pytest.mark.parametrize("cfg,needle", [
    ({"studies": ["nope"]}, "field studies"),
    ({"binaries": "congestion-aware"}, "field binaries: expected a list"),
    ({"colour": 1}, "field colour: unknown"),
    ({"timeout_s": -1}, "field timeout_s"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, data_dir, cfg, needle):
    res = CliRunner().invoke(main, ["run", "--output", str(tmp_path / "out"), "--data-dir", str(data_dir),
                                    "--config", str(_config(tmp_path, cfg))])
    assert res.exit_code == 2
    assert needle in res.output and "sel.json" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_missing_tool_path_and_data_dir_exit_2(tmp_path, data_dir):
    res = CliRunner().invoke(main, ["run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--tool-path", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = CliRunner().invoke(main, ["run", "--output", str(tmp_path), "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "hardware.json: not found" in res.output
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(not REAL_BIN, reason="set ASTRA_SIM_BIN to a built ASTRA-sim analytical binary or folder")
def test_reference_reproduces_57426_cycles(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("ASTRA_SIM_BIN", REAL_BIN)
    res = run(["run", "--output", str(tmp_path), "--data-dir", str(data_dir),
               "--config", str(_config(tmp_path, {"studies": ["reference"]}))])
    assert res.exit_code == 0
    (case,) = ms.read(tmp_path / "astra-sim.tool-run.json", "tool-run")["cases"]
    assert case["status"] == "ok", case["error"]
    metrics = {m["name"]: m for m in case["metrics"]}
    assert metrics["cycles"]["value"] == 57426
    assert metrics["latency"]["value"] == 57426 and metrics["latency"]["unit"] == "ns"
    assert case["parameters"]["reproduces_expected"] is True
