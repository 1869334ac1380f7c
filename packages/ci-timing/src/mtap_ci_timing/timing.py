"""Turn one job's step timestamps into setup / Docker build / run / teardown seconds, and many
jobs into per-tool counts and run-to-run spread. Pure functions over plain dicts: no API here.

A job record (what scrape.py builds from the API) is a dict with ``started_at``,
``completed_at``, ``created_at`` (datetime or None) and ``steps``: dicts with ``number``,
``name``, ``conclusion``, ``started_at``, ``completed_at``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .rules import Rules

ROUND = 3


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, round((end - start).total_seconds(), ROUND))


def job_timing(job: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """Classified steps and the derived seconds of one job (see the ci-timing schema's job fields)."""
    start, end = job.get("started_at"), job.get("completed_at")
    steps = []
    for step in sorted(job.get("steps") or [], key=lambda s: s["number"]):
        steps.append(
            {
                "number": step["number"],
                "name": step["name"],
                "category": rules.category_of(step["name"]),
                "conclusion": step.get("conclusion"),
                "seconds": seconds_between(step.get("started_at"), step.get("completed_at")),
                "command": step.get("command"),
                "_start": step.get("started_at"),
                "_end": step.get("completed_at"),
            }
        )

    def total(category: str) -> float | None:
        vals = [s["seconds"] for s in steps if s["category"] == category and s["seconds"] is not None]
        return round(sum(vals), ROUND) if vals else None

    run_numbers = [s["number"] for s in steps if s["category"] == "run" and s["_start"] is not None]
    first_run = min(run_numbers) if run_numbers else math.inf
    setup_ends = [
        s["_end"]
        for s in steps
        if s["category"] in ("setup", "docker-build") and s["number"] < first_run and s["_end"] is not None
    ]
    setup = seconds_between(start, max(setup_ends)) if setup_ends else None
    run_ends = [s["_end"] for s in steps if s["category"] == "run" and s["number"] == first_run and s["_end"] is not None]
    first_result = seconds_between(start, run_ends[0]) if run_ends else None
    for s in steps:
        del s["_start"], s["_end"]
    return {
        "queue_seconds": seconds_between(job.get("created_at"), start),
        "setup_seconds": setup,
        "first_result_seconds": first_result,
        "run_seconds": total("run"),
        "docker_build_seconds": total("docker-build"),
        "teardown_seconds": total("teardown"),
        "total_seconds": seconds_between(start, end),
        "steps": steps,
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "median": None, "p10": None, "p90": None, "stdev": None, "min": None, "max": None}
    def r(x: float) -> float:
        return round(x, ROUND)

    return {
        "n": len(vals),
        "median": r(statistics.median(vals)),
        "p10": r(percentile(vals, 0.10)),
        "p90": r(percentile(vals, 0.90)),
        "stdev": r(statistics.stdev(vals)) if len(vals) > 1 else None,
        "min": r(vals[0]),
        "max": r(vals[-1]),
    }


def install_paths(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct install paths of a tool's jobs ({kind, detail, reason}), each with how many jobs took it."""
    seen: Counter[tuple[str, str, str | None]] = Counter()
    for j in jobs:
        ip = j.get("install_path")
        if ip:
            seen[(ip["kind"], ip["detail"], ip["reason"])] += 1
    return [{"kind": k, "detail": d, "reason": r, "jobs": n} for (k, d, r), n in sorted(seen.items(), key=lambda x: (x[0][0], x[0][1], x[0][2] or ""))]


def determinism_of(jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Repeat-run comparisons of a tool's jobs summed (each later pass is compared once with
    the first); null when no job was compared."""
    dets = [j["determinism"] for j in jobs if j.get("determinism")]
    if not dets:
        return None
    return {
        "compared": sum(d["compared"] for d in dets),
        "identical": sum(d["identical"] for d in dets),
        "differing": sorted({c for d in dets for c in d["differing"]})[:50],
        "unmatched": sum(d["unmatched"] for d in dets),
    }


def tool_summaries(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-tool summary rows and the unmapped job names, from documented run records.

    Timing spread is over successful jobs only (a failed job's "setup" is not a setup time);
    every job counts in ``conclusions``.
    """
    by_tool: dict[str, list[dict[str, Any]]] = {}
    unmapped: Counter[str] = Counter()
    for run in runs:
        for job in run["jobs"]:
            if job["tool"] is None:
                unmapped[job["name"]] += 1
            else:
                by_tool.setdefault(job["tool"], []).append(job)
    out = []
    for tool in sorted(by_tool):
        jobs = by_tool[tool]
        conclusions = Counter(j["conclusion"] or "none" for j in jobs)
        ran = [j for j in jobs if j["conclusion"] != "skipped"]
        ok = [j for j in ran if j["conclusion"] == "success"]
        docker = [j for j in ran if j["docker_build_seconds"] is not None]
        native = [j for j in ran if j["docker_build_seconds"] is None]
        out.append(
            {
                "tool": tool,
                "job_names": sorted({j["name"] for j in jobs}),
                "jobs": len(jobs),
                "conclusions": dict(sorted(conclusions.items())),
                "success_rate": round(len(ok) / len(ran), 4) if ran else None,
                "setup_seconds": spread(j["setup_seconds"] for j in ok),
                "first_result_seconds": spread(j.get("first_result_seconds") for j in ok),
                "run_seconds": spread(j["run_seconds"] for j in ok),
                "docker_build_seconds": spread(j["docker_build_seconds"] for j in ok),
                "total_seconds": spread(j["total_seconds"] for j in ok),
                "docker": {"jobs": len(docker), "success": sum(j["conclusion"] == "success" for j in docker)},
                "native": {"jobs": len(native), "success": sum(j["conclusion"] == "success" for j in native)},
                "install_paths": install_paths(jobs),
                "determinism": determinism_of(jobs),
                "reused_build": next((j["reused_build"] for j in jobs if j.get("reused_build")), None),
            }
        )
    return out, [{"name": n, "count": c} for n, c in sorted(unmapped.items())]
