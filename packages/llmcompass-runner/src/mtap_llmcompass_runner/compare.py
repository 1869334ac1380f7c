"""LLMCompass vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |LLMCompass - measured| / measured. Per GPU: n, MAPE (mean of the errors, %) and
the geometric-mean error (exp of the mean log error, %; the same statistics as the GenZ runner's table), plus
the mean ratio LLMCompass / measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pair:
    hardware: str
    key: str
    workload: str
    predicted_ms: float
    measured_ms: float

    @property
    def error(self) -> float:
        return abs(self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def ratio(self) -> float:
        return self.predicted_ms / self.measured_ms


def _ms(metric: dict[str, Any]) -> float:
    scale = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
    return float(metric["value"]) * scale[metric["unit"]]


def pair(tool_doc: dict[str, Any], groundtruths: list[dict[str, Any]], timing: str = "device") -> list[Pair]:
    """Every ok LLMCompass case whose (hardware, key) has an ok measured ``latency`` of ``timing``, in LLMCompass's order."""
    measured: dict[tuple[str, str], float] = {}
    for doc in groundtruths:
        for c in doc["cases"]:
            if c["status"] != "ok" or not c.get("key"):
                continue
            for m in c["metrics"]:
                if m["name"] == "latency" and m.get("timing") == timing and m["kind"] == "measurement":
                    measured[(c["hardware"], c["key"])] = _ms(m)
    out = []
    for c in tool_doc["cases"]:
        if c["status"] != "ok":
            continue
        lat = next((m for m in c["metrics"] if m["name"] == "latency"), None)
        got = measured.get((c["hardware"], c.get("key")))
        if lat is None or got is None or not got > 0:
            continue
        out.append(Pair(c["hardware"], c["key"], c["workload"], _ms(lat), got))
    return out


def summary(pairs: list[Pair]) -> dict[str, Any]:
    n = len(pairs)
    errors = [p.error for p in pairs]
    geo = math.exp(sum(math.log(e) for e in errors) / n) if all(e > 0 for e in errors) else 0.0
    return {"n": n, "mape_pct": 100 * sum(errors) / n, "geomean_error_pct": 100 * geo, "mean_ratio": sum(p.ratio for p in pairs) / n}


def groups(pairs: list[Pair]) -> list[tuple[str, str, list[Pair]]]:
    """(hardware, scope label, pairs): each GPU's W5 prefill, W5 decode, W7, and all of them."""
    out = []
    for hw in dict.fromkeys(p.hardware for p in pairs):
        mine = [p for p in pairs if p.hardware == hw]
        for label, pick in (
            ("W5 prefill", lambda p: ".prefill." in p.key),
            ("W5 decode", lambda p: ".decode." in p.key),
            ("W7 GPT-2", lambda p: p.workload == "W7"),
            ("all", lambda p: True),
        ):
            sel = [p for p in mine if pick(p)]
            if sel:
                out.append((hw, label, sel))
    return out


def render(pairs: list[Pair], timing: str, per_case: bool = True) -> str:
    lines = ["| GPU | cases | n | MAPE | geomean error | mean LLMCompass/measured |", "|---|---|---:|---:|---:|---:|"]
    for hw, label, sel in groups(pairs):
        s = summary(sel)
        lines.append(f"| {hw} | {label} | {s['n']} | {s['mape_pct']:.1f} % | {s['geomean_error_pct']:.1f} % | {s['mean_ratio']:.3f} |")
    lines.append("")
    lines.append(f"Measured: `latency` of timing `{timing}`; error = |LLMCompass - measured| / measured.")
    lines.append("")
    if per_case:
        lines += ["| GPU | key | LLMCompass (ms) | measured (ms) | LLMCompass/measured |", "|---|---|---:|---:|---:|"]
        for p in pairs:
            lines.append(f"| {p.hardware} | `{p.key}` | {p.predicted_ms:.4g} | {p.measured_ms:.4g} | {p.ratio:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


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
