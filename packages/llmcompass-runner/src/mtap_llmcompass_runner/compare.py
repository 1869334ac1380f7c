"""LLMCompass vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |LLMCompass - measured| / measured. Per GPU: n, MAPE (mean of the errors, %) and
the geometric-mean error (exp of the mean log error, %; the same statistics as the GenZ runner's table), plus
the mean ratio LLMCompass / measured. The pairing and the statistics are the LLM peers' (``mtap_schemas.llmpeer``).
"""

from __future__ import annotations

from mtap_schemas import llmpeer
from mtap_schemas.llmpeer import Pair, groups, pair, summary

__all__ = ["Pair", "groups", "pair", "render", "runtime", "summary"]


def render(pairs: list[Pair], timing: str, per_case: bool = True) -> str:
    return llmpeer.render(pairs, timing, "LLMCompass", per_case)


def runtime(raw_dir) -> str:
    """Markdown table of LLMCompass's wall time per case, from the raw driver outputs ``--keep-raw`` kept."""
    import json
    from pathlib import Path

    rows = []
    for f in sorted(Path(raw_dir).glob("*.json")):
        d = json.loads(f.read_text())
        secs = (d.get("output") or {}).get("seconds") or {}
        rows.append((d["case"], d["outcome"], d["wall_seconds"], secs.get("import"), secs.get("block"), secs.get("head")))
    lines = [
        "| case | outcome | wall (s) | import (s) | block search (s) | head search (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def f(x):
        return "" if x is None else f"{x:.1f}"

    for case, outcome, wall, imp, block, head in rows:
        lines.append(f"| `{case}` | {outcome} | {f(wall)} | {f(imp)} | {f(block)} | {f(head)} |")
    total = sum(r[2] for r in rows)
    lines.append("")
    lines.append(f"{len(rows)} LLMCompass processes, {total:.0f} s in all (one at a time, `--jobs 1`).")
    return "\n".join(lines) + "\n"
