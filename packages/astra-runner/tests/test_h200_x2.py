"""The H200-x2-NVLink platform (issue 25): the lent 2-GPU host the multi-GPU measurements ran on, two
H200s joined directly by NVLink, simulated as 2 NPUs with one direct link from its catalog entry; its
matrix covers every 2-GPU measurement; a DDP step whose compute is the simulated GPU's own measurement
declares it (case.independence); the committed document was made that way."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from conftest import config, fake_bin, invoke

import mtap_schemas as ms
from mtap_astra_runner import cases as cases_mod
from mtap_astra_runner import compute, inputs, resnet50, traces

PLATFORM = "H200-x2-NVLink"
HOST = "H200-SXM-141GB-x2-nvlink"
DOC = "astra-sim-h200-x2-nvlink.tool-run.json"


def _planned(*args) -> list[dict]:
    res = invoke("cases", *args)
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.output.splitlines()]


def _catalog(data_dir) -> dict:
    return {h["id"]: h for h in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


def test_matrix_is_the_measured_hosts_network_and_covers_its_measurements(data_dir):
    planned = _planned("--data-dir", data_dir, "--platform", PLATFORM)
    assert len(planned) == 26 and all(c["id"].startswith("h200-x2-nvlink/") for c in planned)
    assert {c["hardware"] for c in planned} == {HOST}
    assert {c["study"] for c in planned} == {"w6", "ddp"}  # no topology what-ifs, no 8-NPU scaling on a 2-GPU host
    assert {(c["parameters"]["npus"], c["parameters"]["topology"], c["parameters"]["algorithm"]) for c in planned} == {
        (2, "FullyConnected", "ring")}
    keyed = {c["key"] for c in planned if c["key"]}
    assert len(keyed) == 13 and all(c["parameters"]["binary"] == "congestion-aware" for c in planned if c["key"])
    # every 2-GPU measurement has its prediction, under the same hardware id (aggregate pairs hardware + key + metric)
    gt = ms.read_tool_run(data_dir / "evaluation" / "groundtruth" / "h200-x2.tool-run.json")
    measured = {c["key"] for c in gt["cases"] if c["hardware"] == HOST}
    assert len(measured) == 13 and measured == keyed
    # the platform's node is in the catalog as the point-to-point pair ASTRA-sim's FullyConnected of 2 models
    host = _catalog(data_dir)[HOST]
    assert host["devices"] == 2 and cases_mod.CATALOG_TOPOLOGY[host["interconnect"]["topology"]] == cases_mod.PLATFORMS[PLATFORM].network
    for name, platform in cases_mod.PLATFORMS.items():
        for node in platform.nodes.values():
            assert cases_mod.CATALOG_TOPOLOGY[_catalog(data_dir)[node]["interconnect"]["topology"]] == platform.network, name


def test_one_direct_link_with_the_catalogs_bandwidth_and_latency(data_dir):
    host = _catalog(data_dir)[HOST]
    case = next(c for c in cases_mod.build(PLATFORM) if c.key == "all-reduce.n2.1gib")
    from mtap_astra_runner.runner import network_of

    topo, bw, lat = network_of(case, host)
    assert topo == "FullyConnected" and lat == host["interconnect"]["latency_ns"]
    assert bw == pytest.approx(host["interconnect"]["bandwidth_bytes_per_s"] / 2**30)  # all of it on the one link
    assert inputs.network_yaml(topo, 2, bw, lat).splitlines()[:2] == ["topology: [ FullyConnected ]", "npus_count: [ 2 ]"]


def test_a_catalog_entry_of_another_topology_is_refused(tmp_path, data_dir):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "workloads", data / "workloads")
    (data / "hardware").mkdir()
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    next(h for h in catalog["hardware"] if h["id"] == HOST)["interconnect"]["topology"] = "switch"
    (data / "hardware" / "hardware.json").write_text(json.dumps(catalog))
    res = invoke("run", "--platform", PLATFORM, "--output", tmp_path / "out", "--data-dir", data)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert f"hardware {HOST}: field interconnect.topology" in res.output and "FullyConnected" in res.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_compute_from_the_simulated_gpus_measurement_is_declared(tmp_path, data_dir):
    layers = resnet50.layers(data_dir)
    node = _catalog(data_dir)[HOST]
    measured = compute.layer_times("groundtruth", data_dir, node, 32, layers, gpu="H200-SXM-141GB")
    dep = measured.independence()
    assert dep["class"] == "calibrated-separately"
    assert dep["what"].endswith(f": {measured.document}") and measured.document.startswith("data/evaluation/groundtruth/")
    assert "measured on this H200-SXM-141GB" in dep["what"]
    assert compute.roofline(layers, node, 32).independence() is None  # datasheet figures only: independent


ECHO_RUN = """#!/bin/sh
# stands in for ASTRA-sim: the analytical backend's finishing lines for 2 NPUs (parsing real logs: test_parse.py)
echo "[workload] [info] sys[0] finished, 1000 cycles, exposed communication 10 cycles."
echo "[workload] [info] sys[1] finished, 1000 cycles, exposed communication 10 cycles."
"""


def test_the_runner_writes_the_declaration_on_ok_ddp_cases(tmp_path, data_dir):
    """Through the CLI: the keyed W3 step, whose compute is the H200's committed ground truth, carries
    case.independence; the collectives do not."""
    pytest.importorskip("chakra.schema.protobuf.et_def_pb2", reason="mlc-chakra writes the step's traces")
    bins = fake_bin(tmp_path / "bin", ECHO_RUN)
    res = invoke("run", "--platform", PLATFORM, "--output", tmp_path / "out", "--data-dir", data_dir, "--tool-path", bins,
                 "--config", config(tmp_path, {"include": ["*/congestion-aware"]}), "--name", "x2")
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "out" / "x2.tool-run.json")
    assert len(doc["cases"]) == 13 and all(c["status"] == "ok" for c in doc["cases"]), [c["error"] for c in doc["cases"]]
    (ddp,) = [c for c in doc["cases"] if c["parameters"]["kind"] == "ddp"]
    assert ddp["parameters"]["compute_source"] == "groundtruth"
    assert ddp["independence"]["class"] == "calibrated-separately" and "h200-x1.tool-run.json" in ddp["independence"]["what"]
    assert all("independence" not in c for c in doc["cases"] if c["parameters"]["kind"] == "collective")
    # with the roofline (datasheet figures only) nothing is declared
    res = invoke("run", "--platform", PLATFORM, "--output", tmp_path / "roof", "--data-dir", data_dir, "--tool-path", bins,
                 "--config", config(tmp_path, {"studies": ["ddp"]}, "d.json"), "--compute-source", "roofline", "--name", "x2")
    assert res.exit_code == 0, res.output
    assert all("independence" not in c for c in ms.read_tool_run(tmp_path / "roof" / "x2.tool-run.json")["cases"])


def _committed(data_dir) -> dict:
    path = data_dir / "evaluation" / "astra-sim" / DOC
    if not path.is_file():
        pytest.skip(f"no committed {DOC}")
    return ms.read_tool_run(path)


def test_committed_document_is_this_platform_on_the_hosts_catalog_entry(data_dir, tmp_path):
    doc = _committed(data_dir)
    host = _catalog(data_dir)[HOST]
    assert {c["hardware"] for c in doc["cases"]} == {HOST}
    assert [c["id"] for c in doc["cases"]] == [c.id for c in cases_mod.build(PLATFORM)]
    assert all(c["status"] == "ok" for c in doc["cases"])  # FullyConnected at 2 NPUs has no known abort
    ic = host["interconnect"]
    network = inputs.network_yaml("FullyConnected", 2, ic["bandwidth_bytes_per_s"] / 2**30, ic["latency_ns"])
    system = inputs.system_json("ring", host["memory"]["bandwidth_bytes_per_s"] / 1e9)
    for c in doc["cases"]:
        p = c["parameters"]
        assert p["network_config_sha256"] == hashlib.sha256(network.encode()).hexdigest(), c["id"]
        assert p["system_config_sha256"] == hashlib.sha256(system.encode()).hexdigest(), c["id"]
    # the W3 step: compute from the H200's own per-layer ground truth, declared calibrated-separately
    layers = resnet50.layers(data_dir)
    lt = compute.from_groundtruth(layers, data_dir, 32, gpu="H200-SXM-141GB")
    assert lt is not None
    step = lt.step_layers(32)
    ddp = [c for c in doc["cases"] if c["parameters"]["kind"] == "ddp"]
    assert len(ddp) == 2
    for c in ddp:
        p = c["parameters"]
        assert p["compute_source"] == "groundtruth" and p["compute_detail"] == lt.detail
        assert p["forward_compute_us"] == sum(s[1] for s in step)
        assert p["et_sha256"] == traces.digest(traces.write_ddp_step(tmp_path / c["parameters"]["binary"], "trace", 2, step))
        assert c["independence"] == lt.independence()
    assert not [c for c in doc["cases"] if c["parameters"]["kind"] == "collective" and "independence" in c]
