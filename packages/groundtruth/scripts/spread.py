"""Run-to-run spread of groundtruth measurements: the same cases measured in two runs (e.g. two
fresh machines of the same kind), compared case by case.

    python packages/groundtruth/scripts/spread.py BASE.tool-run.json REPEAT.tool-run.json \
        [--timing device] [--figure out.png] [--label-base machine 1 --label-repeat machine 2]

Prints Markdown: per workload the cases compared and the distribution of the ratio
repeat/base of the median latency (median, p10, p90 and max of |ratio - 1|), beside the
within-run spread (p90 - p10) / median of the base run. With --figure, draws the ratio per case
against the base latency (matplotlib, only needed for the figure).
Only cases ``ok`` in both documents with a ``latency`` of the chosen timing are compared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latencies(path: str, timing: str) -> dict[str, dict]:
    """key -> {workload, median, p10, p90} of metric ``latency`` with the given timing (ok cases)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        sys.exit(f"{path}: cannot read a tool-run document: {exc}")
    out = {}
    for case in doc.get("cases", []):
        if case.get("status") != "ok":
            continue
        m = {x["name"]: x["value"] for x in case["metrics"] if x.get("timing") == timing}
        if "latency" in m:
            out[case["key"]] = {"workload": case["workload"], "median": m["latency"], "p10": m.get("latency_p10"), "p90": m.get("latency_p90")}
    return out


def compare(base: dict[str, dict], repeat: dict[str, dict]) -> list[dict]:
    rows = []
    for key in sorted(set(base) & set(repeat)):
        b, r = base[key], repeat[key]
        rows.append({"key": key, "workload": b["workload"], "base": b["median"], "repeat": r["median"], "ratio": r["median"] / b["median"],
                     "within": (b["p90"] - b["p10"]) / b["median"] if b["p10"] is not None and b["p90"] is not None else None})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| workload | cases | median \\|ratio−1\\| | p10 / p90 of ratio | max \\|ratio−1\\| | within-run (p90−p10)/median, median over cases |",
             "|---|---|---|---|---|---|"]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["workload"], []).append(r)
    groups["all"] = rows
    for wl in sorted(groups, key=lambda w: (w == "all", int(w[1:]) if w[1:].isdigit() else 0)):
        g = groups[wl]
        dev = [abs(r["ratio"] - 1) for r in g]
        ratios = [r["ratio"] for r in g]
        within = [r["within"] for r in g if r["within"] is not None]
        lines.append(f"| {wl} | {len(g)} | {100 * percentile(dev, 50):.2f}% | {percentile(ratios, 10):.4f} / {percentile(ratios, 90):.4f} | "
                     f"{100 * max(dev):.1f}% | {100 * percentile(within, 50):.2f}% |" if within else "| — |")
    return "\n".join(lines)


def figure(rows: list[dict], path: str, label_base: str, label_repeat: str, timing: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"W1": "tab:blue", "W4": "tab:orange", "W5": "tab:red", "W7": "tab:purple", "W8": "tab:green", "W9": "tab:brown"}
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=130)
    for wl in sorted({r["workload"] for r in rows}):
        g = [r for r in rows if r["workload"] == wl]
        ax.scatter([r["base"] for r in g], [100 * (r["ratio"] - 1) for r in g], s=9, alpha=0.75, label=f"{wl} ({len(g)})", color=colors.get(wl))
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"{label_base}: median latency, {timing} time (ms)")
    ax.set_ylabel(f"{label_repeat} / {label_base} − 1 (%)")
    ax.set_title(f"Run-to-run spread of the median, {len(rows)} cases")
    ax.legend(fontsize=7, ncol=3, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("repeat")
    ap.add_argument("--timing", default="device", choices=["device", "eager-end-to-end"])
    ap.add_argument("--figure", default=None)
    ap.add_argument("--label-base", default="run 1")
    ap.add_argument("--label-repeat", default="run 2")
    a = ap.parse_args(argv)
    rows = compare(latencies(a.base, a.timing), latencies(a.repeat, a.timing))
    if not rows:
        sys.exit(f"{a.repeat}: no ok case with a {a.timing} latency in common with {a.base}")
    print(table(rows))
    worst = sorted(rows, key=lambda r: -abs(r["ratio"] - 1))[:5]
    print("\nlargest differences: " + ", ".join(f"{r['key']} {r['base']:.4g} → {r['repeat']:.4g} ms ({100 * (r['ratio'] - 1):+.1f}%)" for r in worst))
    if a.figure:
        figure(rows, a.figure, a.label_base, a.label_repeat, a.timing)


if __name__ == "__main__":
    main()
