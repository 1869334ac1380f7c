"""The figures. Each function takes loaded documents and returns a matplotlib Figure, or
None when the data it needs is not there (the CLI then says so)."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

import mtap_schemas as ms
from mtap_schemas.paths import PathError, confined, read_lzma_bounded

from .style import GREYS, LINES, MARKERS

WORKLOADS = [f"W{i}" for i in range(1, 11)]
MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
COLLECTIVE_KEY = re.compile(r"^(all-reduce|all-gather|reduce-scatter|all-to-all)\.n(\d+)\.(\d+)(kib|mib|gib)$")
SIZE_BYTES = {"kib": 2**10, "mib": 2**20, "gib": 2**30}


def coverage_heatmap(aggregate: dict[str, Any]):
    cov = aggregate["coverage"]
    if not cov:
        return None
    tools = sorted({c["tool"] for c in cov})
    grid = np.full((len(tools), len(WORKLOADS)), np.nan)
    labels = [["" for _ in WORKLOADS] for _ in tools]
    for c in cov:
        total = c["ok"] + c["failed"] + c["unsupported"] + c["unavailable"]
        i, j = tools.index(c["tool"]), WORKLOADS.index(c["workload"])
        grid[i, j] = c["ok"] / total if total else np.nan
        labels[i][j] = f"{c['ok']}/{total}"
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(tools) + 1.4))
    cmap = plt.get_cmap("Greys").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(len(tools)):
        for j in range(len(WORKLOADS)):
            if labels[i][j]:
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7, color="white" if grid[i, j] > 0.55 else "black")
            else:
                ax.text(j, i, "—", ha="center", va="center", fontsize=7, color="0.6")
    ax.set_xticks(range(len(WORKLOADS)), WORKLOADS)
    ax.set_yticks(range(len(tools)), tools)
    ax.grid(False)
    ax.set_xlabel("workload")
    ax.set_title("Coverage: ok cases / cases per tool and workload (— = not attempted)")
    cbar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    cbar.set_label("fraction of cases ok")
    return fig


def predicted_vs_measured(aggregate: dict[str, Any], timing: str = "device"):
    pairs = [p for p in aggregate["errors_vs_measured"] if p["measured_timing"] == timing]
    if not pairs:
        return None
    series = sorted({(p["tool"], p["hardware"]) for p in pairs})
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    lo, hi = math.inf, 0.0
    for k, (tool, hardware) in enumerate(series):
        pts = [(p["measured"] * MS.get(p["unit"], 1.0), p["predicted"] * MS.get(p["unit"], 1.0)) for p in pairs
               if p["tool"] == tool and p["hardware"] == hardware and p["unit"] in MS]
        if not pts:
            continue
        x, y = zip(*pts)
        lo, hi = min(lo, *x, *y), max(hi, *x, *y)
        mape = sum(abs(b - a) / a for a, b in pts) / len(pts) * 100
        ax.scatter(x, y, marker=MARKERS[k % len(MARKERS)], s=18, facecolors="none" if k % 2 else GREYS[k % len(GREYS)],
                   edgecolors=GREYS[k % len(GREYS)], linewidths=0.8, label=f"{tool} on {hardware} (n={len(pts)}, MAPE {mape:.0f}%)")
    if hi == 0:
        plt.close(fig)
        return None
    lo, hi = lo / 2, hi * 2
    ax.plot([lo, hi], [lo, hi], color="0.2", lw=0.8, ls="-", label="predicted = measured")
    for f, ls in ((2, "--"), (10, ":")):
        ax.plot([lo, hi], [lo * f, hi * f], color="0.5", lw=0.6, ls=ls, label=f"×{f} / ÷{f}")
        ax.plot([lo, hi], [lo / f, hi / f], color="0.5", lw=0.6, ls=ls)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured latency on the GPU named in the legend, {timing} time (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title("Predicted vs measured (log–log)")
    ax.legend(fontsize=6.5, loc="upper left")
    return fig


def collective_scaling(astra_docs: list[dict[str, Any]], binary: str | None = None):
    """ASTRA-sim collective time vs NPUs, one panel per message size, one line per collective."""
    rows = []
    for doc in astra_docs:
        for c in doc["cases"]:
            m = COLLECTIVE_KEY.match(c.get("key") or "")
            if c["status"] != "ok" or not m:
                continue
            lat = next((x for x in c["metrics"] if x["name"] == "latency" and x["unit"] in MS), None)
            if lat is None:
                continue
            rows.append({
                "collective": m.group(1), "npus": int(m.group(2)), "size": f"{m.group(3)} {m.group(4).replace('ib', 'iB').upper().replace('IB', 'iB')}",
                "bytes": int(m.group(3)) * SIZE_BYTES[m.group(4)], "binary": str(c["parameters"].get("binary", "")),
                "ms": lat["value"] * MS[lat["unit"]],
            })
    if not rows:
        return None
    frame = pl.DataFrame(rows)
    binaries = sorted(frame["binary"].unique().to_list())
    sizes = frame.select("size", "bytes").unique().sort("bytes")["size"].to_list()
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.0 * len(sizes), 3.2), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        sub = frame.filter(pl.col("size") == size)
        for i, coll in enumerate(sorted(sub["collective"].unique().to_list())):
            for j, b in enumerate(binaries):
                s = sub.filter((pl.col("collective") == coll) & (pl.col("binary") == b)).sort("npus")
                if s.height == 0:
                    continue
                label = coll if len(binaries) == 1 else f"{coll} ({b})"
                ax.plot(s["npus"], s["ms"], marker=MARKERS[i], ls=LINES[j % len(LINES)], color=GREYS[i % len(GREYS)], ms=4, lw=1, label=label)
        ax.set_xscale("log", base=2)
        ticks = sorted(sub["npus"].unique().to_list())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("NPUs")
        ax.set_title(f"message {size}")
    axes[0][0].set_ylabel("simulated collective time (ms)")
    axes[0][-1].legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("ASTRA-sim collective scaling on an HGX-H100-like switch", y=1.03)
    return fig


#: the largest request_metrics CSV a figure decompresses (a larger one is refused, not read)
MAX_ARTIFACT_BYTES = 256 << 20


def _artifact_path(art_path: str, roots: list[Path], confine: Path | None) -> Path | None:
    """The cited file under one of ``roots`` and inside ``confine`` (no absolute paths, no ``..``, no link escapes)."""
    for root in roots:
        try:
            path = confined(root, art_path, "artifact")
        except PathError:
            continue
        if confine is not None and not path.is_relative_to(confine.resolve()):
            continue
        if path.is_file():
            return path
    return None


def _request_latencies(case: dict[str, Any], roots: list[Path], confine: Path | None = None) -> list[float] | None:
    """Per-request e2e latencies (s) from the request_metrics CSV the case cites, if its sha256 matches."""
    for art in case["artifacts"]:
        name = Path(art["path"]).name
        if not name.startswith("request_metrics.csv"):
            continue
        path = _artifact_path(art["path"], roots, confine)
        if path is not None and ms.sha256_file(path) == art["sha256"]:
            try:
                text = read_lzma_bounded(path, MAX_ARTIFACT_BYTES) if name.endswith(".xz") else path.read_bytes()
            except PathError:
                continue
            frame = pl.read_csv(io.BytesIO(text), columns=["request_e2e_time"])
            return sorted(frame["request_e2e_time"].to_list())
    return None


def vidur_latency(vidur_docs: list[tuple[Path, dict[str, Any]]], roots: list[Path] | None = None, confine: Path | None = None):
    """Request latency CDF per scheduler, one panel per QPS.

    The empirical CDF over every simulated request when the case's request_metrics CSV is on
    disk with a matching sha256; otherwise the CDF at the percentiles the case reports.
    """
    series: dict[tuple[str, float, str], tuple[list[float], list[float], bool]] = {}
    pct = re.compile(r"^e2e_latency_p(\d+)$")
    for doc_path, doc in vidur_docs:
        for c in doc["cases"]:
            sched, qps = c["parameters"].get("scheduler"), c["parameters"].get("qps")
            if c["status"] != "ok" or sched is None or qps is None:
                continue
            if c["parameters"].get("arrival", "poisson") != "poisson" or c["parameters"].get("min_tokens", 128) != 128:
                continue  # the static and long-context workloads are not the W5 QPS sweep
            lat = _request_latencies(c, [*(roots or []), doc_path.parent], confine)
            if lat:
                ys = [(i + 1) / len(lat) for i in range(len(lat))]
                series[(c["hardware"], float(qps), str(sched))] = (lat, ys, True)
                continue
            points = sorted((int(m.group(1)), x["value"] * MS[x["unit"]] / 1e3) for x in c["metrics"] if (m := pct.match(x["name"])) and x["unit"] in MS)
            if points:
                series[(c["hardware"], float(qps), str(sched))] = ([v for _, v in points], [p / 100 for p, _ in points], False)
    if not series:
        return None
    hardware = sorted({h for h, _, _ in series})[0]
    qpss = sorted({q for h, q, _ in series if h == hardware})
    scheds = sorted({s for h, _, s in series if h == hardware})
    fig, axes = plt.subplots(1, len(qpss), figsize=(3.0 * len(qpss), 3.0), squeeze=False, sharey=True, sharex=True)
    empirical = all(e for (h, _, _), (_, _, e) in series.items() if h == hardware)
    for ax, q in zip(axes[0], qpss):
        for i, sched in enumerate(scheds):
            if (hardware, q, sched) not in series:
                continue
            xs, ys, full = series[(hardware, q, sched)]
            xs_ms = [x * 1e3 for x in xs]
            if full:
                ax.step(xs_ms, ys, where="post", ls=LINES[i], color=GREYS[i], lw=1.2, label=sched)
                marks = [int(len(xs) * p) - 1 for p in (0.5, 0.9, 0.99)]
                ax.plot([xs_ms[k] for k in marks], [ys[k] for k in marks], ls="none", marker=MARKERS[i], color=GREYS[i], ms=4)
            else:
                ax.step(xs_ms, ys, where="post", marker=MARKERS[i], ls=LINES[i], color=GREYS[i], ms=4, lw=1, label=sched)
        ax.set_xlabel("request end-to-end latency (ms)")
        ax.set_title(f"QPS {q:g}")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("fraction of requests" + ("" if empirical else " (at reported percentiles)"))
    axes[0][-1].legend(fontsize=7, loc="lower right", title="scheduler (markers: p50, p90, p99)" if empirical else "scheduler", title_fontsize=6.5)
    fig.suptitle(f"VIDUR simulated request latency CDF, Llama-2-7B on {hardware}", y=1.03)
    return fig


def vidur_replay_cdf(replay_docs: list[dict[str, Any]], qps: float = 8.0):
    """Predicted vs replayed request latency CDFs per scheduler (vidur-replay documents).

    Each case of a ``vidur-replay`` document carries CDF points (every 5th percentile) of TTFT and
    e2e latency for VIDUR's own timeline (kind prediction) and for the same schedule with the
    batch times measured on the GPU (device time). One column per scheduler at ``qps``, and the
    static workload (every request at t=0) where present."""
    cdf = re.compile(r"^(ttft|e2e_latency)_cdf_p(\d{3})$")
    panels: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    hardware = None
    for doc in replay_docs:
        for c in doc["cases"]:
            if c["status"] != "ok":
                continue
            label = c["id"].split("/")
            sched = c["parameters"].get("scheduler")
            rate = label[3] if len(label) > 3 else ""
            if sched is None or rate not in (f"qps={qps:g}", "static") or len(label) > 4:
                continue
            hardware = hardware or c["hardware"]
            for m in c["metrics"]:
                if (g := cdf.match(m["name"])) is None:
                    continue
                who = "VIDUR" if m["kind"] == "prediction" else "replayed"
                panels.setdefault((rate, sched), {}).setdefault(f"{g.group(1)}|{who}", []).append((int(g.group(2)), m["value"]))
    if not panels:
        return None
    cols = sorted(panels, key=lambda k: (k[0] == "static", k[1]))
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.0), squeeze=False)
    for j, col in enumerate(cols):
        for i, (stem, title) in enumerate((("ttft", "TTFT (ms)"), ("e2e_latency", "e2e latency (ms)"))):
            ax = axes[i][j]
            for k, who in enumerate(("VIDUR", "replayed")):
                pts = sorted(panels[col].get(f"{stem}|{who}", []))
                if pts:
                    ax.plot([v * 1e3 for _, v in pts], [p / 100 for p, _ in pts], ls=LINES[k], color=GREYS[k], lw=1.3,
                            marker=MARKERS[k], ms=2.5, label="VIDUR (predicted)" if who == "VIDUR" else "replayed on GPU (device)")
            ax.set_xlabel(title)
            ax.set_ylim(0, 1.02)
            if i == 0:
                ax.set_title(f"{col[1]}, {'static (t=0)' if col[0] == 'static' else col[0].replace('=', ' ')}", fontsize=8)
            if j == 0:
                ax.set_ylabel("fraction of requests")
    axes[0][-1].legend(fontsize=6.5, loc="lower right")
    fig.suptitle(f"VIDUR's request latency vs its schedule replayed with GPU-measured batch times, Llama-2-7B on {hardware}", y=1.01)
    fig.tight_layout()
    return fig


def amplification_bars(compositional: dict[str, Any]):
    rows = [r for r in compositional["layer_to_model"] if r["composed_ape_percent"] is not None]
    if not rows:
        return None
    labels = [f"{r['tool']}\n{r['model']} {r['config']}" for r in rows]
    x = np.arange(len(rows))
    w = 0.27
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 3.4))
    series = [
        ("mean per-layer APE", [r["mean_layer_ape_percent"] or 0 for r in rows], "0.8", ""),
        ("Σ layers vs measured model", [r["composed_ape_percent"] for r in rows], "0.45", "//"),
        ("model-level prediction", [r["model_ape_percent"] or 0 for r in rows], "0.1", ".."),
    ]
    for k, (label, vals, colour, hatch) in enumerate(series):
        ax.bar(x + (k - 1) * w, vals, w, color=colour, edgecolor="black", linewidth=0.5, hatch=hatch, label=label)
    for i, r in enumerate(rows):
        if r["amplification"] is not None:
            ax.annotate(f"×{r['amplification']:.2f}", (x[i], max(s[1][i] for s in series)), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("absolute percentage error (%)")
    ax.set_ylim(0, max(max(v for v in s[1]) for s in series) * 1.18)
    ax.set_title("Error amplification, layer → model (×: composed / mean per-layer)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    return fig
