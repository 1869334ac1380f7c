"""Declare, after the run, what a committed tool-run document's cases are not independent of.

    python -m mtap_schemas.annotate DOC --class shared-operators --tools vidur \
        --what "Llama-2-7B composed of VIDUR's profiled operators" [--hardware ID] [--key-pattern RE]

Documents written before tool-run 2.2 carry no ``case.independence``; their runners now write it.
This adds it to the selected cases (every case, or those of ``--hardware`` / whose key matches
``--key-pattern``), marks each such case with the parameter ``independence_declared`` (when and
that it was declared after the run), and rewrites the document validated, atomically, in its own
style. Nothing else changes. Running it twice with the same declaration changes nothing; a case that
already declares another class is refused by name (exit 2).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

from . import SchemaError, dumps, read, validate, write_text_atomic
from .toolrun import TOOL_RUN, TOOL_RUN_MAJOR, independence

#: the case parameter that says a declaration was added after the run
DECLARED = "independence_declared"


def annotate(doc: dict[str, Any], declaration: dict[str, Any], *, hardware: str | None = None, key_pattern: str | None = None,
             when: str | None = None, source: str = "<document>") -> int:
    """Add ``declaration`` to the selected cases of ``doc`` in place; returns how many cases changed."""
    pattern = re.compile(key_pattern) if key_pattern else None
    note = f"after the run, {when or date.today().isoformat()} (python -m mtap_schemas.annotate)"
    changed = 0
    for i, case in enumerate(doc["cases"]):
        if hardware and case["hardware"] != hardware:
            continue
        if pattern and not pattern.search(case.get("key") or ""):
            continue
        old = case.get("independence")
        if old == declaration:
            continue
        if old is not None:
            raise SchemaError(f"{source}: field cases[{i}].independence: already declares {old['class']!r}, refusing to replace it")
        case["independence"] = declaration
        case["parameters"].setdefault(DECLARED, note)
        changed += 1
    if changed:
        doc["schema_version"] = max(doc["schema_version"], "2.2.0", key=lambda v: tuple(map(int, v.split("."))))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtap_schemas.annotate", description=__doc__.split("\n\n")[0])
    parser.add_argument("documents", nargs="+", type=Path, help="tool-run v2 documents to rewrite in place")
    parser.add_argument("--class", dest="cls", required=True, help="calibrated-separately, published-silicon, shared-operators or tool-labels")
    parser.add_argument("--what", required=True, help="what the cases depend on (profile, microbenchmark, operators), with a path")
    parser.add_argument("--tools", default="", help="comma-separated tools a reference is not independent of (default: any)")
    parser.add_argument("--hardware", help="only the cases of this hardware id")
    parser.add_argument("--key-pattern", help="only the cases whose key matches this regular expression")
    parser.add_argument("--date", help="the date recorded in the note (default: today)")
    args = parser.parse_args(argv)
    try:
        declaration = independence(args.cls, args.what, [t for t in args.tools.split(",") if t])
        for path in args.documents:
            doc = read(path, TOOL_RUN, TOOL_RUN_MAJOR)
            n = annotate(doc, declaration, hardware=args.hardware, key_pattern=args.key_pattern, when=args.date, source=str(path))
            if n:
                validate(doc, TOOL_RUN, TOOL_RUN_MAJOR, str(path))
                write_text_atomic(path, dumps(doc, style="auto"))
            print(f"{path}: {n} case(s) declared {args.cls}")
    except (SchemaError, ValueError, re.error) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
