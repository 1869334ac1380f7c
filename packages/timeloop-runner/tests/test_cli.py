"""The runner without a Timeloop binary: tool lookup, its user errors, unavailable cases, keeping results
(the plan and its config errors: test_plan.py, shared with zigzag-runner)."""

from __future__ import annotations

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


def test_bad_timeout_in_the_config_is_one_line_exit_2(tmp_path, data_dir):
    cfg = config(tmp_path, {"timeout_s": -1}, "c.json")
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "out")
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert "timeout_s" in r.output and str(cfg) in r.output and len(r.output.strip().splitlines()) == 1


def test_missing_spec_file_is_exit_2(tmp_path, data_dir):
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "hardware.json").write_text((data_dir / "hardware" / "hardware.json").read_text())
    r = invoke("cases", "--data-dir", tmp_path)
    assert r.exit_code == 2 and "arch.yaml: Timeloop spec file missing" in r.output


def test_output_is_deterministic(tmp_path, data_dir):
    for name in ("a", "b"):
        assert invoke("run", "--data-dir", data_dir, "--output", tmp_path, "--name", name).exit_code == 0
    a, b = (ms.read_tool_run(tmp_path / f"{n}.tool-run.json") for n in ("a", "b"))
    a["invocation"] = b["invocation"] = None
    assert ms.canonical(a) == ms.canonical(b)


def test_tool_path_and_image_together_is_exit_2(tmp_path, data_dir):
    r = invoke("run", "--data-dir", data_dir, "--output", tmp_path / "o", "--tool-path", tmp_path, "--image", "x:1")
    assert r.exit_code == 2 and "--tool-path and --image: give one" in r.output
