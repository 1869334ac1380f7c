"""Turn a vidur output folder (request_metrics.csv, batch_metrics.csv, plots/*.csv) into tool-run metrics.

vidur writes times in seconds. Percentiles of per-request series are computed here with linear
interpolation (numpy's default); TBT comes from vidur's own per-token distribution
(`plots/decode_token_execution_plus_preemption_time.csv`, percentiles at 1% steps from its
sketch), since vidur keeps no per-token table.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import mtap_schemas.toolrun as tr

PERCENTILES = (50, 90, 99)

#: metric stem -> request_metrics.csv column (all seconds)
REQUEST_SERIES = {
    "e2e_latency": "request_e2e_time",
    "ttft": "prefill_e2e_time",
    "tpot": "decode_time_execution_plus_preemption_normalized",
    "scheduling_delay": "request_scheduling_delay",
}
TBT_FILE = "plots/decode_token_execution_plus_preemption_time.csv"
TBT_COLUMN = "decode_token_execution_plus_preemption_time"


class ParseError(Exception):
    """The output folder lacks a file or column this parser needs (names which)."""


def percentile(values: list[float], p: float) -> float:
    """numpy.percentile(values, p) with the default linear method."""
    if not values:
        raise ValueError("percentile of an empty list")
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ParseError(f"{path}: file missing")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise ParseError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise ParseError(f"{path}: not a CSV table ({exc})") from None


def _floats(rows: list[dict[str, str]], column: str, path: Path, allow_blank: bool = False) -> list[float]:
    if rows and column not in rows[0]:
        raise ParseError(f"{path}: column {column!r} missing")
    out = []
    for i, r in enumerate(rows):
        v = r[column]
        if v in (None, "", "nan", "NaN"):
            if allow_blank:
                continue
            raise ParseError(f"{path}: row {i + 2} column {column!r} is empty")
        try:
            out.append(float(v))
        except ValueError:
            raise ParseError(f"{path}: row {i + 2} column {column!r}: {v!r} is not a number") from None
    return out


def Metric(name: str, value: float, unit: str) -> dict:  # noqa: N802 - reads like the record it builds
    """A simulated prediction; :class:`mtap_schemas.toolrun.InvalidValue` for a value it cannot take."""
    return tr.metric(name, value, unit, "prediction", timing="simulated")


def _r(x: float) -> float:
    # 9 significant digits: stable text, far below any meaningful difference
    return float(f"{x:.9g}")


def parse_output(folder: Path) -> list[dict]:
    """Metrics (tool-run metric dicts, stable order) of one vidur output folder.

    :class:`ParseError` when a file or column is missing or unreadable;
    :class:`mtap_schemas.toolrun.InvalidValue` for a value no metric can take (non-finite,
    negative time, a zero makespan)."""
    req_path = folder / "request_metrics.csv"
    rows = _read_csv(req_path)
    if not rows:
        raise ParseError(f"{req_path}: no requests")
    metrics = _request_series_metrics(rows, req_path)
    metrics += _tbt_metrics(folder / TBT_FILE)
    metrics += _throughput_metrics(rows, req_path)
    metrics += _batch_metrics(folder / "batch_metrics.csv")
    return metrics


def _request_series_metrics(rows: list[dict[str, str]], req_path: Path) -> list[dict]:
    """p50 / p90 / p99 and mean of each per-request series (REQUEST_SERIES), seconds."""
    metrics: list[dict] = []
    for stem, col in REQUEST_SERIES.items():
        vals = _floats(rows, col, req_path)
        for p in PERCENTILES:
            metrics.append(Metric(f"{stem}_p{p}", _r(percentile(vals, p)), "s"))
        metrics.append(Metric(f"{stem}_mean", _r(sum(vals) / len(vals)), "s"))
    return metrics


def _tbt_metrics(tbt_path: Path) -> list[dict]:
    """TBT p50 / p90 / p99 read off vidur's per-token distribution (its rows at cdf 0.5, 0.9, 0.99)."""
    tbt = _read_csv(tbt_path)
    if tbt and ("cdf" not in tbt[0] or TBT_COLUMN not in tbt[0]):
        raise ParseError(f"{tbt_path}: columns 'cdf' and {TBT_COLUMN!r} expected")
    try:
        by_q = {round(float(r["cdf"]) * 100): float(r[TBT_COLUMN]) for r in tbt}
    except (ValueError, OverflowError, TypeError) as exc:
        raise ParseError(f"{tbt_path}: a row is not numeric ({exc})") from None
    metrics = []
    for p in PERCENTILES:
        if p not in by_q:
            raise ParseError(f"{tbt_path}: no row with cdf {p / 100}")
        metrics.append(Metric(f"tbt_p{p}", _r(by_q[p]), "s"))
    return metrics


