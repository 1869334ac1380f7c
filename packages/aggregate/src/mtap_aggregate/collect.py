"""Find and read tool-run documents; a bad file is reported by name and skipped, never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mtap_schemas as ms

PATTERN = "*.tool-run.json"


@dataclass
class Collected:
    documents: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # (relpath, doc, sha256)
    skipped: list[dict[str, str]] = field(default_factory=list)


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
    return out
