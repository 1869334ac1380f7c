"""With a real Timeloop v3.0.3 (MTAP_TIMELOOP_PATH or a `timeloop-runner setup` build), reproduce
the committed results."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import REAL_TIMELOOP

import mtap_schemas as ms
from mtap_timeloop_runner.cli import main

pytestmark = pytest.mark.skipif(REAL_TIMELOOP is None, reason="no Timeloop v3.0.3 here (MTAP_TIMELOOP_PATH or "
                                                              "`timeloop-runner setup`) to run the real mapper")


def _run(args, data_dir, output):
    return CliRunner().invoke(main, ["run", *args, "--data-dir", str(data_dir), "--output", str(output),
                                     "--tool-path", REAL_TIMELOOP, "--jobs", "1"])


def test_conv1_on_eyeriss_like_reproduces_reference(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"architectures": ["eyeriss-like"], "models": ["resnet50"], "layers": ["conv1"]}))
    r = _run(["--config", str(cfg)], data_dir, tmp_path)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "timeloop.tool-run.json")
    assert doc["tool"]["backend"] == "native" and doc["tool"]["location"].startswith("timeloop-mapper (sha256 ")
    w1 = next(c for c in doc["cases"] if c["key"] == "resnet50.conv1.b1.int16")
    assert w1["status"] == "ok", w1["error"]
    m = {x["name"]: x["value"] for x in w1["metrics"]}
    assert m["cycles"] == 1_204_224
    assert m["macs"] == 118_013_952
    assert m["utilization"] == pytest.approx(0.58, abs=0.005)
    assert m["latency"] == pytest.approx(1_204_224 / 200e6)
    assert m["energy"] > 0 and m["energy_per_mac"] > 0
    assert w1["parameters"]["mapping_found"] is True
    assert any(a["path"].endswith(".map.txt") for a in w1["artifacts"])


def test_two_thread_mapper_repeats_exactly(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"architectures": ["simba-like"], "models": ["bert-base"], "layers": ["attention-score"]}))
    docs = []
    for name in ("a", "b"):
        r = _run(["--config", str(cfg), "--name", name], data_dir, tmp_path)
        assert r.exit_code == 0, r.output
        docs.append(ms.read_tool_run(tmp_path / f"{name}.tool-run.json"))
    a, b = (d["cases"] for d in docs)
    assert a[0]["status"] == "ok", a[0]["error"]
    assert [c["metrics"] for c in a] == [c["metrics"] for c in b]
    maps = sorted(tmp_path.glob("*.maps/simba-like/attention-score.map.txt"))
    assert len(maps) == 2 and maps[0].read_text() == maps[1].read_text()


def test_alexnet_conv1_on_the_eyeriss_chip(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"architectures": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]}))
    r = _run(["--config", str(cfg)], data_dir, tmp_path)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "timeloop.tool-run.json")
    (case,) = doc["cases"]
    assert case["key"] == "alexnet.layer.conv1.b4.int16" and case["hardware"] == "Eyeriss"
    assert case["status"] == "ok", case["error"]
    m = {x["name"]: x["value"] for x in case["metrics"]}
    # as in data/evaluation/timeloop/timeloop-eyeriss.tool-run.json
    assert m["macs"] == 421_660_800
    assert m["cycles"] == 3_194_400
    assert m["utilization"] == pytest.approx(0.79, abs=0.005)
    assert m["latency"] == pytest.approx(3_194_400 / 200e6)
