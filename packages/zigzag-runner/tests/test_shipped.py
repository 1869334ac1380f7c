"""ZigZag's shipped examples: every case names the accelerator and mapping files it ran on, with
their sha256 equal to the installed zigzag-dse's files, and a real run of ResNet-50 conv1 on the
three shipped examples reproduces the committed document."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata, resources
from pathlib import Path

from conftest import REPO, config, invoke

import mtap_schemas as ms

COMMITTED = REPO / "data" / "evaluation" / "zigzag" / "zigzag.tool-run.json"
VERSION = metadata.version("zigzag-dse")
#: accelerator -> (hardware id, ZigZag's shipped accelerator file, its mapping file)
SHIPPED = {
    "eyeriss-like": ("Eyeriss-like", "hardware/eyeriss_like.yaml", "mapping/default.yaml"),
    "tpu-like": ("TPU-like", "hardware/tpu_like.yaml", "mapping/tpu_like.yaml"),
    "edge-tpu-like": ("Edge-TPU-like", "hardware/edge_tpu_like.yaml", "mapping/edge_tpu_like.yaml"),
}


def _installed_sha256(rel: str) -> str:
    return hashlib.sha256((Path(str(resources.files("zigzag"))) / "inputs" / rel).read_bytes()).hexdigest()


def _check_names_shipped_files(case: dict) -> None:
    arch = case["id"].split("/")[0]
    hw, acc, mapping = SHIPPED[arch]
    p = case["parameters"]
    assert case["hardware"] == hw and p["spec"] == "zigzag-shipped"
    assert p["accelerator_file"] == f"zigzag-dse=={VERSION}:zigzag/inputs/{acc}"
    assert p["mapping_file"] == f"zigzag-dse=={VERSION}:zigzag/inputs/{mapping}"
    assert p["accelerator_sha256"] == _installed_sha256(acc)
    assert p["mapping_sha256"] == _installed_sha256(mapping)


def test_planned_cases_name_the_shipped_files(data_dir):
    r = invoke("cases", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    plan = [json.loads(line) for line in r.output.splitlines()]
    assert {p["id"].split("/")[0] for p in plan} == set(SHIPPED)
    for case in plan:
        _check_names_shipped_files(case)


def test_committed_cases_ran_on_the_installed_shipped_files():
    doc = ms.read_tool_run(COMMITTED)
    assert doc["tool"]["version"] == VERSION
    assert {c["hardware"] for c in doc["cases"]} == {hw for hw, _, _ in SHIPPED.values()}
    for case in doc["cases"]:
        _check_names_shipped_files(case)
        arch = case["id"].split("/")[0]
        _, acc, mapping = SHIPPED[arch]
        assert case["artifacts"] == [
            {"path": f"zigzag-dse=={VERSION}:zigzag/inputs/{acc}", "sha256": _installed_sha256(acc)},
            {"path": f"zigzag-dse=={VERSION}:zigzag/inputs/{mapping}", "sha256": _installed_sha256(mapping)},
        ]


def test_the_eyeriss_chip_is_ours(data_dir, tmp_path):
    cfg = config(tmp_path, {"hardware": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]})
    r = invoke("cases", "--data-dir", data_dir, "--config", cfg)
    assert r.exit_code == 0, r.output
    (case,) = [json.loads(line) for line in r.output.splitlines()]
    own = Path(str(resources.files("mtap_zigzag_runner"))) / "inputs" / "eyeriss_chip.yaml"
    p = case["parameters"]
    assert p["spec"] == "ours" and p["accelerator_file"].endswith(":mtap_zigzag_runner/inputs/eyeriss_chip.yaml")
    assert p["accelerator_sha256"] == hashlib.sha256(own.read_bytes()).hexdigest()
    assert p["mapping_file"].startswith("ours: row-stationary") and "mapping_sha256" not in p


def test_real_conv1_runs_on_the_shipped_examples_equal_the_committed_cases(tmp_path):
    """ZigZag run for real on ResNet-50 conv1 on each shipped example (3 runs) gives the committed
    cases exactly: the W1 headline case and the layer case of each."""
    cfg = config(tmp_path, {"models": ["resnet50"], "layers": ["conv1"]})
    r = invoke("run", "--config", cfg, "--output", tmp_path / "out", "--jobs", "1")
    assert r.exit_code == 0, r.output
    cases = ms.canonical(ms.read_tool_run(tmp_path / "out" / "zigzag.tool-run.json"))["cases"]
    committed = {c["id"]: c for c in ms.canonical(ms.read_tool_run(COMMITTED))["cases"]}
    assert len(cases) == 6 and all(c["status"] == "ok" and c == committed[c["id"]] for c in cases)
    by_id = {c["id"]: {m["name"]: m["value"] for m in c["metrics"]} for c in cases}
    # the shipped Eyeriss example's figure that issue 29 quotes
    assert by_id["eyeriss-like/resnet50.conv1.b1.int16"]["cycles"] == 6_148_299
