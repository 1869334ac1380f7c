"""The runner contract (packages/README.md) with real ZigZag runs, one test per defect of issue 15
that applies to zigzag-runner: lost results, parallel and sharded runs, checks before work,
degenerate values, timeouts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, config, console, invoke

import mtap_schemas as ms
from mtap_zigzag_runner import cli

COMMITTED = REPO / "data" / "evaluation" / "zigzag" / "zigzag.tool-run.json"
#: two small layers on the three shipped accelerators: 6 ZigZag runs, a few seconds each
SMALL = {"layers": ["fc", "attention-score"]}


def _cases(path: Path) -> list[dict]:
    return ms.canonical(ms.read_tool_run(path))["cases"]


def test_real_runs_equal_the_committed_cases_for_any_jobs_and_shards(tmp_path):
    cfg = config(tmp_path, SMALL)
    one = console("run", "--config", cfg, "--output", tmp_path / "j1", "--jobs", "1")
    two = console("run", "--config", cfg, "--output", tmp_path / "j2", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    doc = ms.read_tool_run(tmp_path / "j1" / "zigzag.tool-run.json")
    assert doc["tool"] == {"name": "zigzag", "version": "3.9.1", "backend": "native", "location": "zigzag-dse==3.9.1 (PyPI)"}
    cases = _cases(tmp_path / "j1" / "zigzag.tool-run.json")
    assert cases == _cases(tmp_path / "j2" / "zigzag.tool-run.json")
    committed = {c["id"]: c for c in ms.canonical(ms.read_tool_run(COMMITTED))["cases"]}
    assert len(cases) == 6 and all(c == committed[c["id"]] for c in cases)
    for case in cases:
        m = {x["name"]: x["value"] for x in case["metrics"]}
        pes = 168 if case["hardware"] == "Eyeriss-like" else 1024
        assert m["macs"] == case["parameters"]["macs"] and m["cycles"] >= m["macs"] / pes
        assert ("latency" in m) == (case["hardware"] == "Eyeriss-like")  # the TPU-like examples have no clock
    shards = []
    for k in (1, 2):
        res = invoke("run", "--config", cfg, "--output", tmp_path / "shards", "--jobs", "1", "--shard", f"{k}/2")
        assert res.exit_code == 0, res.output
        shards += _cases(tmp_path / "shards" / f"zigzag.shard-{k}-of-2.tool-run.json")
    assert sorted(shards, key=lambda c: c["id"]) == sorted(cases, key=lambda c: c["id"])


def _slow_zigzag(tmp_path):
    """Environment for a real runner process whose ZigZag call never finishes in time: a
    sitecustomize (on PYTHONPATH) replaces ZigZag's API by a 30 s sleep, so a timeout is certain
    on any machine (the real conv1 can finish within a short timeout on a fast, quiet one)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time\nimport zigzag.api\n"
        "def _slow(*args, **kwargs):\n    time.sleep(30)\n"
        "zigzag.api.get_hardware_performance_zigzag = _slow\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


def test_every_case_failed_never_replaces_the_committed_results(tmp_path):
    """A run whose every case failed (here: every ZigZag call runs past --timeout) is written beside
    the committed document, which stays byte for byte (exit 4); alone it is exit 3."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "zigzag.tool-run.json").write_bytes(COMMITTED.read_bytes())
    cfg = config(tmp_path, {"hardware": ["eyeriss-like"], "models": ["resnet50"], "layers": ["conv1"]})
    env = _slow_zigzag(tmp_path)
    res = console("run", "--config", cfg, "--output", out, "--timeout", "0.5", "--jobs", "1", env=env)
    assert res.returncode == 4, res.stderr
    assert (out / "zigzag.tool-run.json").read_bytes() == COMMITTED.read_bytes()
    assert "kept" in res.stderr.splitlines()[-1]
    refused = ms.read_tool_run(out / "zigzag.refused-fewer-ok.json")
    assert [c["error"]["kind"] for c in refused["cases"]] == ["timeout", "timeout"]
    assert "zigzag ran past 0.5 s on conv1" in refused["cases"][0]["error"]["message"]
    alone = console("run", "--config", cfg, "--output", tmp_path / "alone", "--timeout", "0.5", "--jobs", "1", env=env)
    assert alone.returncode == 3, alone.stderr


def _fake_zigzag(monkeypatch, edit):
    """ZigZag's API replaced by one that writes the captured conv1 result file, edited by ``edit``."""
    import zigzag.api

    def fake(workload, accelerator, mapping, dump_folder, **_kw):
        doc = json.loads((FIXTURES / "eyeriss-like.conv1_complete.json").read_text())
        if workload[0]["name"] == "conv1":
            edit(doc)
        Path(dump_folder, f"{workload[0]['name']}_complete.json").write_text(json.dumps(doc))

    monkeypatch.setattr(zigzag.api, "get_hardware_performance_zigzag", fake)


