import pytest

from mtap_serving_groundtruth.document import plan_points
from mtap_serving_groundtruth.stats import latencies, percentile, point_summary


def row(i, arrival, first, done, tokens, out=None, **extra):
    return {"id": i, "arrival_s": arrival, "submit_s": arrival + 0.001, "prompt_tokens": 10,
            "output_tokens": out or tokens, "tokens": tokens, "first_token_s": first, "done_s": done, **extra}


def test_latencies_from_arrival_and_tpot_over_the_decode_tokens():
    lat = latencies(row(0, 1.0, 1.25, 2.0, 4))
    assert lat == pytest.approx({"ttft": 0.25, "e2e_latency": 1.0, "tpot": 0.25})
    assert "tpot" not in latencies(row(1, 0.0, 0.1, 0.1, 1))
    assert latencies({**row(2, 0.0, 0.1, 0.2, 2), "error": "not finished"}) is None


def test_point_summary_percentiles_makespan_and_batches():
    rows = [row(0, 0.0, 0.1, 0.5, 5), row(1, 0.5, 0.7, 1.5, 5), row(2, 1.0, 1.1, 2.0, 3)]
    steps = [{"t_s": 0.0, "requests": [[0, 10, 0]]}, {"t_s": 0.1, "requests": [[0, 1, 10], [1, 10, 0]]}]
    s = point_summary(rows, steps)
    assert s["ttft_p50"] == pytest.approx(0.1)
    assert s["ttft_mean"] == pytest.approx((0.1 + 0.2 + 0.1) / 3)
    assert s["e2e_latency_p90"] == pytest.approx(percentile([0.5, 1.0, 1.0], 90))
    assert s["makespan"] == pytest.approx(2.0)
    assert s["throughput_req_s"] == pytest.approx(1.5)
    assert s["output_throughput_tok_s"] == pytest.approx(13 / 2.0)
    assert s["requests"] == 3 and s["batches"] == 2 and s["mean_batch_size"] == 1.5
    assert s["submit_lag_max"] == pytest.approx(0.001)


def test_failed_requests_are_left_out_of_the_percentiles():
    rows = [row(0, 0.0, 0.1, 0.5, 5), {**row(1, 0.0, None, None, 0, out=5), "error": "not finished"}]
    s = point_summary(rows, [])
    assert s["requests"] == 1 and s["ttft_p99"] == pytest.approx(0.1)


TRACE = {"workload": "W5", "model": "llama2-7b", "points": [
    {"id": "qps2", "arrival": "poisson", "qps": 2.0, "requests": [
        {"id": 1, "arrival_s": 0.5, "prompt_tokens": 3, "output_tokens": 2},
        {"id": 0, "arrival_s": 0.0, "prompt_tokens": 4, "output_tokens": 2}]},
    {"id": "static", "arrival": "static", "qps": None, "requests": [{"id": 0, "arrival_s": 0.0, "prompt_tokens": 4, "output_tokens": 1}]},
]}


def test_plan_orders_requests_by_arrival_and_repeats_last():
    points = plan_points(TRACE, None, ["qps2"])
    assert [p.ident for p in points] == ["qps2", "static", "qps2.run2"]
    assert [r["id"] for r in points[0].requests] == [0, 1]
    assert [p.ident for p in plan_points(TRACE, ["static"], [])] == ["static"]


@pytest.mark.parametrize("chosen, repeat, message", [
    (["qps9"], [], "no point 'qps9'"),
    (None, ["nope"], "no point 'nope'"),
    (["static", "static"], [], "named twice"),
])
def test_plan_refuses_unknown_or_doubled_points(chosen, repeat, message):
    with pytest.raises(ValueError, match=message):
        plan_points(TRACE, chosen, repeat)
