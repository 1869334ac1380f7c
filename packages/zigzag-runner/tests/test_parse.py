"""Parsing ZigZag result files captured from real runs (see fixtures/README.md)."""

import json
from pathlib import Path

import pytest

from mtap_zigzag_runner.parse import ResultParseError, parse_complete

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_conv1_on_eyeriss_like():
    r = parse_complete(FIXTURES / "eyeriss-like.conv1_complete.json")
    assert r.macs == 118_013_952
    assert r.cycles == 6_148_299  # on-loading + computation + off-loading
    assert r.energy_pj == pytest.approx(1_700_537_496, rel=1e-9)
    assert 0 < r.utilization < 1
    assert r.spatial_mapping == "K12 C3"


def test_attention_score_head_on_tpu_like():
    r = parse_complete(FIXTURES / "tpu-like.attention-score_complete.json")
    assert r.macs == 64 * 128 * 128
    assert r.cycles == 1024 + 1024 + 1087
    assert r.spatial_mapping == "K32 C32"


def test_missing_field_names_it(tmp_path):
    doc = json.loads((FIXTURES / "tpu-like.attention-score_complete.json").read_text())
    del doc["outputs"]["energy"]["energy_total"]
    bad = tmp_path / "x_complete.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ResultParseError, match="outputs.energy.energy_total"):
        parse_complete(bad)