def _makespan(rows: list[dict[str, str]], req_path: Path) -> float:
    """First arrival to last completion, arrivals from vidur's inter-arrival delays in request-id order (a
    blank delay counts 0)."""
    _floats(rows, "request_inter_arrival_delay", req_path, allow_blank=True)  # validates the column
    e2e = _floats(rows, "request_e2e_time", req_path)
    try:
        ids = [int(float(r["Request Id"])) for r in rows]
    except (KeyError, ValueError, OverflowError, TypeError) as exc:
        raise ParseError(f"{req_path}: column 'Request Id' missing or not an integer ({exc})") from None
    order = sorted(range(len(rows)), key=lambda i: ids[i])
    arrivals, t = [], 0.0
    gap_by_row = {}
    for i, r in enumerate(rows):
        v = r["request_inter_arrival_delay"]
        gap_by_row[i] = float(v) if v not in ("", "nan", "NaN") else 0.0
    for i in order:
        t += gap_by_row[i]
        arrivals.append((i, t))
    end = max(a + e2e[i] for i, a in arrivals)
    start = min(a for _, a in arrivals)
    return end - start


def _throughput_metrics(rows: list[dict[str, str]], req_path: Path) -> list[dict]:
    """Makespan, request / token / output-token throughput over it, the request count and preemptions (restarts)."""
    makespan = _makespan(rows, req_path)
    n = len(rows)
    tokens = sum(_floats(rows, "request_num_tokens", req_path))
    decode_tokens = sum(_floats(rows, "request_num_decode_tokens", req_path))
    restarts = sum(_floats(rows, "request_num_restarts", req_path))
    return [
        Metric("makespan", _r(makespan), "s"),
        Metric("throughput_req_s", _r(tr.ratio(n, makespan, "throughput_req_s: makespan")), "req/s"),
        Metric("throughput_tok_s", _r(tr.ratio(tokens, makespan, "throughput_tok_s: makespan")), "tok/s"),
        Metric("output_throughput_tok_s", _r(tr.ratio(decode_tokens, makespan, "output_throughput_tok_s: makespan")), "tok/s"),
        Metric("requests", n, "count"),
        Metric("preemptions", int(restarts) if math.isfinite(restarts) else restarts, "count"),
    ]


def _batch_metrics(batch_path: Path) -> list[dict]:
    """Batch count, mean batch size and mean predicted batch execution time (s) from batch_metrics.csv."""
    batches = _read_csv(batch_path)
    sizes = _floats(batches, "batch_size", batch_path)
    if not sizes:
        raise ParseError(f"{batch_path}: no batches")
    exec_times = _floats(batches, "batch_execution_time", batch_path)
    return [
        Metric("batches", len(sizes), "count"),
        Metric("mean_batch_size", _r(sum(sizes) / len(sizes)), "1"),
        Metric("batch_execution_time_mean", _r(sum(exec_times) / len(exec_times)), "s"),
    ]


#: the output files a case records as artifacts (relative to the vidur output folder)
#: kept per case (--keep-raw); batch_composition.csv is the runner launcher's record of each batch (simulate.LAUNCHER)
ARTIFACTS = ("request_metrics.csv", "batch_metrics.csv", TBT_FILE, "batch_composition.csv")
