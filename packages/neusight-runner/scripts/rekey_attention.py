"""Re-key committed NeuSight documents for the attention NeuSight traces (issue 27).

NeuSight builds every model with ``attn_implementation="eager"`` (``neusight/Tracing/trace.py``),
so since neusight-runner 2.1.0 every key ends in ``.eager-attn`` and every case has
``parameters.attention = "eager"`` (``mtap_neusight_runner.mapping``). Documents written before —
live, roofline and trained runs that cannot be re-run cheaply — get the same keys here, after the
fact: each case with a key gains the suffix, ``attention: "eager"`` and a ``key_note`` saying the
key was re-written after the run and why. Nothing else changes (metrics, command, versions,
wall clock); the document is re-validated and written as the kit writes it. A case that already
has the suffix and ``attention: "eager"`` is left alone, so a second pass changes nothing.

``--compare FILE`` (a ``neusight-runner compare --json-out`` result of one of the documents):
its ``document_sha256`` is updated to the re-keyed document's (the comparison's rows are keyed by
NeuSight's device and tag, not by case key, so nothing else in it depends on the keys).

    python packages/neusight-runner/scripts/rekey_attention.py data/evaluation/neusight/neusight-live.tool-run.json ... \
        [--compare data/evaluation/neusight/neusight-trained-own.compare.json]

Exit 0: written (or already re-keyed); 2: a file that is not a NeuSight tool-run document, or a
case whose attention says otherwise, or a comparison of no given document (one line, nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import mtap_schemas as ms
from mtap_schemas import TOOL_RUN_MAJOR

SUFFIX = ".eager-attn"
ATTENTION = "eager"
#: the tools whose cases are NeuSight's computation (its predictions and the labels it measured)
NEUSIGHT_TOOLS = ("neusight", "neusight-roofline", "neusight-trained")
NOTE = ("key re-written after the run by packages/neusight-runner/scripts/rekey_attention.py (issue 27): NeuSight traces "
        "and measures its models with attn_implementation=\"eager\" (neusight/Tracing/trace.py get_model), so the key "
        "names that computation (suffix .eager-attn) and pairs only with eager-attention measurements; the run, its "
        "metrics and its command are unchanged (neusight-runner {version} wrote keys without the suffix)")


class RekeyError(Exception):
    """Bad input: one line, exit 2."""


def rekey(doc: dict[str, Any], source: str) -> int:
    """Re-key ``doc`` in place; the number of cases changed."""
    tool = (doc.get("tool") or {}).get("name")
    if tool not in NEUSIGHT_TOOLS:
        raise RekeyError(f"{source}: field tool.name: {tool!r} is not a NeuSight tool ({', '.join(NEUSIGHT_TOOLS)}); "
                         "only NeuSight's cases are eager-attention computations")
    version = (doc.get("runner") or {}).get("version")
    changed = 0
    for i, case in enumerate(doc["cases"]):
        key = case.get("key")
        if key is None:
            continue
        params = case.setdefault("parameters", {})
        if params.get("attention", ATTENTION) != ATTENTION:
            raise RekeyError(f"{source}: field cases[{i}].parameters.attention: {params['attention']!r}, "
                             f"expected {ATTENTION!r} (case {case['id']})")
        if key.endswith(SUFFIX):
            if params.get("attention") != ATTENTION:
                raise RekeyError(f"{source}: field cases[{i}].parameters.attention: missing for a key that ends in {SUFFIX} "
                                 f"(case {case['id']})")
            continue
        case["key"] = key + SUFFIX
        params["attention"] = ATTENTION
        params["key_note"] = NOTE.format(version=version)
        case["parameters"] = dict(sorted(params.items()))
        changed += 1
    return changed


def _read(path: Path) -> dict[str, Any]:
    try:
        return ms.read_tool_run(path)
    except ms.SchemaError as exc:
        raise RekeyError(str(exc).splitlines()[0]) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("documents", nargs="+", type=Path, help="NeuSight tool-run documents, re-written in place")
    ap.add_argument("--compare", type=Path, action="append", default=[], help="a compare --json-out file of one of them")
    ap.add_argument("--repo", type=Path, default=Path("."), help="repository root (compare files name documents relative to it)")
    args = ap.parse_args(argv)
    try:
        docs = {path.resolve(): _read(path) for path in args.documents}
        compares = []
        for cpath in args.compare:
            try:
                cmp = json.loads(cpath.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RekeyError(f"{cpath}: not a readable JSON file ({exc})") from None
            target = (args.repo / str(cmp.get("document", ""))).resolve()
            if target not in docs:
                raise RekeyError(f"{cpath}: field document: {cmp.get('document')!r} is none of the documents given")
            compares.append((cpath, cmp, target))
        changed = {path: rekey(doc, str(path)) for path, doc in docs.items()}  # all checked before anything is written
    except RekeyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    for path, doc in docs.items():
        if changed[path]:
            ms.write(path, doc, "tool-run", TOOL_RUN_MAJOR, style="auto")
        print(f"{path.name}: {changed[path]} of {len(doc['cases'])} keys re-written", file=sys.stderr)
    for cpath, cmp, target in compares:
        old, new = cmp["document_sha256"], ms.sha256_file(target)
        if old != new:
            text = cpath.read_text(encoding="utf-8")
            assert text.count(old) == 1, f"{cpath}: document_sha256 must occur once"
            ms.write_text_atomic(cpath, text.replace(old, new))
        print(f"{cpath.name}: document_sha256 {'updated' if old != new else 'unchanged'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
