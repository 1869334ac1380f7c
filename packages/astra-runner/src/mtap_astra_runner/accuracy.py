"""Before/after calibration in ASTRA-sim's own metric: per collective, n, MAPE (with the range of
the errors) and geomean error of the keyed predictions against the measurements of one machine.

ASTRA-sim's documentation scores NCCL ring all-reduce on HGX-H100 by the geometric mean of the
absolute percentage errors over message sizes (20.63 / 12.01 / 9.69 % at 2 / 4 / 8 GPUs); the same
statistic here, on the same pairs before and after (the calibration points are never scored).
``python -m mtap_astra_runner.accuracy`` prints the table; the README holds it between markers and
a test checks it against the committed documents.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import mtap_schemas as ms

from .cases import COLLECTIVES

MEASURED = "data/evaluation/groundtruth/h200-x2.tool-run.json"
BEFORE = "data/evaluation/astra-sim/astra-sim-h200-x2-nvlink.tool-run.json"
AFTER = "data/evaluation/astra-sim/astra-sim-h200-x2-nvlink-calibrated.tool-run.json"
CALIBRATION = "data/calibration/astra-sim-h200-x2-nvlink.json"
START, END = "<!-- calibration-table:start -->", "<!-- calibration-table:end -->"


def measured(doc: dict[str, Any], hardware: str, timing: str = "device") -> dict[str, float]:
    """key -> measured latency (ns) of the ok cases on ``hardware``."""
    out = {}
    for c in doc["cases"]:
        if c["status"] == "ok" and c["hardware"] == hardware and c.get("key"):
            for m in c["metrics"]:
                if m["name"] == "latency" and m["kind"] == "measurement" and m.get("timing") == timing and m["unit"] == "ms":
                    out[c["key"]] = m["value"] * 1e6
    return out


def predicted(doc: dict[str, Any], hardware: str) -> dict[str, float]:
    """key -> simulated latency (ns) of the keyed ok collective cases on ``hardware``."""
    out = {}
    for c in doc["cases"]:
        if c["status"] == "ok" and c["hardware"] == hardware and c.get("key") and c["parameters"].get("kind") == "collective":
            out[c["key"]] = next(m["value"] for m in c["metrics"] if m["name"] == "latency")
    return out


def bootstrap(apes: list[float], resamples: int = 10_000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile 95 % intervals of MAPE and geomean error over pairs resampled with replacement
    (deterministic: a fixed seed)."""
    import random

    rng = random.Random(seed)
    n = len(apes)
    mapes, geos = [], []
    for _ in range(resamples):
        pick = [apes[rng.randrange(n)] for _ in range(n)]
        mapes.append(sum(pick) / n)
        geos.append(math.exp(sum(math.log(a) for a in pick) / n))
    mapes.sort()
    geos.sort()
    lo, hi = int(0.025 * resamples), int(0.975 * resamples) - 1
    return {"mape": (mapes[lo], mapes[hi]), "geomean": (geos[lo], geos[hi])}


def stats(apes: list[float]) -> dict[str, Any]:
    if not apes:
        return {"n": 0}
    return {
        "apes": apes,
        "n": len(apes),
        "mape": sum(apes) / len(apes),
        "min": min(apes),
        "max": max(apes),
        "geomean": math.exp(sum(math.log(a) for a in apes) / len(apes)) if all(a > 0 for a in apes) else 0.0,
    }


def table_rows(root: Path) -> list[dict[str, Any]]:
    """Per collective and overall: before (datasheet network) and after (calibrated) on the keys the
    calibrated document scores; all-reduce before also on all its sizes."""
    meas_doc, before_doc, after_doc = (ms.read_tool_run(root / p) for p in (MEASURED, BEFORE, AFTER))
    calib = ms.read(root / CALIBRATION, "calibration")
    hw = calib["hardware"]
    m, b, a = measured(meas_doc, hw), predicted(before_doc, hw), predicted(after_doc, hw)
    held_out = {p["key"] for p in calib["points"]}
    assert not held_out & set(a), "a calibration point is scored"
    rows = []

    def ape(pred: dict[str, float], k: str) -> float:
        return abs(pred[k] - m[k]) / m[k] * 100

    for coll in (*COLLECTIVES, None):
        keys = sorted(k for k in a if k in m and (coll is None or k.startswith(f"{coll}.")))
        rows.append(
            {
                "collective": coll or "all",
                "keys": keys,
                "before": stats([ape(b, k) for k in keys]),
                "after": stats([ape(a, k) for k in keys]),
            }
        )
        if coll == "all-reduce":
            every = sorted(k for k in b if k in m and k.startswith("all-reduce."))
            rows.append(
                {
                    "collective": "all-reduce (every size, before only)",
                    "keys": every,
                    "before": stats([ape(b, k) for k in every]),
                    "after": {"n": 0},
                }
            )
    return rows


def _cell(s: dict[str, Any]) -> tuple[str, str]:
    if not s["n"]:
        return "–", "–"
    return f"{s['mape']:.1f} % ({s['min']:.1f}–{s['max']:.1f})", f"{s['geomean']:.1f} %"


def markdown(root: Path) -> str:
    calib = ms.read(root / CALIBRATION, "calibration")
    f, c = calib["fitted"], calib["network"]["catalog"]
    lines = [
        START,
        f"Device time, Congestion_Aware, keyed cases; APE = |predicted − measured| / measured. Before: the catalog's "
        f"{c['bandwidth_bytes_per_s'] / 1e9:g} GB/s and {c['latency_ns']:g} ns; after: {f['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s and "
        f"{f['latency_ns'] / 1e3:.2f} µs fitted on {' + '.join(p['key'] for p in calib['points'])} (never scored). "
        "MAPE with the range of the errors in brackets.",
        "",
        "| collective | n | MAPE before | geomean before | MAPE after | geomean after |",
        "|---|---|---|---|---|---|",
    ]
    for r in table_rows(root):
        n = r["before"]["n"]
        (mb, gb), (ma, ga) = _cell(r["before"]), _cell(r["after"])
        lines.append(f"| {r['collective']} | {n} | {mb} | {gb} | {ma} | {ga} |")
    overall = next(r for r in table_rows(root) if r["collective"] == "all")
    b, a = (bootstrap(overall[k]["apes"]) for k in ("before", "after"))
    lines += [
        "",
        f"Overall, 95 % bootstrap intervals over the {overall['before']['n']} pairs (10,000 resamples, seed 0): MAPE "
        f"{b['mape'][0]:.1f}–{b['mape'][1]:.1f} % before, {a['mape'][0]:.1f}–{a['mape'][1]:.1f} % after; geomean error "
        f"{b['geomean'][0]:.1f}–{b['geomean'][1]:.1f} % before, {a['geomean'][0]:.1f}–{a['geomean'][1]:.1f} % after.",
    ]
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(markdown(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")))
