"""The runner without a Timeloop binary: plan, user errors, unavailable cases, keeping results."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, config, invoke

import mtap_schemas as ms


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "Examples" in r.output and "MTAP_TIMELOOP_PATH" in r.output
    run_help = invoke("run", "--help").output
    assert "--tool-path" in run_help and "--image" in run_help and "--jobs" in run_help and "2 x N threads" in run_help
    assert "--timeloop-bin" not in run_help  # the old name still works, hidden
    assert "--tool-path" not in invoke("cases", "--help").output
    r = invoke("--version")
    assert r.exit_code == 0 and "2.0.0" in r.output


def test_cases_plan_full_matrix(data_dir):
    r = invoke("cases", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    plan = [json.loads(line) for line in r.output.splitlines()]
    assert len(plan) == 2 * 63  # per spec: W1 conv1, 54 layers, total, 6 BERT matmuls, total
    keys = {p["key"] for p in plan}
    assert "resnet50.conv1.b1.int16" in keys and "resnet50.layer.layer3-5-conv2.b1.int8" in keys
    assert "bert-base.model.b1.s128.int16" in keys
    assert {p["hardware"] for p in plan} == {"Eyeriss-like", "Simba-like"}
    assert sum(p["key"].startswith("resnet50.layer.") for p in plan) == 2 * 54


def test_cases_shards_partition_the_plan(data_dir):
    full = invoke("cases", "--data-dir", data_dir).output.splitlines()
    parts = [invoke("cases", "--data-dir", data_dir, "--shard", f"{k}/3").output.splitlines() for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(full) and parts[0][0] == full[0] and parts[1][0] == full[1]


def test_without_timeloop_every_case_is_unavailable_with_advice(tmp_path, data_dir):
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "timeloop.tool-run.json")
    assert doc["tool"] == {"name": "timeloop", "version": None, "backend": "native", "location": None}
    assert len(doc["cases"]) == 126
    assert {c["status"] for c in doc["cases"]} == {"unavailable"}
    err = doc["cases"][0]["error"]
    assert err["kind"] == "binary-missing" and "--tool-path" in err["message"] and "MTAP_TIMELOOP_PATH" in err["message"]
    assert "timeloop-runner setup" in err["message"]
    assert doc["cases"][0]["artifacts"][0]["path"] == "data/timeloop/eyeriss-like/arch.yaml"


def test_without_timeloop_the_committed_results_are_kept(tmp_path, data_dir):
    committed = REPO / "data" / "evaluation" / "timeloop" / "timeloop.tool-run.json"
    target = tmp_path / "timeloop.tool-run.json"
    target.write_bytes(committed.read_bytes())
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path)
    assert r.exit_code == 4 and "kept" in r.output and "--overwrite" in r.output
    assert target.read_bytes() == committed.read_bytes()
    refused = ms.read_tool_run(tmp_path / "timeloop.refused-fewer-ok.json")
    assert {c["status"] for c in refused["cases"]} == {"unavailable"}
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path, "--overwrite")
    assert r.exit_code == 0
    assert {c["status"] for c in ms.read_tool_run(target)["cases"]} == {"unavailable"}


def test_docker_without_sdk_or_daemon_is_unavailable(tmp_path, data_dir):
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path, "--limit", "2",
               "--image", "timeloopaccelergy/accelergy-timeloop-infrastructure:latest")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "timeloop.tool-run.json")
    assert doc["tool"]["backend"] == "docker"
    assert {c["error"]["kind"] for c in doc["cases"]} <= {"docker-missing", "docker-unavailable", "image-missing"}


@pytest.mark.parametrize("flag", ["--tool-path", "--timeloop-bin"])
def test_wrong_tool_path_is_exit_2(tmp_path, data_dir, flag):
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path / "o", flag, tmp_path)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert f"{flag} {tmp_path}: no executable timeloop-mapper" in r.output
    assert not (tmp_path / "o" / "timeloop.tool-run.json").exists()


def test_wrong_env_path_is_exit_2(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MTAP_TIMELOOP_PATH", str(tmp_path))
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path / "o")
    assert r.exit_code == 2 and "MTAP_TIMELOOP_PATH=" in r.output


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"architectures": ["tpu"]}', "architectures"),
        ('{"layers": ["conv9"]}', "field layers: unknown layer name(s) ['conv9']"),
        ('{"timeout_s": -1}', "timeout_s"),
        ('{"colour": 1}', "colour"),
        ("{", "not valid JSON"),
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
    cfg.write_bytes(b'{"layers": ["conv1\xff"]}')
    r = invoke("cases", "--config", cfg, "--data-dir", data_dir)
    assert r.exit_code == 2 and "c.json: not UTF-8" in r.output


def test_missing_spec_file_is_exit_2(tmp_path, data_dir):
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "hardware.json").write_text((data_dir / "hardware" / "hardware.json").read_text())
    r = invoke("cases", "--data-dir", tmp_path)
    assert r.exit_code == 2 and "arch.yaml: Timeloop spec file missing" in r.output


def test_a_selection_of_no_cases_is_exit_2(tmp_path, data_dir):
    cfg = config(tmp_path, {"architectures": ["eyeriss-like"], "models": ["resnet50"], "layers": ["conv1"]})  # 2 cases
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "o", "--shard", "3/3")
    assert r.exit_code == 2 and "selects no cases" in r.output
    assert not (tmp_path / "o" / "timeloop.shard-3-of-3.tool-run.json").exists()


def test_output_is_deterministic(tmp_path, data_dir):
    for name in ("a", "b"):
        assert invoke("run", "--data-dir", data_dir, "--output", tmp_path, "--name", name).exit_code == 0
    a, b = (ms.read_tool_run(tmp_path / f"{n}.tool-run.json") for n in ("a", "b"))
    a["invocation"] = b["invocation"] = None
    assert ms.canonical(a) == ms.canonical(b)


def test_tool_path_and_image_together_is_exit_2(tmp_path, data_dir):
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path / "o", "--tool-path", tmp_path, "--image", "x:1")
    assert r.exit_code == 2 and "--tool-path and --image: give one" in r.output


def test_empty_layer_list_selects_no_cases_exit_2(tmp_path, data_dir):
    r = invoke("run", "--config", config(tmp_path, {"layers": []}), "--data-dir", data_dir, "--output", tmp_path / "o")
    assert r.exit_code == 2 and "selects no cases; nothing to run" in r.output
