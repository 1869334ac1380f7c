"""Eager attention (the Hugging Face models NeuSight traces) against SDPA (our plain-PyTorch models), per configuration.

    python packages/groundtruth/scripts/eager_ratio.py SDPA_DOC EAGER_DOC [--timing eager-end-to-end|device]

Pairs each ``<key>.eager-attn`` case of EAGER_DOC with the ``<key>`` case of SDPA_DOC (same hardware) and
prints a Markdown table: both medians with their within-run p10-p90, spread ((p90 - p10) / median) and
sample count n, the ratio eager / SDPA, and the FLOP ratio (the BERT-large eager model has a sequence-
classification head where the SDPA one has an MLM head over the vocabulary: fewer FLOPs). A case missing
on either side is listed with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys

SUFFIX = ".eager-attn"


def _metrics(case: dict, timing: str) -> dict[str, float]:
    out = {m["name"]: m["value"] for m in case.get("metrics", []) if m.get("timing") in (timing, None)}
    return out


def rows(sdpa: dict, eager: dict, timing: str) -> list[dict]:
    base = {(c["hardware"], c["key"]): c for c in sdpa["cases"]}
    out = []
    for c in eager["cases"]:
        if not c["key"].endswith(SUFFIX):
            continue
        other = base.get((c["hardware"], c["key"].removesuffix(SUFFIX)))
        row = {"hardware": c["hardware"], "key": c["key"].removesuffix(SUFFIX)}
        if c["status"] != "ok" or other is None or other["status"] != "ok":
            row["missing"] = ("eager: " + c["status"]) if c["status"] != "ok" else \
                             ("no SDPA case" if other is None else f"SDPA: {other['status']} ({(other.get('error') or {}).get('kind')})")
            out.append(row)
            continue
        e, s = _metrics(c, timing), _metrics(other, timing)
        if "latency" not in e or "latency" not in s:
            row["missing"] = f"no {timing} latency"
            out.append(row)
            continue
        row.update(eager=e, sdpa=s, ratio=e["latency"] / s["latency"], flops_ratio=e["flops"] / s["flops"])
        out.append(row)
    return out


def _ms(m: dict) -> str:
    return f"{m['latency']:.4g} [{m['latency_p10']:.4g}–{m['latency_p90']:.4g}]"


def markdown(table: list[dict], timing: str) -> str:
    lines = [f"| configuration | eager attention, ms ({timing}) | spread, n | SDPA, ms | spread, n | eager / SDPA | FLOPs eager / SDPA |",
             "|---|---|---|---|---|---|---|"]
    for r in table:
        if "missing" in r:
            lines.append(f"| `{r['key']}` | — | | — | | — ({r['missing']}) | |")
            continue
        e, s = r["eager"], r["sdpa"]
        lines.append(f"| `{r['key']}` | {_ms(e)} | {e['latency_spread'] * 100:.1f} %, {int(e['latency_samples'])} | {_ms(s)} | "
                     f"{s['latency_spread'] * 100:.1f} %, {int(s['latency_samples'])} | {r['ratio']:.3f} | {r['flops_ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdpa")
    ap.add_argument("eager")
    ap.add_argument("--timing", default="eager-end-to-end", choices=("eager-end-to-end", "device"))
    args = ap.parse_args(argv)
    try:
        sdpa, eager = (json.load(open(p, encoding="utf-8")) for p in (args.sdpa, args.eager))
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(markdown(rows(sdpa, eager, args.timing), args.timing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
