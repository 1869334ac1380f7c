"""The plan made from the layer tables against the plan of the hard-coded tables they replaced,
and their one-line errors (the tables themselves: schemas/tests/test_layers.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_schemas.layers import LayerTableError, load_table
from mtap_zigzag_runner.cli import main
from mtap_zigzag_runner.run import rs_mapping
from mtap_zigzag_runner.workload import zigzag_layer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Parameters added after the fixtures were made (zigzag-runner 2.1.0): which files a case runs on.
SPEC_KEYS = {"spec", "accelerator_file", "accelerator_sha256", "mapping_file", "mapping_sha256"}


@pytest.mark.parametrize("config, fixture", [
    (None, "cases-before-layer-tables.jsonl"),
    ({"batch": 2, "seq_len": 64}, "cases-before-layer-tables.b2-s64.jsonl"),
])
def test_plan_is_identical_to_the_hard_coded_tables(tmp_path, data_dir, config, fixture):
    # the fixtures hold the two accelerators of then (edge-tpu-like came later) without the spec keys
    (tmp_path / "c.json").write_text(json.dumps({"hardware": ["eyeriss-like", "tpu-like"], **(config or {})}))
    result = CliRunner().invoke(main, ["cases", "--data-dir", str(data_dir), "--config", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    plan = [json.loads(line) for line in result.output.splitlines()]
    assert all(SPEC_KEYS <= set(p["parameters"]) for p in plan)
    for p in plan:
        p["parameters"] = {k: v for k, v in p["parameters"].items() if k not in SPEC_KEYS}
    assert "".join(json.dumps(p, sort_keys=True) + "\n" for p in plan) == (FIXTURES / fixture).read_text()


def test_eyeriss_chip_plan(tmp_path, data_dir):
    (tmp_path / "c.json").write_text(json.dumps({"hardware": ["eyeriss-chip"], "models": ["alexnet", "vgg16"]}))
    result = CliRunner().invoke(main, ["cases", "--data-dir", str(data_dir), "--config", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    plan = [json.loads(line) for line in result.output.splitlines()]
    assert len(plan) == 5 + 1 + 13 + 1
    assert plan[0]["key"] == "alexnet.layer.conv1.b4.int16" and plan[0]["hardware"] == "Eyeriss"
    assert plan[5]["key"] == "alexnet.conv-layers.b4.int16" and plan[5]["parameters"]["macs"] == 2_663_139_456
    assert plan[6]["key"] == "vgg16.layer.conv1-1.b3.int16" and plan[6]["workload"] == "W9"
    assert plan[1]["parameters"]["instances"] == 2  # conv2: two groups


def _copy_data(tmp_path, data_dir):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "workloads", data / "workloads")
    shutil.copytree(data_dir / "hardware", data / "hardware")
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda doc: doc.update(schema_version="2.0.0"), "field schema_version"),
    (lambda doc: doc["layers"][0]["shape"].update(N="tokens"), "field layers[0].shape.N: 'tokens'"),
    (lambda doc: doc["layers"][0]["shape"].update(N="seq_len"), "field layers[0].shape.N: names parameter 'seq_len'"),
    (lambda doc: doc["layers"].append(doc["layers"][0]), "duplicate layer name(s) ['conv1']"),
    (lambda doc: doc.update(model="resnet18"), "field model: got 'resnet18'"),
])
def test_bad_layer_table_is_one_line_exit_2(tmp_path, data_dir, edit, message):
    data = _copy_data(tmp_path, data_dir)
    path = data / "workloads" / "layers" / "resnet50.layers.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["cases", "--data-dir", str(data)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert str(path) in result.output and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_layer_table_is_exit_2(tmp_path, data_dir):
    data = _copy_data(tmp_path, data_dir)
    (data / "workloads" / "layers" / "bert-base.layers.json").unlink()
    result = CliRunner().invoke(main, ["cases", "--data-dir", str(data)])
    assert result.exit_code == 2 and "bert-base.layers.json: cannot read" in result.output
    with pytest.raises(LayerTableError):
        load_table(data, "bert-base")


def test_conv1_as_zigzag_layer(data_dir):
    conv1 = load_table(data_dir, "resnet50").layers()[0]
    z = zigzag_layer(conv1, {"W": 16, "I": 16, "O": 16, "O_final": 16})
    assert dict(zip(z["loop_dims"], z["loop_sizes"])) == {"B": 1, "K": 64, "C": 3, "OY": 112, "OX": 112, "FY": 7, "FX": 7}
    assert z["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert z["pr_loop_sizes"] == [224, 224] and z["padding"] == [[3, 2], [3, 2]]


def test_strided_3x3_padding_reads_only_what_it_needs(data_dir):
    conv = next(la for la in load_table(data_dir, "resnet50").layers() if la.name == "layer2-0-conv2")
    assert conv.dims["P"] == 28 and conv.in_hw == 56
    assert zigzag_layer(conv, {})["padding"] == [[1, 0], [1, 0]]


def test_row_stationary_unrolling(data_dir):
    alex = {la.name: la for la in load_table(data_dir, "alexnet").layers()}
    # AlexNet conv1: 11 filter rows down a column, output rows across the 14 columns.
    assert rs_mapping(alex["conv1"])[0]["spatial_mapping"] == {"D1": ["FY, 11"], "D2": ["OY, 14"]}
    # conv3: 3 filter rows x 4 channels down a column (12 PEs), 13 output rows + 1 spare column.
    assert rs_mapping(alex["conv3"])[0]["spatial_mapping"] == {"D1": ["FY, 3", "C, 4"], "D2": ["OY, 13"]}
    fc = load_table(data_dir, "resnet50").layers()[-1]  # 1x1, one output row: channels and filters
    assert rs_mapping(fc)[0]["spatial_mapping"] == {"D1": ["C, 12"], "D2": ["K, 14"]}
