"""AIConfigurator vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |AIConfigurator - measured| / measured. Per GPU and scope: n, MAPE (mean of the
errors, %), the geometric-mean error (exp of the mean log error, %) and the mean ratio
AIConfigurator / measured (below 1: it predicts faster than measured).

The README's table is this module's output for the committed documents (between the
``<!-- compare:begin -->`` / ``<!-- compare:end -->`` markers); a test fails when it is stale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


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


def pair(doc: dict[str, Any], groundtruths: list[dict[str, Any]], timing: str = "device") -> list[Pair]:
    """Every ok AIConfigurator case whose (hardware, key) has an ok measured ``latency`` of ``timing``, in its order."""
    measured: dict[tuple[str, str], float] = {}
    for gt in groundtruths:
        for c in gt["cases"]:
            if c["status"] != "ok" or not c.get("key"):
                continue
            for m in c["metrics"]:
                if m["name"] == "latency" and m.get("timing") == timing and m["kind"] == "measurement":
                    measured[(c["hardware"], c["key"])] = _ms(m)
    out = []
    for c in doc["cases"]:
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
    return {
        "n": n,
        "mape_pct": 100 * sum(errors) / n,
        "geomean_error_pct": 100 * geo,
        "mean_ratio": sum(p.ratio for p in pairs) / n,
        "min_ratio": min(p.ratio for p in pairs),
        "max_ratio": max(p.ratio for p in pairs),
    }


def groups(pairs: list[Pair]) -> list[tuple[str, str, list[Pair]]]:
    """(hardware, scope label, pairs): each GPU's W5 prefill, W5 decode, and both."""
    out = []
    for hw in dict.fromkeys(p.hardware for p in pairs):
        mine = [p for p in pairs if p.hardware == hw]
        for label, pick in (
            ("W5 prefill", lambda p: ".prefill." in p.key),
            ("W5 decode", lambda p: ".decode." in p.key),
            ("all", lambda p: True),
        ):
            sel = [p for p in mine if pick(p)]
            if sel:
                out.append((hw, label, sel))
    return out


def render(by_timing: dict[str, list[Pair]], per_case: bool = True) -> str:
    lines = [
        "| measured timing | GPU | cases | n | MAPE | geomean error | mean AIC/measured | min–max AIC/measured |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for timing, pairs in by_timing.items():
        for hw, label, sel in groups(pairs):
            s = summary(sel)
            lines.append(
                f"| {timing} | {hw} | {label} | {s['n']} | {s['mape_pct']:.1f} % | {s['geomean_error_pct']:.1f} % "
                f"| {s['mean_ratio']:.3f} | {s['min_ratio']:.3f}–{s['max_ratio']:.3f} |"
            )
    lines.append("")
    lines.append("Error = |AIConfigurator − measured| / measured, per case; measured = the ground truth's `latency` of that timing.")
    lines.append("")
    if per_case and by_timing:
        timing, pairs = next(iter(by_timing.items()))
        lines += [f"| GPU | key | AIC (ms) | measured {timing} (ms) | AIC/measured |", "|---|---|---:|---:|---:|"]
        for p in pairs:
            lines.append(f"| {p.hardware} | `{p.key}` | {p.predicted_ms:.4g} | {p.measured_ms:.4g} | {p.ratio:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The generated part of a README (between the markers, without them)."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def with_block(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table.strip("\n") + "\n" + text[end:]
