"""Headline latencies side by side: one Markdown row per case key, one column group per
document (median and within-run p10-p90 of metric ``latency``), for the groundtruth README.

    python packages/groundtruth/scripts/headline.py --timing device \
        "H200 machine 1=data/evaluation/groundtruth/h200-x1.tool-run.json" \
        "H200 machine 2=data/evaluation/groundtruth/spread/h200-x1-repeat.tool-run.json" \
        "H100=data/evaluation/groundtruth/h100-x1.tool-run.json" --keys KEY [KEY ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fmt(ms: float) -> str:
    return f"{ms * 1e3:.1f} µs" if ms < 0.1 else f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("docs", nargs="+", help="LABEL=PATH of a tool-run document")
    ap.add_argument("--timing", default="device", choices=["device", "eager-end-to-end"])
    ap.add_argument("--keys", nargs="+", required=True)
    a = ap.parse_args(argv)
    cols = []
    for spec in a.docs:
        label, _, path = spec.partition("=")
        if not path:
            sys.exit(f"{spec}: expected LABEL=PATH")
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            sys.exit(f"{path}: cannot read: {exc}")
        by = {}
        for c in doc["cases"]:
            if c["status"] == "ok":
                m = {x["name"]: x["value"] for x in c["metrics"] if x.get("timing") == a.timing}
                if "latency" in m:
                    by[c["key"]] = m
        cols.append((label, by))
    print("| case | " + " | ".join(f"{label} median [p10–p90]" for label, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for key in a.keys:
        cells = []
        for _, by in cols:
            m = by.get(key)
            cells.append("—" if m is None else f"{fmt(m['latency'])} [{fmt(m['latency_p10'])}–{fmt(m['latency_p90'])}]")
        print(f"| `{key}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
