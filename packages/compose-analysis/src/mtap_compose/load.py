"""Read every tool-run document into one polars frame of ok, keyed time metrics (in ms)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import mtap_schemas as ms

MS_PER_UNIT = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}

COLUMNS = {
    "tool": pl.Utf8, "backend": pl.Utf8, "hardware": pl.Utf8, "key": pl.Utf8, "case": pl.Utf8,
    "metric": pl.Utf8, "ms": pl.Float64, "kind": pl.Utf8, "timing": pl.Utf8,
}


def load(evaluation_dir: Path, on_skip=None) -> tuple[pl.DataFrame, list[dict[str, str]]]:
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    sources = []
    for path in sorted(evaluation_dir.rglob("*.tool-run.json")):
        try:
            doc = ms.read(path, "tool-run")
        except ms.SchemaError as exc:
            if on_skip:
                on_skip(str(exc))
            continue
        sources.append({"path": path.relative_to(evaluation_dir).as_posix(), "sha256": ms.sha256_file(path)})
        for case in doc["cases"]:
            if case["status"] != "ok" or not case.get("key"):
                continue
            for m in case["metrics"]:
                scale = MS_PER_UNIT.get(m["unit"])
                if scale is None:
                    continue
                for col, val in (
                    ("tool", doc["tool"]["name"]), ("backend", doc["tool"]["backend"]), ("hardware", case["hardware"]),
                    ("key", case["key"]), ("case", case["id"]), ("metric", m["name"]), ("ms", m["value"] * scale),
                    ("kind", m["kind"]), ("timing", m.get("timing")),
                ):
                    rows[col].append(val)
    return pl.DataFrame(rows, schema=COLUMNS), sources
