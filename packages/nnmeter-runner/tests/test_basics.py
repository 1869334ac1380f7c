"""Fast checks: CLI contract, config errors, the pinned hashes, the models' parameter counts."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from conftest import DATA

import mtap_schemas as ms
from mtap_nnmeter_runner import __version__
from mtap_nnmeter_runner.cases import HARDWARE, MODELS
from mtap_nnmeter_runner.cli import main
from mtap_nnmeter_runner.models import REFERENCE_PARAMETERS, build, parameter_count
from mtap_nnmeter_runner.nnmeter import DEFAULT_RULES
from mtap_nnmeter_runner.predictors import (
    PREDICTORS,
    RULES_FILE,
    RULES_SHA256,
    HashesError,
    kernel_lists,
    load_hashes,
    read_verified,
)


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("nn-meter==2.0", "--predictor-dir", "~/.nn_meter", "Example:"):
        assert word in result.output
    run_help = invoke("run", "--help").output
    assert "--tool-path" in run_help and "MTAP_NNMETER_PREDICTOR_DIR" in run_help
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


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"models": ["resnet51"]}, "field models: got 'resnet51', expected one of"),
        ({"hardware": "myriadvpu"}, "field hardware: expected a non-empty list"),
        ({"opsets": [10, "13"]}, "field opsets: expected"),
        ({"timeout_s": 0}, "field timeout_s: expected a positive integer"),
        ({"model": ["vgg16"]}, "field model: unknown field"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, write_config, fields, expected):
    config = write_config(**fields)
    result = invoke("run", "--config", str(config), "--data-dir", str(DATA), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert expected in result.output and str(config) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_hardware_in_catalog_is_exit_2(tmp_path):
    catalog = json.loads((DATA / "hardware" / "hardware.json").read_text())
    catalog["hardware"] = [h for h in catalog["hardware"] if h["id"] != "myriadvpu"]
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "hardware.json").write_text(json.dumps(catalog))
    result = invoke("cases", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "field hardware: no entry with id 'myriadvpu'" in result.output


def test_bad_hashes_file_is_exit_2(tmp_path):
    bad = tmp_path / "hashes.json"
    bad.write_text(json.dumps({"format": "mtap-nnmeter-predictor-hashes/1",
                               "predictors": {"cortexA76cpu_tflite21": {"fc.pkl": {"sha256": "abc"}}}}))
    result = invoke("run", "--data-dir", str(DATA), "--output", str(tmp_path / "out"), "--predictor-hashes", str(bad))
    assert result.exit_code == 2
    assert "predictors.cortexA76cpu_tflite21.fc.pkl.sha256: expected 64 lowercase hex digits" in result.output
    assert not (tmp_path / "out").exists()


def test_pinned_list_covers_exactly_what_nnmeter_loads():
    pinned = load_hashes()
    lists = kernel_lists()  # nn-Meter's own predictors.yaml
    assert sorted(pinned) == sorted(PREDICTORS.values())
    for name in PREDICTORS.values():
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


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMETERS))
def test_parameter_counts_equal_the_reference_implementations(name):
    assert parameter_count(build(name)) == REFERENCE_PARAMETERS[name]


def test_schema_of_a_document_without_nnmeter(tmp_path, monkeypatch):
    """Without the nn_meter package every case is `unavailable` (package-missing), exit 0."""
    import mtap_nnmeter_runner.cli as cli

    monkeypatch.setattr(cli, "nnmeter_package_dir", lambda: None)
    result = invoke("run", "--data-dir", str(DATA), "--output", str(tmp_path), "--limit", "4")
    assert result.exit_code == 0, result.output
    doc = ms.read(tmp_path / "nn-meter.tool-run.json", "tool-run")
    assert [c["status"] for c in doc["cases"]] == ["unavailable"] * 4
    assert {c["error"]["kind"] for c in doc["cases"]} == {"package-missing"}