@pytest.mark.parametrize("path,value,message", [
    ("outputs.energy.energy_total", float("inf"), "metric energy: got inf"),
    ("outputs.latency.computation", float("inf"), "metric cycles: got inf"),
    ("outputs.spatial.mac_utilization.stalls_onloading_offloading", -0.1, "metric utilization: got -0.1"),
    ("outputs.energy.energy_total", -5.0, "metric energy: got -5.0 pJ"),
])
def test_degenerate_results_are_invalid_value_cases(tmp_path, monkeypatch, path, value, message):
    def edit(doc):
        node = doc
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value

    _fake_zigzag(monkeypatch, edit)
    cfg = config(tmp_path, {"hardware": ["eyeriss-chip"], "models": ["alexnet"]})
    res = invoke("run", "--config", cfg, "--output", tmp_path / "out", "--jobs", "1")
    assert res.exit_code == 0, res.output
    cases = {c["key"]: c for c in ms.read_tool_run(tmp_path / "out" / "zigzag.tool-run.json")["cases"]}
    conv1 = cases["alexnet.layer.conv1.b4.int16"]
    assert conv1["status"] == "failed" and conv1["error"]["kind"] == "invalid-value"
    assert message in conv1["error"]["message"]
    assert cases["alexnet.layer.conv2.b4.int16"]["status"] == "ok"
    assert cases["alexnet.conv-layers.b4.int16"]["error"] == {"kind": "incomplete", "message": "no result for layer(s) conv1"}


def test_zero_cycles_in_every_layer_is_no_zero_division(tmp_path, monkeypatch):
    def edit(doc):
        doc["outputs"]["latency"] = {"data_onloading": 0, "computation": 0, "data_offloading": 0}

    _fake_zigzag(monkeypatch, edit)
    cfg = config(tmp_path, {"hardware": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]})
    res = invoke("run", "--config", cfg, "--output", tmp_path / "out", "--jobs", "1")
    assert res.exit_code == 3, res.output
    (case,) = ms.read_tool_run(tmp_path / "out" / "zigzag.tool-run.json")["cases"]
    assert case["error"]["kind"] == "invalid-value" and "metric cycles: got 0" in case["error"]["message"]


def test_unwritable_output_fails_before_the_first_case(tmp_path, monkeypatch):
    def never(*_a, **_kw):
        raise AssertionError("a case ran")

    monkeypatch.setattr(cli, "run_cases", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = invoke("run", "--output", blocker / "out", "--config", config(tmp_path, SMALL))
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.output.count("\n") == 1 and "a-file/out" in res.output


def test_keep_raw_keeps_zigzags_files(tmp_path, monkeypatch):
    _fake_zigzag(monkeypatch, lambda doc: None)
    cfg = config(tmp_path, {"hardware": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]})
    res = invoke("run", "--config", cfg, "--output", tmp_path / "out", "--jobs", "1", "--keep-raw", tmp_path / "raw")
    assert res.exit_code == 0, res.output
    kept = tmp_path / "raw" / "eyeriss-chip" / "alexnet.conv1"
    assert sorted(p.name for p in kept.iterdir()) == ["conv1_complete.json", "mapping.yaml"]
