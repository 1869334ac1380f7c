"""What the aggregate keeps of one tool-run document, computed where the document was read (in a
worker process of :func:`mtap_schemas.consume.map_tool_runs` for large folders): plain lists and
dicts that pickle cheaply, so this module imports neither polars nor numpy.

:func:`reduce_document` returns a :class:`Reduced`: the long table's columns (one entry per case,
one per metric), the slim copy of each case the D3/D4 tables read (and de-duplication), and the
recorded inputs whose bytes changed since the run (:class:`Provenance`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtap_schemas as ms

#: When one tool's case id appears in several documents (re-runs, shards, an `unavailable`
#: run beside a real one), the best status wins; the first document on ties.
STATUS_RANK = {"ok": 0, "failed": 1, "unsupported": 2, "unavailable": 3}
#: Case parameters that name a configuration choice (D3 sensitivity reads only cases that have one).
CONFIG_PARAMETERS = ("topology", "algorithm", "scheduler", "binary")
#: an artifact path prefix naming weights a tool was trained to here (a training v1 document lists their sha256)
TRAINED_WEIGHTS = "trained-weights:"
#: the frame's per-case and per-metric columns, built as column lists (not one tuple per row)
CASE_COLUMNS = ("workload", "hardware", "case", "key", "status", "error_kind", "independence", "independence_tools",
                "independence_what")
METRIC_COLUMNS = ("metric", "value", "unit", "kind", "timing")


@dataclass
class Reduced:
    tool: dict[str, Any]
    wall_clock: dict[str, Any]
    per_case: tuple[list[Any], ...]  # CASE_COLUMNS, one entry per case
    per_metric: tuple[list[Any], ...]  # METRIC_COLUMNS, one entry per metric (a case without metrics: one of nulls)
    repeats: list[int]  # rows per case
    cases: list[dict[str, Any]]  # slim: id, status, deterministic; + workload/hardware/key/parameters/metrics for D3
    stale_inputs: list[str]


def slim(case: dict[str, Any]) -> dict[str, Any]:
    out = {"id": case["id"], "status": case["status"], "deterministic": case.get("deterministic")}
    artifacts = case.get("artifacts")
    if artifacts:
        weights = sorted({a["sha256"] for a in artifacts if a["path"].startswith(TRAINED_WEIGHTS)})
        if weights:
            out["trained_weights"] = weights
    params = case["parameters"]
    if case["status"] == "ok" and any(k in params for k in CONFIG_PARAMETERS):
        out.update(workload=case["workload"], hardware=case["hardware"], key=case.get("key"), parameters=params,
                   metrics=case["metrics"])
    return out


def columns(cases: list[dict[str, Any]]) -> tuple[tuple[list[Any], ...], tuple[list[Any], ...], list[int]]:
    """The long table's columns of ``cases``: per case (CASE_COLUMNS), per metric (METRIC_COLUMNS),
    and each case's row count (its metrics, or 1)."""
    per_case: tuple[list[Any], ...] = tuple([] for _ in CASE_COLUMNS)
    per_metric: tuple[list[Any], ...] = tuple([] for _ in METRIC_COLUMNS)
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
    return per_case, per_metric, repeats


class Provenance:
    """Which recorded inputs of a document are files of the repository whose bytes changed since the run.

    Paths are handled as strings (one ``stat`` per distinct path, one sha256 per distinct file): a
    document lists one artifact per case, and pathlib objects for each cost more than the check."""

    def __init__(self, root: Path | str | None) -> None:
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


#: one Provenance per repository root and process (a worker reduces many documents)
_PROVENANCE: dict[str | None, Provenance] = {}


def provenance(root: Path | str | None) -> Provenance:
    key = None if root is None else os.fspath(root)
    if key not in _PROVENANCE:
        _PROVENANCE[key] = Provenance(key)
    return _PROVENANCE[key]


def reduce_document(rel: str, doc: dict[str, Any], sha256: str, root: str | None = None) -> Reduced:
    """What the aggregate keeps of one valid document (``root``: the repository, for the provenance check)."""
    cases = doc["cases"]
    per_case, per_metric, repeats = columns(cases)
    return Reduced(doc["tool"], doc["wall_clock"], per_case, per_metric, repeats, [slim(c) for c in cases],
                   provenance(root).stale(doc))
