"""The runner end to end: plan, user errors, and real ZigZag runs of small layers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_zigzag_runner.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "zigzag-dse" in r.output and "Example" in r.output
    assert invoke("--version").exit_code == 0


def test_cases_plan_full_matrix(data_dir):
    r = invoke("cases", "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    plan = [json.loads(line) for line in r.output.splitlines()]
    # per accelerator: W1 conv1 + 54 ResNet-50 layers + total + 6 BERT matmuls + total
    assert len(plan) == 2 * 63
    keys = {p["key"] for p in plan}
    assert "resnet50.conv1.b1.int16" in keys and "resnet50.layer.layer4-2-conv3.b1.int8" in keys
    assert "bert-base.layer.attention-qkv.b1.s128.int16" in keys and "bert-base.model.b1.s128.int8" in keys
    assert {p["hardware"] for p in plan} == {"Eyeriss-like", "TPU-like"}
    assert len({p["id"] for p in plan}) == len(plan)


def test_limit_drops_totals_it_cannot_complete(data_dir):
    r = invoke("cases", "--data-dir", str(data_dir), "--limit", "3")
    plan = [json.loads(line) for line in r.output.splitlines()]
    assert [p["id"] for p in plan] == [
        "eyeriss-like/resnet50.conv1.b1.int16",
        "eyeriss-like/resnet50.layer.conv1.b1.int16",
        "eyeriss-like/resnet50.layer.layer1-0-conv1.b1.int16",
    ]


@pytest.mark.parametrize(
    "config, message",
    [
        ('{"hardware": ["gpu"]}', "field hardware: got ['gpu']"),
        ('{"layers": ["conv9"]}', "field layers: unknown layer name(s) ['conv9']"),
        ('{"batch": 0}', "field batch: got 0"),
        ('{"colour": 1}', "field colour: unknown field"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, data_dir, config, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(config)
    out = tmp_path / "out"
    r = invoke("run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(out))
    assert r.exit_code == 2
    assert message in r.output and str(cfg) in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_hardware_catalog_is_exit_2(tmp_path):
    r = invoke("cases", "--data-dir", str(tmp_path))
    assert r.exit_code == 2 and "hardware.json: cannot read" in r.output


def test_real_run_of_fc_and_one_attention_head_is_valid_and_repeats(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"layers": ["fc", "attention-score"]}))
    docs = []
    for name in ("a", "b"):
        r = invoke("run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(tmp_path), "--name", name)
        assert r.exit_code == 0, r.output
        docs.append(ms.read(tmp_path / f"{name}.tool-run.json", "tool-run"))
    doc = docs[0]
    assert ms.canonical(docs[0])["cases"] == ms.canonical(docs[1])["cases"]
    assert doc["tool"]["name"] == "zigzag" and doc["tool"]["version"] == "3.9.1"
    by_id = {c["id"]: c for c in doc["cases"]}
    assert sorted(by_id) == [
        "eyeriss-like/bert-base.layer.attention-score.b1.s128.int16",
        "eyeriss-like/resnet50.layer.fc.b1.int16",
        "tpu-like/bert-base.layer.attention-score.b1.s128.int8",
        "tpu-like/resnet50.layer.fc.b1.int8",
    ]
    for case in doc["cases"]:
        assert case["status"] == "ok", case["error"]
        m = {x["name"]: x["value"] for x in case["metrics"]}
        pes = 168 if case["hardware"] == "Eyeriss-like" else 1024
        assert m["macs"] == case["parameters"]["macs"]
        assert m["cycles"] >= m["macs"] / pes  # no model beats its MAC array
        assert 0 < m["utilization"] <= 1
        assert m["energy"] > 0 and m["energy_per_mac"] > 0
        assert ("latency" in m) == (case["hardware"] == "Eyeriss-like")  # TPU-like has no clock
    score = by_id["tpu-like/bert-base.layer.attention-score.b1.s128.int8"]
    m = {x["name"]: x["value"] for x in score["metrics"]}
    assert score["parameters"]["instances"] == 12 and m["macs"] == 12 * 64 * 128 * 128
