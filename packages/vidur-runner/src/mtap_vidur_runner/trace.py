"""VIDUR's W5 requests as a ``serving-trace`` v1 document: what a serving engine is measured on.

VIDUR generated W5's requests (uniform 128-512 tokens, prefill:decode 20, Poisson arrivals at
each QPS, seed 42; the static variant all at t = 0) and kept them in each case's
``request_metrics.csv.xz``: per request its prefill and decode tokens and the delay since the
previous arrival. ``vidur-runner trace`` writes the first N requests of chosen cases as load
points: arrival of request 0 is t = 0, request i arrives the recorded delay after request i-1.
The engine (``serving-groundtruth run --trace``) serves exactly these requests, and
``vidur-runner run --trace`` has VIDUR predict exactly these (its trace-replay generator).
"""

from __future__ import annotations

import csv
import io
import lzma
from pathlib import Path
from typing import Any

import mtap_schemas as ms


class TraceError(Exception):
    """A kept output that cannot give a trace: one line naming the file and what was expected."""


def read_requests(path: Path) -> list[dict[str, Any]]:
    """[{id, delay_s, prompt_tokens, output_tokens}] in request-id order from a request_metrics.csv(.xz)."""
    from mtap_schemas.paths import PathError, read_lzma_bounded

    try:
        raw = read_lzma_bounded(path) if path.suffix == ".xz" else path.read_bytes()
    except PathError as exc:
        raise TraceError(str(exc)) from None
    except (OSError, lzma.LZMAError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    need = ("Request Id", "request_inter_arrival_delay", "request_num_prefill_tokens", "request_num_decode_tokens")
    if not rows or any(k not in rows[0] for k in need):
        raise TraceError(f"{path}: expected VIDUR's request_metrics.csv with columns {', '.join(need)}")
    out = []
    for row in rows:
        try:
            out.append({"id": int(row["Request Id"]),
                        "delay_s": float(row["request_inter_arrival_delay"] or 0.0),
                        "prompt_tokens": int(row["request_num_prefill_tokens"]),
                        "output_tokens": int(row["request_num_decode_tokens"])})
        except ValueError:
            raise TraceError(f"{path}: request {row.get('Request Id')!r}: expected numbers in {', '.join(need)}") from None
    return sorted(out, key=lambda r: r["id"])


def point(path: Path, point_id: str, qps: float | None, n: int) -> dict[str, Any]:
    """The first ``n`` requests of one kept case as a load point (``qps`` None: static, all at t = 0)."""
    reqs = read_requests(path)
    if n > len(reqs):
        raise TraceError(f"{path}: has {len(reqs)} requests, {n} asked for point {point_id}")
    t = 0.0
    out = []
    for i, r in enumerate(reqs[:n]):
        if i and qps is not None:
            t += r["delay_s"]
        out.append({"id": r["id"], "arrival_s": round(t, 9), "prompt_tokens": r["prompt_tokens"],
                    "output_tokens": r["output_tokens"]})
    return {"id": point_id, "arrival": "static" if qps is None else "poisson", "qps": qps, "requests": out}


def document(specs: list[tuple[Path, str, float | None, int]], root: Path) -> dict[str, Any]:
    """A serving-trace document from (request_metrics path, point id, qps or None, n) specs."""
    points = [point(p, pid, qps, n) for p, pid, qps, n in specs]
    files = []
    for p, *_ in specs:
        rel = p.resolve().relative_to(root.resolve()) if p.resolve().is_relative_to(root.resolve()) else p
        files.append({"path": rel.as_posix(), "sha256": ms.sha256_file(p)})
    what = ("VIDUR 0.0.26's W5 requests (synthetic: uniform 128-512 tokens, prefill:decode 20, seed 42; Poisson "
            "arrivals at each point's QPS, or all at t = 0 for static), the first "
            + ", ".join(f"{len(pt['requests'])} ({pt['id']})" for pt in points)
            + " of 500, read from the kept request_metrics.csv.xz files by vidur-runner trace")
    return {"schema": "serving-trace", "schema_version": ms.version("serving-trace"), "workload": "W5",
            "model": "llama2-7b", "source": {"what": what, "files": files}, "points": points}


# --------------------------------------------------------------------------------------------------
# VIDUR predicting a serving trace (vidur-runner run with config field "trace")

#: the date column VIDUR's trace-replay generator filters on (its default TraceRequestGeneratorConfig.date)
TRACE_DATE = "2023-08-21"
#: the engine whose served trace these predictions are for: keys name it as serving-groundtruth does
ENGINE_KEY = "hfcb"


def point_key(model: str, point: dict[str, Any]) -> str:
    """The key serving-groundtruth gives the point: ``<model>.serving.hfcb.<point>.n<requests>.fp16``."""
    return f"{model}.serving.{ENGINE_KEY}.{point['id']}.n{len(point['requests'])}.fp16"


def served_order(point: dict[str, Any]) -> list[dict[str, Any]]:
    """The point's requests in arrival order (ties by id): the order VIDUR numbers them 0, 1, ..."""
    return sorted(point["requests"], key=lambda r: (r["arrival_s"], r["id"]))


def write_trace_csv(point: dict[str, Any], path: Path) -> None:
    """The point as VIDUR's trace-replay CSV (Date, Time, PromptTokenCount, CompletionTokenCount); with the
    scale factors at 1 VIDUR sees each request's own arrival and lengths."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Date", "Time", "PromptTokenCount", "CompletionTokenCount"])
        for r in served_order(point):
            w.writerow([TRACE_DATE, repr(float(r["arrival_s"])), r["prompt_tokens"], r["output_tokens"]])


def percentile(values: list[float], p: float) -> float:
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100.0
    lo = int(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def request_latencies(outdir: Path, point: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """(trace request, {ttft, e2e_latency[, tpot]}) per request from VIDUR's request_metrics.csv, defined as
    serving-groundtruth defines them: TTFT = prefill_e2e_time, e2e = request_e2e_time (both from arrival),
    TPOT = (e2e - TTFT) / (output tokens - 1)."""
    path = outdir / "request_metrics.csv"
    if not path.is_file():
        raise TraceError(f"{path}: file missing")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = {int(r["Request Id"]): r for r in csv.DictReader(fh)}
    order = served_order(point)
    if len(rows) != len(order):
        raise TraceError(f"{path}: {len(rows)} requests, the trace's point {point['id']} has {len(order)}")
    out = []
    for i, req in enumerate(order):
        row = rows[i]
        if int(row["request_num_prefill_tokens"]) != req["prompt_tokens"] or int(row["request_num_decode_tokens"]) != req["output_tokens"]:
            raise TraceError(f"{path}: request {i} has {row['request_num_prefill_tokens']}+{row['request_num_decode_tokens']} "
                             f"tokens, the trace's request {req['id']} {req['prompt_tokens']}+{req['output_tokens']}")
        ttft, e2e = float(row["prefill_e2e_time"]), float(row["request_e2e_time"])
        lat = {"ttft": ttft, "e2e_latency": e2e}
        if req["output_tokens"] > 1:
            lat["tpot"] = (e2e - ttft) / (req["output_tokens"] - 1)
        out.append((req, lat))
    return out


def point_metrics(lats: list[tuple[dict[str, Any], dict[str, float]]]) -> dict[str, float]:
    """p50/p90/p99/mean of TTFT, TPOT, e2e and the makespan/throughputs, as serving-groundtruth summarises a point."""
    out: dict[str, float] = {}
    for name in ("ttft", "tpot", "e2e_latency"):
        xs = [x[name] for _, x in lats if name in x]
        if not xs:
            continue
        for q in (50, 90, 99):
            out[f"{name}_p{q}"] = percentile(xs, q)
        out[f"{name}_mean"] = sum(xs) / len(xs)
    done = [r["arrival_s"] + x["e2e_latency"] for r, x in lats]
    makespan = max(done) - min(r["arrival_s"] for r, _ in lats)
    out["makespan"] = makespan
    if makespan > 0:
        out["throughput_req_s"] = len(lats) / makespan
        out["output_throughput_tok_s"] = sum(r["output_tokens"] for r, _ in lats) / makespan
    out["requests"] = len(lats)
    return out
