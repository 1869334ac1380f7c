from __future__ import annotations

import math

import pytest

from mtap_groundtruth import stats


def test_percentiles_interpolate_linearly() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.percentile(xs, 50) == 3.0
    assert stats.percentile(xs, 10) == pytest.approx(1.4)
    assert stats.percentile(xs, 90) == pytest.approx(4.6)
    assert stats.percentile([7.0], 90) == 7.0


def test_summarize() -> None:
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 100.0 and s["n"] == 5
    assert s["mean"] == 22.0
    assert s["std"] == pytest.approx(math.sqrt(sum((x - 22) ** 2 for x in [1, 2, 3, 4, 100]) / 4))
    assert s["spread"] == pytest.approx((stats.percentile([1, 2, 3, 4, 100], 90) - 1.4) / 3.0)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [-1.0]])
def test_summarize_rejects_bad_samples(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        stats.summarize(bad)


def test_time_metrics_names_units_and_timing() -> None:
    ms = stats.time_metrics([1.0, 2.0, 3.0], "device")
    by = {m["name"]: m for m in ms}
    assert by["latency"]["value"] == 2.0 and by["latency"]["unit"] == "ms"
    assert {m["timing"] for m in ms} == {"device"}
    assert by["latency_samples"]["value"] == 3 and by["latency_samples"]["unit"] == "count"
    assert {"latency_p10", "latency_p90", "latency_std", "latency_min", "latency_max"} <= set(by)


def test_nccl_tests_bus_bandwidth_factors() -> None:
    assert stats.bus_factor("all-reduce", 2) == 1.0
    assert stats.bus_factor("all-reduce", 8) == 1.75
    assert stats.bus_factor("all-gather", 8) == 0.875
    assert stats.bus_factor("reduce-scatter", 2) == 0.5
    assert stats.bus_factor("all-to-all", 4) == 0.75
    alg, bus = stats.bandwidths("all-reduce", 1 << 30, 8, 0.01)
    assert alg == pytest.approx((1 << 30) / 0.01)
    assert bus == pytest.approx(alg * 1.75)
    with pytest.raises(ValueError):
        stats.bus_factor("broadcast", 2)
