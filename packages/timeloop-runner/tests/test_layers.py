"""The plan made from the layer tables against the plan of the hard-coded tables they replaced,
and their one-line errors (the tables themselves: schemas/tests/test_layers.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_schemas.layers import LayerTableError, load_table
from mtap_timeloop_runner.cli import main
from mtap_timeloop_runner.problem import problem_yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"



@pytest.mark.parametrize("config, fixture", [
    (None, "cases-before-layer-tables.jsonl"),
    ({"batch": 2, "seq_len": 64}, "cases-before-layer-tables.b2-s64.jsonl"),
])
def test_plan_is_identical_to_the_hard_coded_tables(tmp_path, data_dir, config, fixture):
    args = ["cases", "--data-dir", str(data_dir)]
    if config:
        (tmp_path / "c.json").write_text(json.dumps(config))
        args += ["--config", str(tmp_path / "c.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == (FIXTURES / fixture).read_text()


def test_eyeriss_chip_plan(tmp_path, data_dir):
    (tmp_path / "c.json").write_text(json.dumps({"architectures": ["eyeriss-chip"], "models": ["alexnet", "vgg16"]}))
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
    shutil.copytree(data_dir / "timeloop", data / "timeloop")
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


def test_conv1_problem_file(data_dir):
    text = problem_yaml(load_table(data_dir, "resnet50").layers()[0])
    assert "instance: {C: 3, M: 64, R: 7, S: 7, N: 1, P: 112, Q: 112, Wstride: 2, Hstride: 2" in text
    assert "[[R, Wdilation], [P, Wstride]]" in text and "read-write: True" in text


def test_resnet50_distinct_problems(data_dir):
    layers = load_table(data_dir, "resnet50").layers()
    assert len({la.shape for la in layers}) == 24  # distinct problems the mapper runs
