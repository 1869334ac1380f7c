"""Parse outputs captured from real ASTRA-sim runs (tests/fixtures/README.md says how)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtap_astra_runner import parse

FIXTURES = Path(__file__).resolve().parent / "fixtures"

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_reference_log():
    res = parse.parse(fixture(MANIFEST["reference"]["log"]), 8)
    assert sorted(res) == list(range(8))
    crit = parse.critical(res)
    assert crit.cycles == 57426
    metrics = {m["name"]: m for m in parse.metrics(res)}
    assert metrics["latency"] == {"name": "latency", "value": 57426, "unit": "ns", "kind": "prediction", "timing": "simulated"}
    assert metrics["cycles"]["unit"] == "cycles"
    assert metrics["exposed_communication"]["value"] == crit.exposed_comm


def test_ddp_log_has_compute_communication_and_overlap():
    entry = MANIFEST["ddp"]
    res = parse.parse(fixture(entry["log"]), entry["npus"])
    crit = parse.critical(res)
    assert {"wall", "gpu", "comm", "overlap"} <= set(crit.stats)
    assert crit.stats["wall"] == crit.cycles
    # ASTRA-sim: overlap = compute + communication - wall
    assert crit.stats["overlap"] == crit.stats["gpu"] + crit.stats["comm"] - crit.stats["wall"]
    names = {m["name"]: m["value"] for m in parse.metrics(res)}
    assert names["compute_time"] == crit.stats["gpu"] and names["compute_communication_overlap"] == crit.stats["overlap"]
    assert names["latency"] == entry["cycles"]


@pytest.mark.parametrize("which", ["abort_ring2", "abort_halving_a2a"])
def test_abort_logs(which):
    entry = MANIFEST[which]
    text = fixture(entry["log"])
    with pytest.raises(parse.ParseError):
        parse.parse(text, entry["npus"])
    assert entry["message_contains"] in parse.failure_message(text)


def test_missing_npu_is_a_parse_error():
    text = fixture(MANIFEST["reference"]["log"])
    lines = [ln for ln in text.splitlines() if "sys[7] finished" not in ln]
    with pytest.raises(parse.ParseError, match=r"sys\[7\]"):
        parse.parse("\n".join(lines), 8)


def test_failure_message_keeps_no_machine_path():
    text = fixture(MANIFEST["abort_ring2"]["log"])
    assert "/work/build/astra-sim/" in text
    msg = parse.failure_message(text)
    assert "Device.cpp:51: void NetworkAnalyticalCongestionAware::Device::connect" in msg and "/work/" not in msg
    assert parse.failure_message("x: /tmp/a/b/c.et: not found") == "x: c.et: not found"
    assert parse.failure_message("error: <workdir>/et/trace.0.et") == "error: <workdir>/et/trace.0.et"
