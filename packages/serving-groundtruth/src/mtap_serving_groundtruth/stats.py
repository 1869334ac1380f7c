"""Per-request latencies and their percentiles (pure Python, so CPU tests cover them exactly)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), ``q`` in [0, 100]."""
    if not samples:
        raise ValueError("no samples")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latencies(row: dict[str, Any]) -> dict[str, float] | None:
    """A finished request's TTFT, TPOT and e2e (s), as VIDUR defines them: from arrival (the trace's
    time, which the load generator kept to within its submit lag) to the first / last token; TPOT =
    (last - first) / (tokens - 1), None for a one-token request. None for a request that failed."""
    if "error" in row or row.get("first_token_s") is None or row.get("done_s") is None:
        return None
    start = row["arrival_s"]
    out = {"ttft": row["first_token_s"] - start, "e2e_latency": row["done_s"] - start}
    if row["tokens"] > 1:
        out["tpot"] = (row["done_s"] - row["first_token_s"]) / (row["tokens"] - 1)
    return out


def point_summary(rows: Sequence[dict[str, Any]], steps: Sequence[dict[str, Any]]) -> dict[str, float]:
    """p50/p90/p99/mean of TTFT, TPOT and e2e over the finished requests, makespan, throughputs, the
    steps' count and mean batch size, and the load generator's worst submit lag."""
    lats = [x for x in (latencies(r) for r in rows) if x is not None]
    out: dict[str, float] = {}
    for name in ("ttft", "tpot", "e2e_latency"):
        xs = [x[name] for x in lats if name in x]
        if not xs:
            continue
        for q in (50, 90, 99):
            out[f"{name}_p{q}"] = percentile(xs, q)
        out[f"{name}_mean"] = sum(xs) / len(xs)
    done = [r["done_s"] for r in rows if latencies(r) is not None]
    if done:
        makespan = max(done) - min(r["arrival_s"] for r in rows)
        out["makespan"] = makespan
        if makespan > 0:
            out["throughput_req_s"] = len(done) / makespan
            out["output_throughput_tok_s"] = sum(r["tokens"] for r in rows if latencies(r) is not None) / makespan
    out["requests"] = len(lats)
    out["batches"] = len(steps)
    if steps:
        out["mean_batch_size"] = sum(len(s["requests"]) for s in steps) / len(steps)
    lags = [r["submit_s"] - r["arrival_s"] for r in rows]
    if lags:
        out["submit_lag_max"] = max(0.0, max(lags))
    return out
