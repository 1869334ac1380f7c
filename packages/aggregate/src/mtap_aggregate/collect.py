"""Read every tool-run document once, through the kit's reader, and reduce each to what the
aggregate needs before reading the next (large evaluation folders stay within memory).

Each document becomes: its rows of the long table (a polars frame), one line per case for
de-duplication, and a slim copy (tool, wall clock, per case the fields the D3/D4 tables read).
A bad document is skipped with its reason, never lost, never a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import mtap_schemas as ms
from mtap_schemas.consume import Skipped, find, gpu_tokens, iter_tool_runs

from .table import INDEPENDENCE_SCHEMA, ROW_SCHEMA

#: the reader's frame: the table file's columns and each case's declared independence
FRAME_SCHEMA = {**ROW_SCHEMA, **INDEPENDENCE_SCHEMA}

#: When one tool's case id appears in several documents (re-runs, shards, an `unavailable`
#: run beside a real one), the best status wins; the first document on ties.
STATUS_RANK = {"ok": 0, "failed": 1, "unsupported": 2, "unavailable": 3}
#: Case parameters that name a configuration choice (D3 sensitivity reads only cases that have one).
CONFIG_PARAMETERS = ("topology", "algorithm", "scheduler", "binary")


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


#: an artifact path prefix naming weights a tool was trained to here (a training v1 document lists their sha256)
TRAINED_WEIGHTS = "trained-weights:"


def _slim(case: dict[str, Any]) -> dict[str, Any]:
    slim = {"id": case["id"], "status": case["status"], "deterministic": case.get("deterministic")}
    weights = sorted({a["sha256"] for a in case.get("artifacts") or [] if a["path"].startswith(TRAINED_WEIGHTS)})
    if weights:
        slim["trained_weights"] = weights
    params = case["parameters"]
    if case["status"] == "ok" and any(k in params for k in CONFIG_PARAMETERS):
        slim.update(workload=case["workload"], hardware=case["hardware"], key=case.get("key"), parameters=params,
                    metrics=case["metrics"])
    return slim


#: the frame's per-case and per-metric columns, built as column lists (not one tuple per row)
_CASE_COLUMNS = ("workload", "hardware", "case", "key", "status", "error_kind", "independence", "independence_tools",
                 "independence_what")
_METRIC_COLUMNS = ("metric", "value", "unit", "kind", "timing")


def _rows(rel: str, doc: dict[str, Any], index: int) -> tuple[pl.DataFrame, list[tuple]]:
    """One row per metric of each case (a case without metrics: one row of nulls), and the cases' ids.

    The case columns are listed once per case and repeated by its metric count in polars; this is
    ~3x faster than building a tuple per row (the aggregate bench)."""
    tool, backend = doc["tool"]["name"], doc["tool"]["backend"]
    cases = doc["cases"]
    ids = [(tool, c["id"], STATUS_RANK[c["status"]], index) for c in cases]
    per_case: tuple[list[Any], ...] = tuple([] for _ in _CASE_COLUMNS)
    per_metric: tuple[list[Any], ...] = tuple([] for _ in _METRIC_COLUMNS)
    workload, hardware, case_id, key, status, error_kind, dep_class, dep_tools, dep_what = per_case
    name, value, unit, kind, timing = per_metric
    repeats: list[int] = []
    for case in cases:
        error = case["error"]
        workload.append(case["workload"])
        hardware.append(case["hardware"])
        case_id.append(case["id"])
        key.append(case.get("key"))
        status.append(case["status"])
        error_kind.append(error["kind"] if error else None)
        dep = case.get("independence")
        dep_class.append(dep["class"] if dep else None)
        dep_tools.append(",".join(dep.get("tools", ())) if dep else None)
        dep_what.append(dep["what"] if dep else None)
        metrics = case["metrics"]
        repeats.append(len(metrics) or 1)
        if not metrics:
            for column in per_metric:
                column.append(None)
        for m in metrics:
            name.append(m["name"])
            value.append(float(m["value"]))
            unit.append(m["unit"])
            kind.append(m["kind"])
            timing.append(m.get("timing"))
    frame_cases = pl.DataFrame(dict(zip(_CASE_COLUMNS, per_case)), schema={c: FRAME_SCHEMA[c] for c in _CASE_COLUMNS})
    if cases:
        frame_cases = frame_cases[np.repeat(np.arange(len(cases)), repeats)]
    frame_metrics = pl.DataFrame(dict(zip(_METRIC_COLUMNS, per_metric)), schema={c: FRAME_SCHEMA[c] for c in _METRIC_COLUMNS})
    frame = (
        pl.concat([frame_cases, frame_metrics], how="horizontal")
        .with_columns(pl.lit(tool, dtype=pl.Utf8).alias("tool"), pl.lit(backend, dtype=pl.Utf8).alias("backend"),
                      pl.lit(rel, dtype=pl.Utf8).alias("source"))
        .select(list(FRAME_SCHEMA))
        .with_columns(pl.lit(index, dtype=pl.Int32).alias("_doc"))
    )
    return frame, ids


class Provenance:
    """Which recorded inputs of a document are files of the repository whose bytes changed since the run.

    Paths are handled as strings (one ``stat`` per distinct path, one sha256 per distinct file): a
    document lists one artifact per case, and pathlib objects for each cost more than the check."""

    def __init__(self, root: Path | None) -> None:
        self.root = None if root is None else os.fspath(root)
        self._digest: dict[str, str | None] = {}
        self._files: dict[str, frozenset[str]] = {}

    def _regular_files(self, folder: str) -> frozenset[str]:
        """The regular files of one repository folder, listed once (not a stat per recorded path)."""
        if folder not in self._files:
            try:
                with os.scandir(os.path.join(self.root, folder) if folder else self.root) as entries:
                    self._files[folder] = frozenset(e.name for e in entries if e.is_file(follow_symlinks=False))
            except (OSError, ValueError):
                self._files[folder] = frozenset()
        return self._files[folder]

    def _sha(self, rel: str) -> str | None:
        if rel not in self._digest:
            self._digest[rel] = None
            parts = rel.replace("\\", "/")
            if not parts.startswith("/") and ".." not in parts.split("/"):
                folder, _, name = parts.rpartition("/")
                if name in self._regular_files(folder):
                    try:
                        self._digest[rel] = ms.sha256_file(os.path.join(self.root, rel))
                    except OSError:
                        pass
        return self._digest[rel]

    def stale(self, doc: dict[str, Any]) -> list[str]:
        if self.root is None:
            return []
        refs = [doc["invocation"].get("config")] + [a for c in doc["cases"] for a in c.get("artifacts") or ()]
        out = set()
        for ref in refs:
            if ref and ref["path"] not in out:
                now = self._sha(ref["path"])
                if now is not None and now != ref["sha256"]:
                    out.add(ref["path"])
        return sorted(out)


def collect(evaluation_dir: Path, on_skip=None, hardware: dict[str, Any] | None = None, root: Path | None = None) -> Collected:
    """Every valid tool-run document below ``evaluation_dir``, reduced and de-duplicated.

    ``hardware`` (the catalog) enables the mislabel check: a measurement filed under a hardware
    id whose GPU is not the GPU the document ran on is skipped, with the reason. ``root`` (the
    repository) enables the provenance check: recorded inputs that are repository files whose
    sha256 changed since the run are listed per source (``stale_inputs``)."""
    provenance = Provenance(root)
    out = Collected()
    frames: list[pl.DataFrame] = []
    case_ids: list[tuple] = []
    tokens = gpu_tokens(hardware) if hardware else None
    for index, (rel, doc, sha) in enumerate(iter_tool_runs(evaluation_dir, out.skipped, hardware_gpus=tokens)):
        frame, ids = _rows(rel, doc, index)
        frames.append(frame)
        case_ids.extend(ids)
        out.sources.append(Source(rel, sha, doc["tool"], doc["wall_clock"], [_slim(c) for c in doc["cases"]],
                                  stale_inputs=provenance.stale(doc)))
        del doc
    if on_skip:
        for s in out.skipped:
            on_skip(s.path, s.reason)
    rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema={**FRAME_SCHEMA, "_doc": pl.Int32})
    out.rows = _dedupe(out, rows, case_ids)
    return out


def _dedupe(out: Collected, rows: pl.DataFrame, case_ids: list[tuple]) -> pl.DataFrame:
    """Keep each (tool, case id) once; the dropped count per document is reported, never hidden."""
    if len({(t, c) for t, c, _r, _d in case_ids}) == len(case_ids):
        return rows.drop("_doc")
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for tool, cid, rank, index in case_ids:
        key = (tool, cid)
        if key not in best or (rank, index) < best[key]:
            best[key] = (rank, index)
    keep = pl.DataFrame([(t, c, i) for (t, c), (_r, i) in best.items()], schema={"tool": pl.Utf8, "case": pl.Utf8, "_doc": pl.Int32},
                        orient="row")
    for index, source in enumerate(out.sources):
        tool = source.tool["name"]
        kept = [c for c in source.cases if best[(tool, c["id"])][1] == index]
        source.superseded = len(source.cases) - len(kept)
        source.cases = kept
    return rows.join(keep, on=["tool", "case", "_doc"], how="semi", maintain_order="left").drop("_doc")


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
