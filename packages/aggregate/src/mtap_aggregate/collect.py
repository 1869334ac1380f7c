"""Find and read tool-run documents; a bad file is reported by name and skipped, never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mtap_schemas as ms

PATTERN = "*.tool-run.json"


#: When one tool's case id appears in several documents, the best status wins.
STATUS_RANK = {"ok": 0, "failed": 1, "unsupported": 2, "unavailable": 3}


@dataclass
class Collected:
    documents: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # (relpath, doc, sha256)
    skipped: list[dict[str, str]] = field(default_factory=list)
    superseded: dict[str, int] = field(default_factory=dict)  # relpath -> cases dropped as duplicates


def dedupe(collected: Collected) -> None:
    """Keep each (tool, case id) once: the case with the best status, first path on ties.

    A runner run on a machine without its tool writes a document of `unavailable` cases beside
    the real one (e.g. astra-sim.unavailable.tool-run.json); counting both would double the
    cases. The dropped count per document is reported, never hidden.
    """
    seen: set[tuple[str, str]] = set()
    total = 0
    for _rel, doc, _sha in collected.documents:
        tool = doc["tool"]["name"]
        seen.update((tool, case["id"]) for case in doc["cases"])
        total += len(doc["cases"])
    if len(seen) == total:  # no duplicates: nothing to drop
        collected.superseded = {rel: 0 for rel, _doc, _sha in collected.documents}
        return
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for index, (_rel, doc, _sha) in enumerate(collected.documents):
        tool = doc["tool"]["name"]
        for case in doc["cases"]:
            rank = (STATUS_RANK[case["status"]], index)
            key = (tool, case["id"])
            if key not in best or rank < best[key]:
                best[key] = rank
    kept = []
    for index, (rel, doc, sha) in enumerate(collected.documents):
        tool = doc["tool"]["name"]
        cases = [c for c in doc["cases"] if best[(tool, c["id"])][1] == index]
        dropped = len(doc["cases"]) - len(cases)
        collected.superseded[rel] = dropped
        kept.append((rel, dict(doc, cases=cases) if dropped else doc, sha))
    collected.documents = kept


def find(evaluation_dir: Path) -> list[Path]:
    """Every tool-run document below ``evaluation_dir``, in a stable order."""
    return sorted(p for p in evaluation_dir.rglob(PATTERN) if p.is_file())


def collect(evaluation_dir: Path, on_skip=None) -> Collected:
    out = Collected()
    for path in find(evaluation_dir):
        rel = path.relative_to(evaluation_dir).as_posix()
        try:
            doc = ms.read(path, "tool-run")
        except ms.SchemaError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            out.skipped.append({"path": rel, "reason": reason})
            if on_skip:
                on_skip(rel, reason)
            continue
        out.documents.append((rel, doc, ms.sha256_file(path)))
    dedupe(out)
    return out
