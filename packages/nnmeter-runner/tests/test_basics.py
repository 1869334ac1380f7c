"""Fast checks: CLI contract, config errors, the pinned hashes, the models' parameter counts."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from conftest import DATA

import mtap_schemas as ms
from mtap_nnmeter_runner import __version__
from mtap_nnmeter_runner.cases import DEFAULT_HARDWARE as HARDWARE
from mtap_nnmeter_runner.cases import DEFAULT_MODELS as MODELS
from mtap_nnmeter_runner.cli import main
from mtap_nnmeter_runner.models import REFERENCE_PARAMETERS, build, parameter_count
from mtap_nnmeter_runner.nnmeter import DEFAULT_RULES
from mtap_nnmeter_runner.predictors import (
    RELEASED,
    RULES_FILE,
    RULES_SHA256,
    HashesError,
    kernel_lists,
    load_hashes,
    read_verified,
)
from mtap_schemas.kinds import Exit


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("nn-meter==2.0", "--tool-path", "~/.nn_meter", "Example:", "packages/README.md"):
        assert word in text
    run_help = invoke("run", "--help").output
    assert "--tool-path" in run_help and "MTAP_NN_METER_PATH" in run_help and "--timeout" in run_help
    assert "--predictor-dir" not in run_help and "--image" not in run_help and "--keep-raw" not in run_help
    assert "--output" not in invoke("cases", "--help").output
    assert invoke("--version").output.strip().endswith(__version__)


def test_cases_lists_the_matrix_and_runs_nothing():
    result = invoke("cases", "--data-dir", str(DATA))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == len(MODELS) * len(HARDWARE) * 2
    assert {c["workload"] for c in lines} == {"W1", "W4", "W8", "W9"}
    assert {c["hardware"] for c in lines} == set(HARDWARE)
    assert len({c["id"] for c in lines}) == len(lines)
    assert lines[0]["key"] == "resnet50.model.b1.fp32"
    assert len(invoke("cases", "--data-dir", str(DATA), "--limit", "3").output.splitlines()) == 3


def test_shards_partition_the_cases():
    full = invoke("cases", "--data-dir", str(DATA)).output.splitlines()
    parts = [invoke("cases", "--data-dir", str(DATA), "--shard", f"{k}/3").output.splitlines() for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(full) and sum(map(len, parts)) == len(full) == 40
    assert parts[1] == full[1::3]


def test_zero_planned_cases_is_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--data-dir", str(DATA), "--output", str(out), "--shard", "41/50")
    assert result.exit_code == Exit.USER_ERROR
    assert "selects no cases in shard 41/50" in _one_error_line(result)
    assert not any(out.iterdir())


def test_unwritable_output_fails_before_the_first_case(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = invoke("run", "--data-dir", str(DATA), "--output", str(blocker / "out"))
    assert result.exit_code == Exit.USER_ERROR
    assert "output folder" in _one_error_line(result)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"models": ["resnet51"]}', "field models[0]: got 'resnet51', expected one of"),
        (b'{"models": ["vgg16", "vgg16"]}', "field models: ['vgg16', 'vgg16'] has non-unique elements"),
        (b'{"hardware": "myriadvpu"}', "field hardware: got str"),
        (b'{"opsets": [10, "13"]}', "field opsets[1]: got str"),
        (b'{"timeout_s": 0}', "field timeout_s: 0 is less than the minimum of 1"),
        (b'{"model": ["vgg16"]}', "'model' was unexpected"),
        (b'{"models": ["vgg16"], "note": "\xff"}', "not UTF-8"),
        (b"[]", "expected a JSON object"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, body, expected):
    config = tmp_path / "config.json"
    config.write_bytes(body)
    result = invoke("run", "--config", str(config), "--data-dir", str(DATA), "--output", str(tmp_path / "out"))
    assert result.exit_code == Exit.USER_ERROR
    line = _one_error_line(result)
    assert expected in line and line.startswith(f"Error: {config}"), line
    assert not (tmp_path / "out").exists()


def test_unknown_hardware_in_catalog_is_exit_2(tmp_path):
    catalog = json.loads((DATA / "hardware" / "hardware.json").read_text())
    catalog["hardware"] = [h for h in catalog["hardware"] if h["id"] != "myriadvpu"]
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "hardware.json").write_text(json.dumps(catalog))
    result = invoke("cases", "--data-dir", str(tmp_path))
    assert result.exit_code == Exit.USER_ERROR
    assert "field hardware: no entry with id 'myriadvpu'" in _one_error_line(result)


def test_bad_hashes_file_is_exit_2(tmp_path):
    bad = tmp_path / "hashes.json"
    bad.write_text(json.dumps({"format": "mtap-nnmeter-predictor-hashes/1",
                               "predictors": {"cortexA76cpu_tflite21": {"fc.pkl": {"sha256": "abc"}}}}))
    result = invoke("run", "--data-dir", str(DATA), "--output", str(tmp_path / "out"), "--predictor-hashes", str(bad))
    assert result.exit_code == Exit.USER_ERROR
    assert "predictors.cortexA76cpu_tflite21.fc.pkl.sha256: expected 64 lowercase hex digits" in _one_error_line(result)
    assert not any((tmp_path / "out").iterdir())
    bad.write_bytes(b'{"format": "\xfe"}')
    result = invoke("run", "--data-dir", str(DATA), "--output", str(tmp_path / "out"), "--predictor-hashes", str(bad))
    assert result.exit_code == Exit.USER_ERROR and "hashes.json: not UTF-8" in _one_error_line(result)


def test_pinned_list_covers_exactly_what_nnmeter_loads():
    pinned = load_hashes()
    lists = kernel_lists()  # nn-Meter's own predictors.yaml
    assert sorted(pinned) == sorted(RELEASED)
    for name in RELEASED:
        assert sorted(pinned[name]) == sorted([k + ".pkl" for k in lists[name]] + [RULES_FILE])
        assert pinned[name][RULES_FILE]["sha256"] == RULES_SHA256[name]


def test_default_rules_are_named():
    """Without device rule files (--rules-dir, --predictor-dir) detection runs on nn-Meter's defaults."""
    assert "nn-meter-defaults" in DEFAULT_RULES and "no device fusion rules" in DEFAULT_RULES
    assert "built-in default rules" in " ".join(invoke("run", "--help").output.split())


