"""Rewrite tool-run v1 documents as v2, in place: ``python -m mtap_schemas.migrate data/evaluation``.

What changes (everything else, the cases and their provenance, is kept as it was):
- ``schema_version`` 1.x -> 2.0.0;
- ``wall_clock.started_at`` to UTC with a ``Z``;
- machine paths in ``invocation.command`` and ``tool.location`` -> repository-relative, or
  ``<external>/NAME`` for a path outside the repository (``../shared/...`` stays);
- error kinds outside :data:`kinds.ERROR_KINDS` are refused (named), not guessed.

v2 documents are left untouched, so running it twice changes nothing. Run it from the repository root.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import SchemaError, dumps, read, validate, write_text_atomic
from .kinds import ERROR_KINDS
from .paths import portable_text as _portable
from .toolrun import TOOL_RUN, TOOL_RUN_MAJOR


def _utc(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def upgrade(doc: dict[str, Any], source: str = "<document>") -> dict[str, Any]:
    """A v1 tool-run document as v2 (a new dict); SchemaError naming the field if it cannot be."""
    out = dict(doc)
    out["schema_version"] = "2.0.0"
    out["wall_clock"] = {**doc["wall_clock"], "started_at": _utc(doc["wall_clock"]["started_at"])}
    out["invocation"] = {**doc["invocation"], "command": [_portable(a) for a in doc["invocation"]["command"]]}
    if doc["invocation"].get("config"):
        out["invocation"]["config"] = {**doc["invocation"]["config"], "path": _portable(doc["invocation"]["config"]["path"])}
    if doc["tool"].get("location"):
        out["tool"] = {**doc["tool"], "location": _portable(doc["tool"]["location"])}
    for i, case in enumerate(doc["cases"]):
        err = case.get("error")
        if err and err["kind"] not in ERROR_KINDS:
            raise SchemaError(f"{source}: field cases[{i}].error.kind: {err['kind']!r} is not in mtap_schemas.kinds.ERROR_KINDS")
    validate(out, TOOL_RUN, TOOL_RUN_MAJOR, source)
    return out


def migrate_tree(root: str | Path) -> list[tuple[Path, str]]:
    """Upgrade every v1 ``*.tool-run.json`` below ``root``; returns (path, what happened)."""
    done = []
    for path in sorted(Path(root).rglob("*.tool-run.json")):
        try:
            read(path, TOOL_RUN, TOOL_RUN_MAJOR)
            done.append((path, "already v2"))
            continue
        except SchemaError:
            pass
        doc = read(path, TOOL_RUN, 1)
        text = dumps(upgrade(doc, str(path)))
        write_text_atomic(path, text)
        done.append((path, "v1 -> v2"))
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m mtap_schemas.migrate DIR [DIR ...]", file=sys.stderr)
        return 2
    try:
        for root in args:
            for path, what in migrate_tree(root):
                print(f"{path}: {what}")
    except SchemaError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
