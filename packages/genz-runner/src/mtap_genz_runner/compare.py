"""GenZ vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |GenZ - measured| / measured. Per GPU: n, MAPE (mean of the errors, %) and
the geometric-mean error (exp of the mean log error, %: the statistic GenZ's paper quotes), plus
the mean ratio GenZ / measured.
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


def pair(genz: dict[str, Any], groundtruths: list[dict[str, Any]], timing: str = "device") -> list[Pair]:
    """Every ok GenZ case whose (hardware, key) has an ok measured ``latency`` of ``timing``, in GenZ's order."""
    measured: dict[tuple[str, str], float] = {}
    for doc in groundtruths:
        for c in doc["cases"]:
            if c["status"] != "ok" or not c.get("key"):
                continue
            for m in c["metrics"]:
                if m["name"] == "latency" and m.get("timing") == timing and m["kind"] == "measurement":
                    measured[(c["hardware"], c["key"])] = _ms(m)
    out = []
    for c in genz["cases"]:
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
    lines = ["| GPU | cases | n | MAPE | geomean error | mean GenZ/measured |", "|---|---|---:|---:|---:|---:|"]
    for hw, label, sel in groups(pairs):
        s = summary(sel)
        lines.append(f"| {hw} | {label} | {s['n']} | {s['mape_pct']:.1f} % | {s['geomean_error_pct']:.1f} % | {s['mean_ratio']:.3f} |")
    lines.append("")
    lines.append(f"Measured: `latency` of timing `{timing}`; error = |GenZ - measured| / measured.")
    lines.append("")
    if per_case:
        lines += ["| GPU | key | GenZ (ms) | measured (ms) | GenZ/measured |", "|---|---|---:|---:|---:|"]
        for p in pairs:
            lines.append(f"| {p.hardware} | `{p.key}` | {p.predicted_ms:.4g} | {p.measured_ms:.4g} | {p.ratio:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"
