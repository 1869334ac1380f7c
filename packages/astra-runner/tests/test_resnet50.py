"""ResNet-50's layers come from data/workloads/layers/resnet50.layers.json: the planned cases and
the data-parallel step's per-layer compute, gradients and Chakra traces are the ones the runner
produced from its own hard-coded table before (fixtures/before-layer-tables/, captured from
astra-runner 1.0.0 with that table)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

import mtap_schemas as ms
from mtap_astra_runner import compute, resnet50, traces
from mtap_astra_runner.cli import main

BEFORE = FIXTURES / "before-layer-tables"


@pytest.fixture
def layers(data_dir):
    return resnet50.layers(data_dir)


@pytest.fixture
def hardware(data_dir):
    return {h["id"]: h for h in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


def test_gradients_are_torchvision_parameter_count(layers):
    # torchvision.models.resnet50(): 25,557,032 parameters, every one a gradient DDP all-reduces
    assert sum(layer.params for layer in layers) == 25_557_032
    assert len(layers) == 54 and layers[0].name == "conv1" and layers[-1].name == "fc"
    assert [layer.kind for layer in layers].count("linear") == 1
    assert sum(layer.macs(1) for layer in layers) == 4_089_184_256  # torchvision's 4.09 GMACs


@pytest.mark.parametrize("hw", ["HGX-H100x8", "HGX-H100x16"])
def test_step_and_traces_unchanged_from_the_old_table(tmp_path, layers, hardware, hw):
    before = json.loads((BEFORE / "ddp-steps.roofline.json").read_text())[f"roofline.{hw}"]
    lt = compute.roofline(layers, hardware[hw], 32)
    step = lt.step_layers(32)
    assert [list(s) for s in step] == before["step_layers"]
    assert lt.detail == before["detail"]
    for n, digest in before["et_sha256"].items():
        assert traces.digest(traces.write_ddp_step(tmp_path / n, "trace", int(n), step)) == digest


def test_planned_cases_unchanged(data_dir):
    res = CliRunner().invoke(main, ["cases", "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    assert res.output == (BEFORE / "cases.jsonl").read_text()


@pytest.mark.parametrize("value", ["many", "seq_len"])  # refused by the layers schema / by this runner
def test_bad_layer_table_is_one_line_exit_2(tmp_path, data_dir, value):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "hardware", data / "hardware")
    shutil.copytree(data_dir / "workloads", data / "workloads")
    table = data / "workloads" / "layers" / "resnet50.layers.json"
    doc = json.loads(table.read_text())
    doc["layers"][3]["shape"]["K"] = value
    table.write_text(json.dumps(doc))
    cfg = tmp_path / "ddp.json"
    cfg.write_text('{"studies": ["ddp"]}')
    res = CliRunner().invoke(main, ["run", "--data-dir", str(data), "--output", str(tmp_path / "out"), "--config", str(cfg),
                                    "--compute-source", "roofline", "--jobs", "1"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1
    assert "resnet50.layers.json: field layers[3].shape" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()
