"""The runner without a Timeloop binary: plan, user errors, unavailable cases, keeping results."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_timeloop_runner.cli import main


@pytest.fixture(autouse=True)
def no_timeloop(monkeypatch):
    monkeypatch.delenv("MTAP_TIMELOOP_PATH", raising=False)


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "--tool-path" in invoke("run", "--help").output and "Example" in r.output
    assert "--timeloop-bin" in invoke("run", "--help").output
    assert invoke("--version").exit_code == 0


def test_cases_plan_full_matrix(data_dir):
    r = invoke("cases", "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    plan = [json.loads(line) for line in r.output.splitlines()]
    assert len(plan) == 2 * 63  # per spec: W1 conv1, 54 layers, total, 6 BERT matmuls, total
    keys = {p["key"] for p in plan}
    assert "resnet50.conv1.b1.int16" in keys and "resnet50.layer.layer3-5-conv2.b1.int8" in keys
    assert "bert-base.model.b1.s128.int16" in keys
    assert {p["hardware"] for p in plan} == {"Eyeriss-like", "Simba-like"}
    assert sum(p["key"].startswith("resnet50.layer.") for p in plan) == 2 * 54


def test_without_timeloop_every_case_is_unavailable_with_advice(tmp_path, data_dir):
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path))
    assert r.exit_code == 0, r.output
    doc = ms.read(tmp_path / "timeloop.tool-run.json", "tool-run")
    assert doc["tool"] == {"name": "timeloop", "version": None, "backend": "native", "location": None}
    assert len(doc["cases"]) == 126
    assert {c["status"] for c in doc["cases"]} == {"unavailable"}
    err = doc["cases"][0]["error"]
    assert err["kind"] == "binary-missing" and "--tool-path" in err["message"] and "MTAP_TIMELOOP_PATH" in err["message"]
    assert doc["cases"][0]["artifacts"][0]["path"].endswith("eyeriss-like/arch.yaml")


def test_without_timeloop_real_results_are_kept(tmp_path, data_dir):
    target = tmp_path / "timeloop.tool-run.json"
    invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path), "--limit", "1")
    doc = ms.read(target, "tool-run")
    case = doc["cases"][0]
    case.update(status="ok", error=None, metrics=[{"name": "cycles", "value": 1.0, "unit": "cycles", "kind": "prediction"}])
    ms.write(target, doc, "tool-run")
    before = target.read_text()
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path))
    assert r.exit_code == 0 and "kept" in r.output and "--overwrite" in r.output
    assert target.read_text() == before
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path), "--overwrite")
    assert r.exit_code == 0
    assert {c["status"] for c in ms.read(target, "tool-run")["cases"]} == {"unavailable"}


def test_docker_without_sdk_or_daemon_is_unavailable(tmp_path, data_dir):
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path), "--limit", "2",
               "--image", "timeloopaccelergy/accelergy-timeloop-infrastructure:latest")
    assert r.exit_code == 0, r.output
    doc = ms.read(tmp_path / "timeloop.tool-run.json", "tool-run")
    assert doc["tool"]["backend"] == "docker"
    assert {c["error"]["kind"] for c in doc["cases"]} <= {"docker-missing", "docker-unavailable", "image-missing"}


def test_wrong_tool_path_is_exit_2(tmp_path, data_dir):
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path / "o"), "--tool-path", str(tmp_path))
    assert r.exit_code == 2 and "no executable timeloop-mapper" in r.output
    assert not (tmp_path / "o").exists()


def test_crashing_binary_gives_failed_cases(tmp_path, data_dir):
    fake = tmp_path / "bin" / "timeloop-mapper"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'ERROR: something broke' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path), "--tool-path", str(tmp_path), "--limit", "2")
    assert r.exit_code == 0, r.output
    cases = ms.read(tmp_path / "timeloop.tool-run.json", "tool-run")["cases"]
    assert [c["status"] for c in cases] == ["failed", "failed"]
    assert cases[0]["error"]["kind"] == "tool-crashed" and "something broke" in cases[0]["error"]["message"]


@pytest.mark.parametrize(
    "config, message",
    [
        ('{"architectures": ["tpu"]}', "field architectures: got ['tpu']"),
        ('{"layers": ["conv9"]}', "field layers: unknown layer name(s) ['conv9']"),
        ('{"timeout_s": -1}', "field timeout_s: got -1"),
        ('{"colour": 1}', "field colour: unknown field"),
        ("{", "not valid JSON"),
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


def test_missing_spec_file_is_exit_2(tmp_path, data_dir):
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "hardware.json").write_text((data_dir / "hardware" / "hardware.json").read_text())
    r = invoke("cases", "--data-dir", str(tmp_path))
    assert r.exit_code == 2 and "arch.yaml: Timeloop spec file missing" in r.output


def test_output_is_deterministic(tmp_path, data_dir):
    for name in ("a", "b"):
        invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path), "--name", name)
    a, b = (ms.read(tmp_path / f"{n}.tool-run.json", "tool-run") for n in ("a", "b"))
    a["invocation"] = b["invocation"] = None
    assert ms.canonical(a) == ms.canonical(b)
    assert os.path.getsize(tmp_path / "a.tool-run.json") > 0
