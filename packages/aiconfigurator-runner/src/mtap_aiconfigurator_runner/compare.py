"""AIConfigurator vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |AIConfigurator - measured| / measured. Per GPU and scope: n, MAPE (mean of the
errors, %), the geometric-mean error (exp of the mean log error, %) and the mean ratio
AIConfigurator / measured (below 1: it predicts faster than measured). The pairing and the statistics are the LLM peers'
(``mtap_schemas.llmpeer``).

The README's table is this module's output for the committed documents (between the
``<!-- compare:begin -->`` / ``<!-- compare:end -->`` markers); a test fails when it is stale.
"""

from __future__ import annotations

from mtap_schemas import llmpeer
from mtap_schemas.llmpeer import Pair, groups, pair, summary

__all__ = ["BEGIN", "END", "SCOPES", "Pair", "groups", "pair", "readme_block", "render", "summary", "with_block"]

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
#: each GPU's W5 prefill, W5 decode, and both (AIConfigurator takes no GPT-2: no W7 scope)
SCOPES = tuple((label, pick) for label, pick in llmpeer.SCOPES if label != "W7 GPT-2")


def render(by_timing: dict[str, list[Pair]], per_case: bool = True) -> str:
    lines = [
        "| measured timing | GPU | cases | n | MAPE | geomean error | mean AIC/measured | min–max AIC/measured |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for timing, pairs in by_timing.items():
        for hw, label, sel in groups(pairs, SCOPES):
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
