"""The runner contract: cases, config errors (exit 2, one line, nothing written), unavailable cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO

from mtap_vidur_runner.cli import main


def _data(tmp: Path) -> Path:
    d = tmp / "data"
    for sub in ("workloads", "hardware"):
        (d / sub).mkdir(parents=True)
        shutil.copyfile(REPO / "data" / sub / f"{sub}.json", d / sub / f"{sub}.json")
    return d


def test_cases_default_matrix():
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(REPO / "data")])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert len(lines) == 18  # 2 GPUs x 3 schedulers x 3 QPS
    assert [c["hardware"] for c in lines[:9]] == ["H100-SXM5-80GB"] * 9
    assert {(c["parameters"]["scheduler"], c["parameters"]["qps"]) for c in lines[:9]} == {(s, q) for s in ("vllm", "sarathi", "orca") for q in (1.0, 2.0, 4.0)}
    first = lines[0]
    assert first["id"] == "W5/H100-SXM5-80GB/vllm/qps=1" and first["key"] == "llama2-7b.serving.vllm.qps1.n500.fp16"
    p = first["parameters"]
    assert (p["num_requests"], p["min_tokens"], p["max_tokens"], p["prefill_to_decode_ratio"], p["seed"], p["sarathi_chunk_size"]) == (500, 128, 512, 20.0, 42, 512)
    assert len({c["id"] for c in lines}) == 18 and len({(c["hardware"], c["key"]) for c in lines}) == 18


def test_cases_config_and_limit(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"schedulers": ["orca"], "qps": [0.5, 3], "hardware": ["A100-SXM4-80GB"], "num_requests": 20}))
    r = CliRunner().invoke(main, ["cases", "--config", str(cfg), "--data-dir", str(REPO / "data"), "--limit", "1"])
    assert r.exit_code == 0, r.output
    (c,) = [json.loads(x) for x in r.output.splitlines()]
    assert c["id"] == "W5/A100-SXM4-80GB/orca/qps=0.5" and c["key"] == "llama2-7b.serving.orca.qps0_5.n20.fp16"


@pytest.mark.parametrize(
    "body, needle",
    [
        ('{"qps": [0]}', "field qps: expected a non-empty list of positive numbers"),
        ('{"schedulers": ["fcfs"]}', "field schedulers"),
        ('{"hardware": ["TPU-v9"]}', "field hardware: 'TPU-v9' is not an id in"),
        ('{"hardware": ["HGX-H100x8"]}', "has no VIDUR device"),
        ('{"speed": 1}', "field speed: unknown field"),
        ('{"min_tokens": 600}', "field min_tokens: expected min_tokens <= max_tokens"),
        ("[1, 2]", "field <root>: expected a JSON object"),
        ("{oops", "not valid JSON"),
    ],
)
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, body, needle):
    cfg = tmp_path / "bad.json"
    cfg.write_text(body)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--data-dir", str(REPO / "data"), "--output", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {cfg}") and needle in lines[0], r.output
    assert "Traceback" not in r.output and not out.exists()


def test_bad_catalog_and_tool_path(tmp_path):
    d = _data(tmp_path)
    (d / "workloads" / "workloads.json").write_text('{"workloads": []}')
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(d)])
    assert r.exit_code == 2 and "workloads.json: field workloads: expected an entry with id W5" in r.output
    r = CliRunner().invoke(main, ["run", "--data-dir", str(REPO / "data"), "--tool-path", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--tool-path: no such file" in r.output and not (tmp_path / "o").exists()


def test_no_profiles_gives_unavailable_cases(tmp_path):
    data = _data(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(data), "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    import mtap_schemas as ms

    doc = ms.read(out / "vidur.tool-run.json", "tool-run")
    assert len(doc["cases"]) == 18
    for c in doc["cases"]:
        assert c["status"] == "unavailable" and c["error"]["kind"] == "profile-missing"
        dev = "h100" if c["hardware"].startswith("H100") else "a100"
        assert f"{dev}/meta-llama/Llama-2-7b-hf/attention.csv" in c["error"]["message"] and "--profiles DIR" in c["error"]["message"]
    assert doc["tool"]["version"] == "0.0.26"


def test_missing_vidur_gives_unavailable(tmp_path):
    """A python without vidur: every case unavailable, naming how to install it."""
    import venv

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(REPO / "data"), "--tool-path", str(env), "--output", str(out), "--limit", "2", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "vidur.tool-run.json").read_text())
    assert doc["tool"]["version"] is None
    assert {c["error"]["kind"] for c in doc["cases"]} == {"package-missing"}
    assert "pip install vidur==0.0.26" in doc["cases"][0]["error"]["message"]


def test_profile_refuses_unknown_model(tmp_path):
    r = CliRunner().invoke(main, ["profile", "--model", "acme/nothing", "--output-dir", str(tmp_path / "p")])
    assert r.exit_code == 2 and r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1
    assert ("acme/nothing" in r.output) or ("torch: not installed" in r.output)
    assert not (tmp_path / "p").exists()
