"""The committed document and the README's table generated from it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import COMMITTED, GROUNDTRUTH

import mtap_schemas as ms
from mtap_aiconfigurator_runner.cases import plan
from mtap_aiconfigurator_runner.compare import Pair, pair, readme_block, render, summary

README = Path(__file__).resolve().parents[1] / "README.md"


def _pairs() -> dict[str, list[Pair]]:
    doc = ms.read_tool_run(COMMITTED)
    gts = [ms.read_tool_run(p) for p in GROUNDTRUTH]
    return {t: pair(doc, gts, t) for t in ("device", "eager-end-to-end")}


def test_the_committed_document_is_the_full_matrix() -> None:
    doc = ms.read_tool_run(COMMITTED)
    assert [c["id"] for c in doc["cases"]] == [c.id for c in plan()]
    status = [c["status"] for c in doc["cases"]]
    assert status.count("ok") == 46 and status.count("unsupported") == 32
    assert all(c["workload"] == "W5" for c in doc["cases"] if c["status"] == "ok")
    assert doc["tool"]["version"] == "0.12.0"
    assert {c["parameters"]["aic_backend_version"] for c in doc["cases"] if c["status"] == "ok"} == {"1.3.0rc20"}


def test_the_committed_document_agrees_with_the_captured_fixture() -> None:
    captured = json.loads((Path(__file__).parent / "fixtures" / "aic-0.12.0-captured.json").read_text())
    doc = {c["id"]: c for c in ms.read_tool_run(COMMITTED)["cases"]}
    for call in captured["calls"]:
        lat = next(m["value"] for m in doc[call["case"]]["metrics"] if m["name"] == "latency")
        assert lat == pytest.approx(call["value_ms"], rel=5e-6)


def test_every_ok_case_pairs_with_a_measurement() -> None:
    pairs = _pairs()
    assert len(pairs["device"]) == len(pairs["eager-end-to-end"]) == 46


def test_readme_table_is_generated_from_the_committed_data() -> None:
    assert readme_block(README.read_text()) == render(_pairs()).strip("\n") + "\n", (
        "stale: run aiconfigurator-runner compare --readme packages/aiconfigurator-runner/README.md"
    )


def test_summary_statistics() -> None:
    pairs = [Pair("G", "a", "W5", 1.0, 2.0), Pair("G", "b", "W5", 3.0, 2.0), Pair("G", "c", "W5", 2.2, 2.0)]
    s = summary(pairs)
    errors = [0.5, 0.5, 0.1]
    assert s["n"] == 3
    assert s["mape_pct"] == pytest.approx(100 * sum(errors) / 3)
    assert s["geomean_error_pct"] == pytest.approx(100 * math.exp(sum(map(math.log, errors)) / 3))
    assert s["mean_ratio"] == pytest.approx((0.5 + 1.5 + 1.1) / 3)
    assert (s["min_ratio"], s["max_ratio"]) == (0.5, 1.5)
