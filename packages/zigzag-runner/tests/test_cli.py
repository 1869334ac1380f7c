"""The runner end to end: plan, user errors, and real ZigZag runs of small layers."""

from __future__ import annotations

import json

import pytest
from conftest import config, invoke


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "zigzag-dse" in r.output and "Examples" in r.output
    run_help = invoke("run", "--help").output
    assert "--jobs" in run_help and "--timeout" in run_help and "--keep-raw" in run_help
    assert "--tool-path PATH" not in run_help and "--image" not in run_help  # ZigZag is the installed package
    r = invoke("--version")
    assert r.exit_code == 0 and "2.1.0" in r.output


def test_cases_plan_full_matrix(data_dir):
    r = invoke("cases", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    plan = [json.loads(line) for line in r.output.splitlines()]
    # per accelerator: W1 conv1 + 54 ResNet-50 layers + total + 6 BERT matmuls + total
    assert len(plan) == 3 * 63
    keys = {p["key"] for p in plan}
    assert "resnet50.conv1.b1.int16" in keys and "resnet50.layer.layer4-2-conv3.b1.int8" in keys
    assert "bert-base.layer.attention-qkv.b1.s128.int16" in keys and "bert-base.model.b1.s128.int8" in keys
    assert {p["hardware"] for p in plan} == {"Eyeriss-like", "TPU-like", "Edge-TPU-like"}
    assert len({p["id"] for p in plan}) == len(plan)


def test_limit_takes_the_first_cases(data_dir):
    r = invoke("cases", "--data-dir", data_dir, "--limit", "3")
    plan = [json.loads(line) for line in r.output.splitlines()]
    assert [p["id"] for p in plan] == [
        "eyeriss-like/resnet50.conv1.b1.int16",
        "eyeriss-like/resnet50.layer.conv1.b1.int16",
        "eyeriss-like/resnet50.layer.layer1-0-conv1.b1.int16",
    ]


def test_shards_partition_the_plan(data_dir):
    full = invoke("cases", "--data-dir", data_dir).output.splitlines()
    parts = [invoke("cases", "--data-dir", data_dir, "--shard", f"{k}/4").output.splitlines() for k in (1, 2, 3, 4)]
    assert sorted(sum(parts, [])) == sorted(full) and [p[0] for p in parts] == full[:4]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"hardware": ["gpu"]}', "hardware"),
        ('{"layers": ["conv9"]}', "field layers: unknown layer name(s) ['conv9']"),
        ('{"batch": 0}', "batch"),
        ('{"colour": 1}', "colour"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, data_dir, text, message):
    cfg = config(tmp_path, text, "c.json")
    out = tmp_path / "out"
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", out)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert message in r.output and str(cfg) in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())  # at most the folder the writability check made


def test_non_utf8_config_is_exit_2(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_bytes(b'{"layers": ["fc\xff"]}')
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "out")
    assert r.exit_code == 2 and "c.json: not UTF-8" in r.output


def test_missing_hardware_catalog_is_exit_2(tmp_path):
    r = invoke("cases", "--data-dir", tmp_path)
    assert r.exit_code == 2 and "hardware.json: cannot read" in r.output


def test_a_selection_of_no_cases_is_exit_2(tmp_path, data_dir):
    cfg = config(tmp_path, {"hardware": ["tpu-like"], "models": ["resnet50"], "layers": ["fc"]})  # 1 case
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "o", "--shard", "2/2")
    assert r.exit_code == 2 and "selects no cases in shard 2/2" in r.output
    assert not (tmp_path / "o" / "zigzag.shard-2-of-2.tool-run.json").exists()


def test_a_config_can_select_each_accelerator(tmp_path, data_dir):
    # every accelerator of the default matrix is selectable through the config schema
    for name, hardware in (("eyeriss-like", "Eyeriss-like"), ("tpu-like", "TPU-like"), ("edge-tpu-like", "Edge-TPU-like"),
                           ("eyeriss-chip", "Eyeriss")):
        cfg = config(tmp_path, json.dumps({"hardware": [name]}), f"{name}.json")
        r = invoke("cases", "--config", cfg, "--data-dir", data_dir, "--limit", "1")
        assert r.exit_code == 0, r.output
        assert json.loads(r.output.splitlines()[0])["hardware"] == hardware
