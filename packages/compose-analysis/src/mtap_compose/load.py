"""Read every tool-run document, through the kit's reader, into one polars frame of ok, keyed
time metrics (in ms). Copies, repeated case ids and mislabelled measurements are skipped by the
reader; a case id a tool has in several documents (a re-run, a shard) is taken once, the first."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from mtap_schemas.consume import Skipped, iter_tool_runs

MS_PER_UNIT = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}

class InputError(ValueError):
    """An input document holds a value the analysis cannot use (one line naming the document and case)."""


COLUMNS = {
    "source": pl.Utf8, "tool": pl.Utf8, "backend": pl.Utf8, "hardware": pl.Utf8, "key": pl.Utf8, "case": pl.Utf8,
    "metric": pl.Utf8, "ms": pl.Float64, "kind": pl.Utf8, "timing": pl.Utf8,
}


def load(evaluation_dir: Path, on_skip=None, hardware_gpus: dict[str, str] | None = None
         ) -> tuple[pl.DataFrame, list[dict[str, str]], list[dict[str, str]]]:
    """(frame, sources, skipped)."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    sources = []
    skipped: list[Skipped] = []
    taken: set[tuple[str, str]] = set()
    for rel, doc, sha in iter_tool_runs(evaluation_dir, skipped, hardware_gpus=hardware_gpus):
        sources.append({"path": rel, "sha256": sha})
        tool = doc["tool"]["name"]
        repeated = 0
        for case in doc["cases"]:
            if case["status"] != "ok" or not case.get("key"):
                continue
            if (tool, case["id"]) in taken:
                repeated += 1
                continue
            taken.add((tool, case["id"]))
            for m in case["metrics"]:
                scale = MS_PER_UNIT.get(m["unit"])
                if scale is None:
                    continue
                value = m["value"] * scale
                if not math.isfinite(value):
                    raise InputError(f"{rel}: case {case['id']}: metric {m['name']} {m['value']!r} {m['unit']} is not finite in ms")
                for col, val in (
                    ("source", rel), ("tool", tool), ("backend", doc["tool"]["backend"]), ("hardware", case["hardware"]),
                    ("key", case["key"]), ("case", case["id"]), ("metric", m["name"]), ("ms", value),
                    ("kind", m["kind"]), ("timing", m.get("timing")),
                ):
                    rows[col].append(val)
        if repeated:
            skipped.append(Skipped(rel, f"{repeated} case(s) already read from an earlier document of {tool} (first kept)"))
    if on_skip:
        for s in skipped:
            on_skip(f"{s.path}: {s.reason}")
    return pl.DataFrame(rows, schema=COLUMNS), sources, [s.as_dict() for s in skipped]
