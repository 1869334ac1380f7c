"""Read every tool-run document once, through the kit's reader, and reduce each to what the
aggregate needs before reading the next (large evaluation folders stay within memory).

Each document becomes (:mod:`.reduce`): its rows of the long table (here a polars frame) and a
slim copy (tool, wall clock, per case the fields the D3/D4 tables read, whose ids and statuses also
de-duplicate the cases). Large folders are read and reduced by worker processes (``jobs``), in path order, so
the result is the same whatever the number of workers. A bad document is skipped with its reason,
never lost, never a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import mtap_schemas as ms
from mtap_schemas.consume import Skipped, find, gpu_tokens, map_tool_runs
from mtap_schemas.execute import available_cores

from .reduce import CASE_COLUMNS, CONFIG_PARAMETERS, METRIC_COLUMNS, STATUS_RANK, Reduced, reduce_document
from .table import INDEPENDENCE_SCHEMA, ROW_SCHEMA

#: the reader's frame: the table file's columns and each case's declared independence
FRAME_SCHEMA = {**ROW_SCHEMA, **INDEPENDENCE_SCHEMA}

__all__ = ["CONFIG_PARAMETERS", "STATUS_RANK", "Collected", "Source", "collect", "read_catalog", "read_training"]
#: worker processes for large folders: the cores this process may use, at most 4 (each holds one document)
JOBS = min(available_cores(), 4)


@dataclass
class Source:
    path: str
    sha256: str
    tool: dict[str, Any]
    wall_clock: dict[str, Any]
    cases: list[dict[str, Any]]  # slim: id, status, deterministic; + workload/hardware/key/parameters/metrics for D3
    superseded: int = 0
    stale_inputs: list[str] = field(default_factory=list)


@dataclass
class Collected:
    sources: list[Source] = field(default_factory=list)
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FRAME_SCHEMA))
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def skipped_dicts(self) -> list[dict[str, str]]:
        return [s.as_dict() for s in self.skipped]


def _frame(rel: str, reduced: Reduced) -> pl.DataFrame:
    """One document's rows of the long table: the case columns are listed once per case and repeated
    by its metric count in polars (~3x faster than a tuple per row: the aggregate bench)."""
    frame_cases = pl.DataFrame(dict(zip(CASE_COLUMNS, reduced.per_case)), schema={c: FRAME_SCHEMA[c] for c in CASE_COLUMNS})
    if reduced.repeats:
        frame_cases = frame_cases[np.repeat(np.arange(len(reduced.repeats)), reduced.repeats)]
    frame_metrics = pl.DataFrame(dict(zip(METRIC_COLUMNS, reduced.per_metric)), schema={c: FRAME_SCHEMA[c] for c in METRIC_COLUMNS})
    return (
        pl.concat([frame_cases, frame_metrics], how="horizontal")
        .with_columns(pl.lit(reduced.tool["name"], dtype=pl.Utf8).alias("tool"), pl.lit(reduced.tool["backend"], dtype=pl.Utf8).alias("backend"),
                      pl.lit(rel, dtype=pl.Utf8).alias("source"))
        .select(list(FRAME_SCHEMA))
    )


def collect(evaluation_dir: Path, on_skip=None, hardware: dict[str, Any] | None = None, root: Path | None = None,
            jobs: int = JOBS) -> Collected:
    """Every valid tool-run document below ``evaluation_dir``, reduced and de-duplicated.

    ``hardware`` (the catalog) enables the mislabel check: a measurement filed under a hardware
    id whose GPU is not the GPU the document ran on is skipped, with the reason. ``root`` (the
    repository) enables the provenance check: recorded inputs that are repository files whose
    sha256 changed since the run are listed per source (``stale_inputs``). ``jobs``: worker
    processes for a large folder (the kit's :func:`~mtap_schemas.consume.map_tool_runs`); the
    result does not depend on it."""
    out = Collected()
    frames: list[pl.DataFrame] = []
    tokens = gpu_tokens(hardware) if hardware else None
    reduce = partial(reduce_document, root=None if root is None else os.fspath(root))
    for rel, sha, reduced in map_tool_runs(evaluation_dir, out.skipped, reduce, hardware_gpus=tokens, jobs=jobs):
        frames.append(_frame(rel, reduced))
        out.sources.append(Source(rel, sha, reduced.tool, reduced.wall_clock, reduced.cases, stale_inputs=reduced.stale_inputs))
        del reduced
    if on_skip:
        for s in out.skipped:
            on_skip(s.path, s.reason)
    # not rechunked: one copy of the long table fewer at the peak (10^6 cases: ~0.3 GB)
    heights = [f.height for f in frames]
    rows = pl.concat(frames, how="vertical", rechunk=False) if frames else pl.DataFrame(schema=FRAME_SCHEMA)
    del frames
    out.rows = _dedupe(out, rows, heights)
    return out


def _dedupe(out: Collected, rows: pl.DataFrame, heights: list[int]) -> pl.DataFrame:
    """Keep each (tool, case id) once; the dropped count per document is reported, never hidden.

    The table comes back in one chunk (read in one chunk per document; what follows, a unique or
    a filter over ~2 million rows, would copy it once per operation otherwise). With duplicates,
    each row's document index (``heights``: rows per document) selects the kept rows."""
    best: dict[tuple[str, str], tuple[int, int]] = {}
    duplicates = False
    for index, source in enumerate(out.sources):
        tool = source.tool["name"]
        for case in source.cases:
            key, ranked = (tool, case["id"]), (STATUS_RANK[case["status"]], index)
            if key not in best:
                best[key] = ranked
            else:
                duplicates = True
                best[key] = min(best[key], ranked)
    if not duplicates:
        return rows.rechunk()
    keep = pl.DataFrame([(t, c, i) for (t, c), (_r, i) in best.items()], schema={"tool": pl.Utf8, "case": pl.Utf8, "_doc": pl.Int32},
                        orient="row")
    for index, source in enumerate(out.sources):
        tool = source.tool["name"]
        kept = [c for c in source.cases if best[(tool, c["id"])][1] == index]
        source.superseded = len(source.cases) - len(kept)
        source.cases = kept
    doc = pl.Series("_doc", np.repeat(np.arange(len(heights), dtype=np.int32), heights))
    return rows.with_columns(doc).join(keep, on=["tool", "case", "_doc"], how="semi", maintain_order="left").drop("_doc")


def read_catalog(path: Path) -> dict[str, Any]:
    return ms.read(path, "hardware")


#: files that are never a training document (large, or another schema); the rest of *.json is peeked at
_NOT_TRAINING = (".tool-run.json", ".compare.json", "mtap-aggregate-results.json", "compositional-fidelity.json")
_TRAINING_MAX_BYTES = 1 << 20


def read_training(evaluation_dir: Path, on_skip=None) -> list[tuple[str, dict[str, Any]]]:
    """Every training v1 document (a learned predictor trained here) under ``evaluation_dir``,
    as (path relative to it, document); one that is not valid is skipped with its reason."""
    out = []
    refused: list[Skipped] = []  # links and non-UTF-8 names, through the kit's finder (not followed, not read)
    for path in find(evaluation_dir, refused, pattern="*.json"):
        if path.name.endswith(_NOT_TRAINING) or not path.is_file() or path.stat().st_size > _TRAINING_MAX_BYTES:
            continue
        try:
            text = path.read_bytes()  # keys are sorted: "schema" comes late, after the predictors
        except OSError:
            continue
        if b'"schema": "training"' not in text and b'"schema":"training"' not in text:
            continue
        rel = path.relative_to(evaluation_dir).as_posix()
        try:
            out.append((rel, ms.read(path, "training")))
        except ms.SchemaError as exc:
            if on_skip:
                on_skip(rel, str(exc))
    if on_skip:  # a linked folder and a *.tool-run.json are listed by the tool-run reader already
        for item in refused:
            if item.path.endswith(".json") and not item.path.endswith(_NOT_TRAINING):
                on_skip(item.path, f"not read as a training document: {item.reason}")
    return out
