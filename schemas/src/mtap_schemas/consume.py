"""One reader for consumers (aggregate, compose, figures): find every tool-run document under an
evaluation folder, validate it, drop exact copies and repeated case ids, and say what was skipped.

    skipped: list[Skipped] = []
    for rel, doc, sha256 in iter_tool_runs("data/evaluation", skipped):   # sorted by path, one at a time
        ...
    skipped                                    # [Skipped(path, reason)] — recorded in every consumer's output

A document is skipped (never a crash) when it is not UTF-8, not JSON, not a tool-run of the
supported major version, or invalid; when its bytes equal an earlier document's; or when every
one of its measurements sits under a hardware id whose GPU is not the GPU its environment names.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .toolrun import TOOL_RUN, TOOL_RUN_MAJOR

PATTERN = "*.tool-run.json"


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def find(evaluation_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``*.tool-run.json`` below the folder, sorted, links not followed out of it."""
    root = Path(evaluation_dir)
    out = []
    for path in sorted(root.rglob(PATTERN)):
        try:
            real = path.resolve()
            real.relative_to(root.resolve())
        except (ValueError, OSError):
            continue
        if path.is_file():
            out.append(path)
    return out


def gpu_tokens(catalog: dict[str, Any]) -> dict[str, str]:
    """hardware id -> GPU model token (A100, H100, H200) for the GPUs and GPU nodes of a hardware catalog
    (a node takes its ``device``'s token): what :func:`gpu_mismatch` compares."""
    by_id = {h["id"]: h for h in catalog["hardware"]}
    out = {}
    for hid, h in by_id.items():
        entry = by_id.get(h.get("device"), h) if h.get("kind") == "gpu-node" else h
        found = re.search(r"\b([A-Z]\d{2,3})\b", entry.get("name", "")) if entry.get("kind") == "gpu" else None
        if found:
            out[hid] = found.group(1)
    return out


def gpu_mismatch(doc: dict[str, Any], hardware_gpus: dict[str, str] | None) -> str | None:
    """Why a measured document is filed under the wrong GPU, or None.

    ``hardware_gpus`` maps hardware id -> a GPU model token (``H100``, ``H200``, ``A100``); a
    measurement whose case hardware has a token that the document's ``environment.gpu.name``
    lacks, or a different known token, is a mislabel."""
    if not hardware_gpus or doc.get("tool", {}).get("backend") != "measured":
        return None
    gpu = ((doc.get("environment") or {}).get("gpu") or {}).get("name") or ""
    if not gpu:  # no GPU recorded (a CPU measurement, or an old document): nothing to compare with
        return None
    for case in doc["cases"]:
        token = hardware_gpus.get(case["hardware"])
        if token and token.lower() not in gpu.lower():
            return f"case {case['id']}: hardware {case['hardware']} is a {token}, but the document was measured on {gpu or 'no GPU'}"
    return None


def iter_tool_runs(evaluation_dir: str | os.PathLike[str], skipped: list[Skipped], *,
                   hardware_gpus: dict[str, str] | None = None,
                   paths: list[Path] | None = None) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield (relative path, document, sha256) one at a time, appending what is skipped to ``skipped``:
    a consumer can reduce each document and let it go (large evaluation folders)."""
    from . import SchemaError, check_header, validate

    root = Path(evaluation_dir)
    seen: dict[str, str] = {}
    for path in paths if paths is not None else find(root):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            skipped.append(Skipped(rel, f"cannot read: {exc.strerror or exc}"))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if digest in seen:
            skipped.append(Skipped(rel, f"identical to {seen[digest]}"))
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            what = "not UTF-8 text" if "utf-8" in str(exc).lower() or "surrogate" in str(exc).lower() else "not valid JSON"
            skipped.append(Skipped(rel, f"{what}: {exc.msg}"))
            continue
        del raw
        try:
            check_header(doc, TOOL_RUN, TOOL_RUN_MAJOR, rel)
            validate(doc, TOOL_RUN, TOOL_RUN_MAJOR, rel)
        except SchemaError as exc:
            skipped.append(Skipped(rel, str(exc).removeprefix(f"{rel}: ")))
            continue
        why = gpu_mismatch(doc, hardware_gpus)
        if why:
            skipped.append(Skipped(rel, f"hardware mislabel: {why}"))
            continue
        seen[digest] = rel
        _dedupe_case_ids(doc, rel, skipped)
        yield rel, doc, digest


def _dedupe_case_ids(doc: dict[str, Any], rel: str, skipped: list[Skipped]) -> None:
    cases = doc["cases"]
    if len({c["id"] for c in cases}) == len(cases):
        return
    ids: set[str] = set()
    kept = []
    dropped = 0
    for case in cases:
        if case["id"] in ids:
            dropped += 1
            continue
        ids.add(case["id"])
        kept.append(case)
    if dropped:
        doc["cases"] = kept
        skipped.append(Skipped(rel, f"{dropped} repeated case id(s) dropped (first kept)"))
