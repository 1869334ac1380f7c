"""Parsing timeloop-mapper.stats.txt files captured from real Timeloop v3.0.3 runs."""

from pathlib import Path

import pytest

from mtap_timeloop_runner.parse import StatsParseError, parse_stats

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_conv1_on_eyeriss_like_is_the_reference():
    s = parse_stats((FIXTURES / "eyeriss-like.conv1.stats.txt").read_text())
    assert s.cycles == 1_204_224
    assert s.computes == 118_013_952
    assert s.utilization == pytest.approx(0.58)
    assert s.energy_uj == pytest.approx(856.51)
    assert s.fj_per_compute == pytest.approx(7257.73)
    assert s.area_mm2 == 0.0  # PAT-public has no area model
    assert s.per_level_fj_per_compute["MAC"] == pytest.approx(1000.0)
    assert s.per_level_fj_per_compute["DRAM"] == pytest.approx(1969.58)
    # the summary is consistent with itself: 98 of 168 PEs busy every cycle
    assert s.computes / s.cycles == pytest.approx(98)
    assert s.energy_uj * 1e9 / s.computes == pytest.approx(s.fj_per_compute, rel=1e-4)


def test_simba_like_layer():
    s = parse_stats((FIXTURES / "simba-like.layer4-0-conv1.stats.txt").read_text())
    assert (s.cycles, s.computes) == (200_704, 102_760_448)
    assert s.utilization == pytest.approx(0.50)
    assert s.computes / s.cycles == pytest.approx(512)  # half of the chiplet's 1,024 MACs
    assert s.fj_per_compute == pytest.approx(8790.13)
    assert "AccumulationBuffer" in s.per_level_fj_per_compute


def test_conv1_mapping_uses_7_filter_rows_by_14_columns():
    text = (FIXTURES / "eyeriss-like.conv1.map.txt").read_text()
    assert "for S in [0:7) (Spatial-Y)" in text
    assert "(Spatial-X)" in text


def test_percent_utilization_is_a_fraction():
    text = (FIXTURES / "eyeriss-like.conv1.stats.txt").read_text().replace("Utilization: 0.58", "Utilization: 58.33%")
    assert parse_stats(text).utilization == pytest.approx(0.5833)


@pytest.mark.parametrize("drop", ["Cycles: 1204224", "Energy: 856.51 uJ", "Computes = 118013952", "Summary Stats"])
def test_missing_line_is_named(drop):
    text = (FIXTURES / "eyeriss-like.conv1.stats.txt").read_text().replace(drop, "")
    with pytest.raises(StatsParseError):
        parse_stats(text)
