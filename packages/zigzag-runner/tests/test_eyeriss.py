"""The Eyeriss chip: ZigZag's shipped Eyeriss example and the chip's row-stationary spec on
ResNet-50 conv1 (real ZigZag runs), and the paper's measurements as a tool-run document."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_zigzag_runner import eyeriss
from mtap_zigzag_runner.cli import main


def _run(tmp_path, data_dir, config: dict, name: str) -> dict:
    cfg = tmp_path / f"{name}.json"
    cfg.write_text(json.dumps(config))
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(tmp_path),
                                  "--name", name])
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / f"{name}.tool-run.json")
    return {c["id"]: c for c in doc["cases"]}


def _metrics(case: dict) -> dict:
    assert case["status"] == "ok", case["error"]
    return {m["name"]: m["value"] for m in case["metrics"]}


def test_shipped_eyeriss_example_and_the_chip_on_resnet50_conv1(tmp_path, data_dir):
    cfg = {"hardware": ["eyeriss-like", "eyeriss-chip"], "models": ["resnet50"], "layers": ["conv1"]}
    cases = _run(tmp_path, data_dir, cfg, "conv1")
    # ZigZag 3.9.1's shipped Eyeriss example (hardware/eyeriss_like.yaml + mapping/default.yaml,
    # which unrolls K and C): what it gives, as in the committed zigzag.tool-run.json.
    shipped = cases["eyeriss-like/resnet50.layer.conv1.b1.int16"]
    m = _metrics(shipped)
    assert m["cycles"] == 6_148_299 and m["utilization"] == pytest.approx(0.114253, abs=1e-6)
    assert shipped["parameters"]["spatial_mapping"] == "K12 C3"
    # The chip spec with row-stationary unrolling: 7 filter rows down a column, 14 output rows
    # across the columns (98 of 168 PEs), no longer at 0.11 utilization.
    chip = cases["eyeriss-chip/resnet50.layer.conv1.b1.int16"]
    m = _metrics(chip)
    assert chip["hardware"] == "Eyeriss" and chip["parameters"]["spatial_mapping"] == "FY7 OY14"
    assert m["cycles"] == 1_610_398 and m["utilization"] == pytest.approx(0.436, abs=1e-3)
    assert m["latency"] == pytest.approx(1_610_398 / 200e6)
    assert m["cycles"] >= m["macs"] / 98  # no mapping beats its busy PEs


def test_alexnet_conv1_on_the_chip(tmp_path, data_dir):
    cases = _run(tmp_path, data_dir, {"hardware": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]}, "a")
    case = cases["eyeriss-chip/alexnet.layer.conv1.b4.int16"]
    m = _metrics(case)
    assert m["macs"] == 421_660_800 and case["workload"] == "W1"
    assert case["parameters"]["spatial_mapping"].startswith("FY11 OY")
    assert 0.5 < m["utilization"] <= 1
    assert m["cycles"] >= m["macs"] / 168


def test_published_document(tmp_path, repo, monkeypatch):
    out = tmp_path / "p.tool-run.json"
    monkeypatch.chdir(repo)  # the defaults are relative to the repository, as recorded in the document
    r = CliRunner().invoke(eyeriss.main, ["published", "--output", str(out)])
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(out)
    assert doc["tool"] == {"name": "published", "version": "JSSC 2017", "backend": "artifact",
                           "location": "doi:10.1109/JSSC.2016.2616357"}
    cases = {c["key"]: c for c in doc["cases"]}
    assert len(cases) == 5 + 1 + 13 + 1
    conv1 = {m["name"]: m for m in cases["alexnet.layer.conv1.b4.int16"]["metrics"]}
    assert conv1["latency"]["value"] == 16.5 and conv1["latency"]["timing"] == "reported"
    assert conv1["latency"]["kind"] == "measurement" and "Table V" in conv1["latency"]["source"]
    assert conv1["power"]["value"] == 332 and conv1["total_latency"]["value"] == 20.9
    # The paper's columns add up to its Total rows and its abstract.
    alex = [cases[f"alexnet.layer.conv{i}.b4.int16"] for i in range(1, 6)]
    val = lambda c, n: next(m["value"] for m in c["metrics"] if m["name"] == n)  # noqa: E731
    total = cases["alexnet.conv-layers.b4.int16"]
    assert sum(val(c, "total_latency") for c in alex) == pytest.approx(val(total, "total_latency"), abs=0.05)
    assert sum(val(c, "latency") for c in alex) == pytest.approx(val(total, "latency"), abs=0.05)
    assert sum(val(c, "chip_energy") for c in alex) / val(total, "total_latency") == pytest.approx(278, abs=0.5)
    assert 4 / (val(total, "total_latency") / 1e3) == pytest.approx(35, abs=0.5)  # 35 frames/s
    assert val(total, "dram_access") * 1e6 / 2 / total["parameters"]["macs"] == pytest.approx(0.0029, abs=5e-5)
    vgg_total = cases["vgg16.conv-layers.b3.int16"]
    assert val(vgg_total, "dram_access") * 1e6 / 2 / vgg_total["parameters"]["macs"] == pytest.approx(0.0035, abs=5e-5)
    assert "latency" not in {m["name"] for m in cases["vgg16.layer.conv2-2.b3.int16"]["metrics"]}
    committed = ms.read_tool_run(repo / eyeriss.PUBLISHED)
    assert ms.canonical(doc)["cases"] == ms.canonical(committed)["cases"]


def test_published_refuses_a_layer_the_table_lacks(tmp_path, repo):
    doc = json.loads((repo / eyeriss.SILICON).read_text())
    doc["tables"][0]["layers"][0]["layer"] = "conv9"
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps(doc))
    out = tmp_path / "p.tool-run.json"
    r = CliRunner().invoke(eyeriss.main, ["published", "--silicon", str(bad), "--data-dir", str(repo / "data"),
                                          "--output", str(out)])
    assert r.exit_code == 2 and "field tables[0].layers[0].layer: 'conv9'" in r.output
    assert not out.exists()


def test_cross_tool_table_from_the_committed_documents(tmp_path, repo):
    out = tmp_path / "t.md"
    r = CliRunner().invoke(eyeriss.main, ["table", "--published", str(repo / eyeriss.PUBLISHED),
                                          "--zigzag", str(repo / eyeriss.ZIGZAG),
                                          "--timeloop", str(repo / eyeriss.TIMELOOP), "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == (repo / eyeriss.TABLE).read_text()
    assert "| alexnet conv1 | 16.5 (20.9) | 332 |" in out.read_text()


def test_cross_tool_table_needs_the_published_document(tmp_path):
    r = CliRunner().invoke(eyeriss.main, ["table", "--published", str(tmp_path / "none.json"),
                                          "--output", str(tmp_path / "t.md")])
    assert r.exit_code == 2 and "none.json: cannot read" in r.output


def test_silicon_file_is_required(tmp_path, repo):
    shutil.copy(repo / eyeriss.SILICON, tmp_path / "s.json")
    (tmp_path / "s.json").write_text("{")
    r = CliRunner().invoke(eyeriss.main, ["published", "--silicon", str(tmp_path / "s.json"),
                                          "--output", str(tmp_path / "p.tool-run.json")])
    assert r.exit_code == 2 and "s.json: not valid JSON" in r.output
