"""Parsing vidur's CSVs (fixture captured from a real vidur 0.0.26 run: fixtures/*/README.md)."""

from __future__ import annotations

import csv
import shutil

import pytest
from conftest import FIXTURES, REPO

from mtap_vidur_runner import parse

RUN = FIXTURES / "vidur-0.0.26-h100-sarathi-qps2-n20"


def _col(name: str) -> list[float]:
    with (RUN / "request_metrics.csv").open() as fh:
        return [float(r[name]) for r in csv.DictReader(fh)]


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    xs = [3.0, 1.0, 7.5, 2.25, 9.0, 4.0, 4.0]
    for p in (0, 10, 50, 90, 99, 100):
        assert parse.percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)), rel=1e-12)


def test_fixture_metrics():
    m = {x["name"]: x for x in parse.parse_output(RUN)}
    e2e = sorted(_col("request_e2e_time"))
    assert len(e2e) == 20 and m["requests"]["value"] == 20
    assert m["e2e_latency_p50"]["value"] == pytest.approx((e2e[9] + e2e[10]) / 2, rel=1e-8)
    assert m["e2e_latency_p99"]["value"] <= e2e[-1] and m["e2e_latency_p99"]["value"] >= e2e[-2]
    assert m["ttft_p50"]["value"] < m["e2e_latency_p50"]["value"]
    assert m["scheduling_delay_p50"]["value"] <= m["ttft_p50"]["value"]
    for stem in ("e2e_latency", "ttft", "tpot", "tbt", "scheduling_delay"):
        assert m[f"{stem}_p50"]["value"] <= m[f"{stem}_p90"]["value"] <= m[f"{stem}_p99"]["value"]
        assert m[f"{stem}_p50"]["unit"] == "s"
    assert all(x["kind"] == "prediction" and x["timing"] == "simulated" for x in m.values())
    with (RUN / "batch_metrics.csv").open() as fh:
        sizes = [float(r["batch_size"]) for r in csv.DictReader(fh)]
    assert m["mean_batch_size"]["value"] == pytest.approx(sum(sizes) / len(sizes), rel=1e-8)
    assert m["batches"]["value"] == len(sizes)
    # throughput: 20 requests over the makespan; tokens = prefill + decode
    assert m["throughput_req_s"]["value"] == pytest.approx(20 / m["makespan"]["value"], rel=1e-6)
    assert m["throughput_tok_s"]["value"] == pytest.approx(sum(_col("request_num_tokens")) / m["makespan"]["value"], rel=1e-6)
    assert m["preemptions"]["value"] == sum(_col("request_num_restarts"))
    # the makespan ends at the last completion: at least the longest request
    assert m["makespan"]["value"] >= max(e2e)


def test_missing_file_and_column(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(RUN, d)
    (d / "batch_metrics.csv").unlink()
    with pytest.raises(parse.ParseError, match="batch_metrics.csv: file missing"):
        parse.parse_output(d)
    shutil.copyfile(RUN / "batch_metrics.csv", d / "batch_metrics.csv")
    text = (d / "request_metrics.csv").read_text().replace("prefill_e2e_time", "renamed", 1)
    (d / "request_metrics.csv").write_text(text)
    with pytest.raises(parse.ParseError, match="column 'prefill_e2e_time' missing"):
        parse.parse_output(d)


def test_non_numeric_value(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(RUN, d)
    lines = (d / "request_metrics.csv").read_text().splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    row[head.index("request_e2e_time")] = "abc"
    lines[1] = ",".join(row)
    (d / "request_metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(parse.ParseError, match=r"row 2 column 'request_e2e_time': 'abc' is not a number"):
        parse.parse_output(d)


def _with_column(tmp_path, column: str, value):
    """A copy of the captured run whose request_metrics.csv has `value` in `column` of every row."""
    d = tmp_path / "run"
    shutil.copytree(RUN, d)
    with (d / "request_metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r[column] = value(r) if callable(value) else value
    with (d / "request_metrics.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return d


def _case():
    from mtap_vidur_runner import cases

    cfg = cases.merge_config({"num_requests": 20, "qps": [2], "schedulers": ["sarathi"], "hardware": ["H100-SXM5-80GB"]})
    (c,) = cases.build_cases(cfg, REPO / "data")
    return c


@pytest.mark.parametrize(
    "column, value, needle",
    [
        ("request_e2e_time", "1e999", "expected a finite number"),  # overflows to inf
        ("prefill_e2e_time", "-0.5", "cannot be negative"),
        ("request_num_restarts", "inf", "expected a finite number"),
    ],
)
def test_degenerate_values_make_an_invalid_value_case_not_a_crash(tmp_path, column, value, needle):
    from mtap_vidur_runner.cli import case_from_output

    case, fingerprint = case_from_output(_case(), _with_column(tmp_path, column, value), None)
    assert case["status"] == "failed" and case["error"]["kind"] == "invalid-value", case
    assert needle in case["error"]["message"] and fingerprint is None and case["metrics"] == []


def test_zero_makespan_is_invalid_value_not_zero_division(tmp_path):
    """Every request arriving at once and taking 0 s: a makespan of 0 divides the throughputs."""
    from mtap_vidur_runner.cli import case_from_output

    d2 = _with_column(tmp_path, "request_e2e_time", "0")
    with (d2 / "request_metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["request_inter_arrival_delay"] = "0"
    with (d2 / "request_metrics.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    case, _ = case_from_output(_case(), d2, None)
    assert case["status"] == "failed" and case["error"]["kind"] == "invalid-value", case
    assert "makespan: divisor is 0" in case["error"]["message"]


def test_ok_case_from_the_captured_output(tmp_path):
    from mtap_vidur_runner.cli import case_from_output

    case, fingerprint = case_from_output(_case(), RUN, tmp_path / "keep")
    assert case["status"] == "ok" and case["metrics"] == fingerprint[0]
    # the fixture predates the launcher's batch_composition.csv
    assert sorted(fingerprint[1]) == sorted(a for a in parse.ARTIFACTS if a != "batch_composition.csv")
    assert [a["path"].rsplit("/", 1)[-1] for a in case["artifacts"]] == [
        "request_metrics.csv.xz", "batch_metrics.csv.xz", "decode_token_execution_plus_preemption_time.csv.xz"]
    assert (tmp_path / "keep" / "h100-sarathi-qps2" / "request_metrics.csv.xz").is_file()
    assert case["artifacts"][0]["path"] == "<external>/keep/h100-sarathi-qps2/request_metrics.csv.xz"
    assert "independence" not in case  # no profile named: nothing declared
    calibrated, _ = case_from_output(_case(), RUN, None, profile="data/profiles/vidur/h100/compute")
    assert calibrated["independence"]["class"] == "calibrated-separately"
    assert "data/profiles/vidur/h100/compute" in calibrated["independence"]["what"]


def test_unreadable_csv_is_parse_failed(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(RUN, d)
    (d / "batch_metrics.csv").write_bytes(b"batch_size,batch_execution_time\n\xff\xfe,1\n")
    with pytest.raises(parse.ParseError, match="not UTF-8"):
        parse.parse_output(d)
