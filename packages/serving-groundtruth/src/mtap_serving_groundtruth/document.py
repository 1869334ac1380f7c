"""The load points planned from a trace, and the tool-run cases made from what was served.

Keys: ``<model>.serving.hfcb.<point>.n<requests>.<dtype>`` per point (TTFT / TPOT / e2e
percentiles, makespan, throughput) and the same with ``.req<id>`` per request (its TTFT, TPOT,
e2e). A serving simulator's prediction for the same trace carries the same keys, so the
aggregate pairs them. A repeated point (``--repeat``) is a case of its own (``.run2``) and gives
the first run's metrics a ``<name>_spread`` = |run1 - run2| / mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtap_schemas import toolrun

from .stats import latencies, point_summary

RUNNER = "serving-groundtruth"
ENGINE_KEY = "hfcb"  # Hugging Face transformers continuous batching

POINT_METRICS = ("ttft", "tpot", "e2e_latency")
#: metric -> unit for the point summary (all times in s)
UNITS = {"makespan": "s", "throughput_req_s": "req/s", "output_throughput_tok_s": "tok/s", "requests": "count",
         "batches": "count", "mean_batch_size": "1", "submit_lag_max": "s"}


@dataclass(frozen=True)
class Point:
    id: str
    arrival: str
    qps: float | None
    requests: tuple[dict[str, Any], ...]
    run: int = 1

    @property
    def ident(self) -> str:
        return self.id if self.run == 1 else f"{self.id}.run{self.run}"

    def planned(self) -> dict[str, Any]:
        return {"id": self.ident, "point": self.id, "arrival": self.arrival, "qps": self.qps, "run": self.run,
                "requests": len(self.requests), "last_arrival_s": self.requests[-1]["arrival_s"]}


def plan_points(trace: dict[str, Any], chosen: list[str] | None, repeat: list[str]) -> list[Point]:
    """The trace's points (``chosen``: these, in this order), then each of ``repeat`` again (run 2)."""
    by_id = {p["id"]: p for p in trace["points"]}
    for pid in [*(chosen or []), *repeat]:
        if pid not in by_id:
            raise ValueError(f"no point {pid!r} in the trace (it has {', '.join(by_id)})")
    ids = chosen or list(by_id)
    if len(set(ids)) != len(ids):
        raise ValueError("a point is named twice; name it once and use --repeat for a second run")
    out = []
    for run, group in ((1, ids), (2, list(dict.fromkeys(repeat)))):
        for pid in group:
            p = by_id[pid]
            reqs = tuple(sorted(p["requests"], key=lambda r: (r["arrival_s"], r["id"])))
            out.append(Point(pid, p["arrival"], p["qps"], reqs, run))
    return out


def raw_name(hardware: str, p: Point) -> str:
    return f"{hardware.split('-')[0].lower()}-{p.ident.replace('.', '-')}.json.xz"


def _key(model: str, p: Point, dtype: str) -> str:
    return f"{model}.serving.{ENGINE_KEY}.{p.id}.n{len(p.requests)}.{dtype}"


def _params(p: Point, raw: dict[str, Any] | None, trace: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"point": p.id, "arrival": p.arrival, "qps": p.qps, "num_requests": len(p.requests),
                           "run": p.run, "trace_workload": trace["workload"]}
    if raw is not None:
        s = raw["settings"]
        out.update({"engine": s["engine"], "transformers": s["transformers"], "attn_implementation": s["attn_implementation"],
                    "scheduler": s["scheduler_type"], "block_size": s["block_size"], "num_blocks": s["num_blocks"],
                    "max_batch_tokens": s["max_batch_tokens"], "max_requests_per_batch": s["max_requests_per_batch"],
                    "cuda_graphs": str(s["use_cuda_graph"]), "async_batching": bool(s["use_async_batching"]),
                    "block_sharing": bool(s["allow_block_sharing"]), "dtype": s["dtype"], "model": s["model"],
                    "eos": "ignored: each request generates exactly its trace's output tokens",
                    "time": "host perf_counter from the point's start; TTFT and e2e from the trace's arrival time"})
    return out


def build_cases(planned: list[Point], results: list[dict[str, Any]], hardware: str, trace: dict[str, Any],
                keep_raw: Path | None, *, tiny: bool) -> list[dict[str, Any]]:
    """One case per point (run 1 and repeats) and one per request of run 1."""
    model = "tiny-llama" if tiny else trace["model"]
    by_ident = {p.ident: r for p, r in zip(planned, results)}
    cases: list[dict[str, Any]] = []
    for p, raw in zip(planned, results):
        dtype = "fp32" if tiny else "fp16"
        key = _key(model, p, dtype) + ("" if p.run == 1 else f".run{p.run}")
        cid = f"{hardware}/{key}"
        if raw.get("skipped"):
            cases.append(toolrun.failed(cid, workload=trace["workload"], hardware=hardware, key=key,
                                        parameters=_params(p, None, trace), kind="timeout",
                                        message=raw["skipped"] + "; serving-groundtruth run --resume measures it"))
            continue
        artifacts = []
        if keep_raw is not None and (keep_raw / raw_name(hardware, p)).exists():
            artifacts.append(toolrun.artifact(keep_raw / raw_name(hardware, p)))
        summary = point_summary(raw["requests"], raw["steps"])
        other = by_ident.get(f"{p.id}.run2") if p.run == 1 else None
        other_summary = point_summary(other["requests"], other["steps"]) if other and not other.get("skipped") else None
        metrics = []
        for name, value in summary.items():
            unit = UNITS.get(name, "s")
            metrics.append(toolrun.metric(name, value, unit, "measurement",
                                          timing="eager-end-to-end" if unit == "s" else None))
            if other_summary and name in other_summary and unit == "s" and name != "submit_lag_max":
                mean = (value + other_summary[name]) / 2
                if mean > 0:
                    metrics.append(toolrun.metric(f"{name}_spread", abs(value - other_summary[name]) / mean, "1", "derived",
                                                  timing="eager-end-to-end",
                                                  source=f"|run 1 - run 2| / mean over two runs of point {p.id}"))
        failed = [r for r in raw["requests"] if "error" in r]
        params = _params(p, raw, trace)
        if failed:
            params["unfinished_requests"] = len(failed)
            params["note"] = raw.get("note") or f"{len(failed)} requests did not finish"
        cases.append(toolrun.ok(cid, workload=trace["workload"], hardware=hardware, key=key, metrics=metrics,
                                parameters=params, artifacts=artifacts))
        if p.run != 1:
            continue
        for row in sorted(raw["requests"], key=lambda r: r["id"]):
            rkey = f"{_key(model, p, dtype)}.req{row['id']}"
            rparams = {"point": p.id, "request": row["id"], "prompt_tokens": row["prompt_tokens"],
                       "output_tokens": row["output_tokens"], "arrival_s": row["arrival_s"]}
            lat = latencies(row)
            if lat is None:
                cases.append(toolrun.failed(f"{hardware}/{rkey}", workload=trace["workload"], hardware=hardware, key=rkey,
                                            parameters=rparams, kind="timeout",
                                            message=row.get("error", "the engine returned no timestamps")))
                continue
            cases.append(toolrun.ok(f"{hardware}/{rkey}", workload=trace["workload"], hardware=hardware, key=rkey,
                                    parameters=rparams, metrics=[
                                        toolrun.metric(name, value, "s", "measurement", timing="eager-end-to-end")
                                        for name, value in lat.items()]))
    return cases