def test_read_verified_refuses_other_bytes(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"hello")
    assert read_verified(path, hashlib.sha256(b"hello").hexdigest()) == b"hello"
    with pytest.raises(PermissionError, match="refused before unpickling"):
        read_verified(path, hashlib.sha256(b"other").hexdigest())


def test_hashes_error_names_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text("{")
    with pytest.raises(HashesError, match=str(path)):
        load_hashes(path)


@pytest.mark.parametrize("name", sorted(set(REFERENCE_PARAMETERS) - {"resnet50"}))
def test_parameter_counts_equal_the_reference_implementations(name):
    # ResNet-50's 25,557,032 is checked once, in analytical-runner; here its convolution shapes are.
    assert parameter_count(build(name)) == REFERENCE_PARAMETERS[name]


def test_resnet50_convolutions_equal_the_layer_table():
    """Every convolution (and fc as a 1x1 convolution) of our ResNet-50, in forward order, against
    data/workloads/layers/resnet50.layers.json (schema layers v1)."""
    import torch
    from torch import nn

    table = ms.read(DATA / "workloads" / "layers" / "resnet50.layers.json", "layers")
    seen: list[dict] = []

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            if isinstance(module, nn.Linear):
                seen.append({"name": name, "shape": {"C": module.in_features, "K": module.out_features, "P": 1, "Q": 1,
                                                     "R": 1, "S": 1}})
                return
            seen.append({"name": name, "input_hw": x.shape[-1], "stride": module.stride[0], "padding": module.padding[0],
                         "shape": {"C": module.in_channels, "K": module.out_channels, "R": module.kernel_size[0],
                                   "S": module.kernel_size[1], "P": output.shape[-2], "Q": output.shape[-1]}})
        return record

    model = build("resnet50")
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook(name.replace(".", "-")))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    assert [s["name"] for s in seen] == [lay["name"] for lay in table["layers"]]
    for got, want in zip(seen, table["layers"]):
        assert got["shape"] == {k: v for k, v in want["shape"].items() if k != "N"}, want["name"]
        if "input_hw" in got:
            assert (got["input_hw"], got["stride"], got["padding"]) == (
                want.get("input_hw", got["input_hw"]), want.get("stride", 1), want.get("padding", 0)), want["name"]
    assert len(seen) == 54 and sum(1 for s in seen if "input_hw" in s) == 53


def test_schema_of_a_document_without_nnmeter(tmp_path, monkeypatch):
    """Without the nn_meter package every case is `unavailable` (package-missing), exit 0."""
    import mtap_nnmeter_runner.cli as cli

    monkeypatch.setattr(cli, "nnmeter_package_dir", lambda: None)
    result = invoke("run", "--data-dir", str(DATA), "--output", str(tmp_path), "--limit", "4")
    assert result.exit_code == Exit.OK, result.output
    doc = ms.read_tool_run(tmp_path / "nn-meter.tool-run.json")
    assert [c["status"] for c in doc["cases"]] == ["unavailable"] * 4
    assert {c["error"]["kind"] for c in doc["cases"]} == {"package-missing"}


def _outcome_with_latency(value: float):
    """The runner's view of one verified predictor whose prediction is ``value`` ms."""
    from mtap_nnmeter_runner.cases import plan_from_config
    from mtap_nnmeter_runner.nnmeter import Outcome, Rules
    from mtap_nnmeter_runner.predictors import Check

    plan = plan_from_config({"models": ["mobilenet-v2"], "hardware": ["cortexA76cpu"]})
    detection = {"total": 64, "by_type": {"conv": 64}}
    outcome = Outcome(
        parse={"mobilenet-v2": {"ok": True, "opset": 10, "graph_nodes": 99, "detections": {"cortexA76cpu_tflite21": detection}}},
        predict={"cortexA76cpu_tflite21": {"ok": True, "sklearn": "1.2.2", "results": {"mobilenet-v2": {"ok": True, "latency_ms": value}}}},
        checks={"cortexA76cpu": Check(True, files={"fc.pkl": "0" * 64})},
        rules={"cortexA76cpu": Rules(None, None, DEFAULT_RULES)},
    )
    return plan, outcome


@pytest.mark.parametrize("value, needle", [(float("1e999"), "finite"), (-0.5, "cannot be negative"), (float("nan"), "finite")])
def test_degenerate_prediction_is_an_invalid_value_case_not_a_crash(value, needle):
    from mtap_nnmeter_runner.nnmeter import build_cases

    plan, outcome = _outcome_with_latency(value)
    kernels, latency = build_cases(plan, outcome, None)
    assert kernels["status"] == "ok"
    assert latency["status"] == "failed" and latency["error"]["kind"] == "invalid-value", latency
    assert "latency" in latency["error"]["message"] and needle in latency["error"]["message"]
    plan, outcome = _outcome_with_latency(12.5)
    assert build_cases(plan, outcome, None)[1]["metrics"][0]["value"] == 12.5
