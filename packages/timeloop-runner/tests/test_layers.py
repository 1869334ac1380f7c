"""The layer tables (data/workloads/layers/) against published figures, the plan made from them
against the plan of the hard-coded tables they replaced, and their one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_timeloop_runner.cli import main
from mtap_timeloop_runner.layers import LayerTableError, load_table
from mtap_timeloop_runner.problem import problem_yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"



def _params(layers):
    """Weights of every convolution, the fc layer with its bias and every batch norm."""
    total = bn = 0
    for la in layers:
        d = la.dims
        total += d["C"] * d["M"] * d["R"] * d["S"] * la.instances
        if la.name == "fc":
            total += d["M"]
        else:
            bn += d["M"]
    return total + 2 * bn


def test_resnet50_table(data_dir):
    layers = load_table(data_dir, "resnet50").layers()
    assert len(layers) == 54 and layers[0].name == "conv1" and layers[-1].name == "fc"
    assert sum(la.name.startswith(("conv", "layer")) for la in layers) == 53
    assert layers[0].macs == 118_013_952  # W1: conv1 at batch 1
    assert sum(la.macs for la in layers) == 4_089_184_256
    assert _params(layers) == 25_557_032  # torchvision resnet50's published count
    assert sum(la.macs for la in load_table(data_dir, "resnet50").layers(batch=8)) == 8 * 4_089_184_256


def test_bert_base_table(data_dir):
    table = load_table(data_dir, "bert-base")
    layers = table.layers()
    # 12 layers x (128 tokens x 768 x (2304 + 768 + 3072 + 3072) + 12 heads x 2 x 128 x 128 x 64)
    assert sum(la.case_macs * la.repeats for la in layers) == 12 * (128 * 768 * 9216 + 12 * 2 * 128 * 128 * 64)
    score = next(la for la in table.layers(batch=2, seq_len=64) if la.name == "attention-score")
    assert score.instances == 24 and score.dims["N"] == 1 and score.dims["M"] == 64 and score.dims["P"] == 64


def test_alexnet_and_vgg16_macs_match_the_eyeriss_paper(data_dir):
    # JSSC 2017 Table V (batch 4) and Table VI (batch 3), in GMACs to the paper's precision.
    alex = load_table(data_dir, "alexnet").layers()
    assert [la.dims["N"] for la in alex] == [4] * 5
    assert [round(la.case_macs / 1e9, 2) for la in alex] == [0.42, 0.90, 0.60, 0.45, 0.30]
    assert sum(la.case_macs for la in alex) == 2_663_139_456
    vgg = load_table(data_dir, "vgg16").layers()
    assert [round(la.case_macs / 1e9, 2) for la in vgg] == [0.26, 5.55, 2.77, 5.55, 2.77, 5.55, 5.55, 2.77, 5.55,
                                                            5.55, 1.39, 1.39, 1.39]
    assert round(sum(la.case_macs for la in vgg) / 1e9, 2) == 46.04


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
