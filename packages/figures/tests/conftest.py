"""Small hand-made documents (synthetic tools; not any real tool's output), shaped like the real ones
at their most crowded: long tool names, 4-digit counts, twenty D2 rows, every claim kind."""

from __future__ import annotations

import math

import pytest

HW = ("H100-SXM5-80GB", "H200-SXM-141GB")


def pair(tool, hw, key, predicted, measured, timing="device", cls="independent", unit="ms", workload="W1", metric="latency"):
    return {"tool": tool, "workload": workload, "hardware": hw, "key": key, "metric": metric, "unit": unit, "predicted": predicted,
            "measured": measured, "measured_timing": timing, "ape_percent": abs(predicted - measured) / measured * 100,
            "measured_spread": 0.01, "reference_class": cls, "reference_note": "", "scope": "layer"}


def claim(tool, cid, metric, claimed, match, ours, ci, n, classes=("independent",), subset="", why=""):
    return {"tool": tool, "claim": cid, "statement": f"{tool} says so", "metric": metric, "claimed": claimed, "citation": "Someone, Venue 2024",
            "subset": subset or cid, "match": match, "ours": ours, "ours_ci95": ci, "n": n, "our_subset": subset or cid,
            "reference_classes": list(classes), "why": why}


CLAIMS = [
    claim("tool-sim", "ring-allreduce-2gpu", "geomean-error", 20.63, "nearest", 51.0, [38.0, 64.0], 12, why="2 GPUs direct NVLink, not HGX"),
    claim("tool-sim", "ring-allreduce-4gpu", "geomean-error", 12.01, "none", None, None, 0, why="no 4-GPU machine"),
    claim("tool-sim", "ring-allreduce-8gpu", "geomean-error", 9.69, "none", None, None, 0, why="no 8-GPU machine"),
    claim("tool-sim", "tool-sim.v100-class.all-reduce", "geomean-error", None, "none", None, None, 0, why="several figures, no single one"),
    claim("tool-latency-predictor", "pixel4-cpu-within-10pct", "share-within-10pct", 99.0, "nearest", 6.25, [0.0, 18.75], 16),
    claim("tool-dataflow", "taped-out-chip-accuracy", "accuracy", 94.3, "none", None, None, 0),
    claim("tool-mapper", "silicon-validation", "none", None, "matching", 7.1, [4.2, 10.3], 5, classes=("published-silicon",)),
    claim("tool-gpu", "gpt3-h100", "mape", 2.3, "none", None, None, 0),
    claim("tool-gpu", "h100-inference-12-configs", "mape", 6.1, "matching", 16.0, [12.1, 20.4], 29),
    claim("tool-serving", "latency-under-9pct", "mape", 9.0, "matching", 7.0, [6.6, 7.4], 3203, classes=("calibrated-separately",)),
    claim("tool-serving", "replayed-batches", "mape", 9.0, "matching", 10.3, [10.0, 10.6], 85620, classes=("shared-operators",)),
]


def aggregate_doc(version="2.1.0", claims=True, classes=True):
    tools = ["analytical-roofline", "analytical-roofline-floor", "tool-sim", "tool-gpu", "tool-gpu-roofline", "tool-gpu-trained",
             "tool-latency-predictor", "tool-mapper", "tool-serving"]
    refs = ["groundtruth", "onnxruntime", "published", "serving-replay"]
    coverage = []
    for i, t in enumerate(tools + refs):
        for j in range(1, 11):
            if (i + j) % 3 == 0:
                continue
            total = [1008, 2570, 625, 12, 3, 36, 513][(i * 7 + j) % 7]
            coverage.append({"tool": t, "workload": f"W{j}", "ok": total - (i + j) % 4 * (total // 5), "failed": (i + j) % 4 * (total // 5),
                             "unsupported": 0, "unavailable": 0})
    pairs = []
    for k, t in enumerate(tools):
        for h in HW[: 1 + k % 2]:
            for i in range(40):
                m = 10 ** (-3 + 5 * i / 39)
                timing = ("device", "eager-end-to-end", "device (replayed)", "reported")[i % (1 + k % 4)]
                cls = ("independent", "calibrated-separately", "published-silicon", "shared-operators", "tool-labels")[(k + i // 20) % 5]
                pairs.append(pair(t, h, f"k{i}", m * (1 + 0.3 * math.sin(i + k)), m, timing=timing, cls=cls))
    for i, cls in enumerate(("independent", "calibrated-separately", "published-silicon") * 4):  # four decades, three classes
        pairs.append(pair("tool-b-short-range", HW[1], f"s{i}", 10 ** (-2 + i / 3) * 1.2, 10 ** (-2 + i / 3), cls=cls))
    doc = {
        "schema": "aggregate", "schema_version": version, "sources": [
            {"path": f"{t}/{t}.tool-run.json", "sha256": "0" * 64, "tool": t, "backend": "measured" if t in ("groundtruth", "onnxruntime") else
             "replayed" if t == "serving-replay" else "artifact" if t == "published" else "native", "cases": 1, "superseded": 0} for t in tools + refs],
        "skipped": [],
        "table": {"columns": ["tool", "backend", "source", "workload", "hardware", "case", "key", "status", "error_kind", "metric", "value", "unit", "kind", "timing"], "rows": 0},
        "coverage": coverage,
        "errors_vs_measured": pairs if classes else [{k: v for k, v in p.items() if k not in ("reference_class", "reference_note", "scope")} for p in pairs],
    }
    if claims:
        doc["claims_vs_measured"] = CLAIMS
    return doc


def compositional_doc():
    rows = []
    for tool in ("analytical-roofline", "analytical-roofline-floor"):
        for model in ("resnet50", "mobilenet-v2", "vgg16"):
            for config in ("b1.fp16", "b1.fp32", "b32.fp16", "b32.fp32")[: 4 if model == "resnet50" else 2] + (("b8.fp32",) if model == "vgg16" else ()):
                mean = 40 + len(rows) * 2.7
                rows.append({"tool": tool, "hardware": HW[len(rows) % 2] if tool == "analytical-roofline" else HW[1], "model": model, "config": config, "layers": 53, "layers_measured": 53,
                             "sum_layers_predicted_ms": 1.0, "model_predicted_ms": None if config == "b8.fp32" else 1.2, "measured_model_ms": 2.0,
                             "sum_layers_measured_ms": 1.9, "measured_timing": "device", "mean_layer_ape_percent": mean,
                             "composed_ape_percent": min(mean * 1.3, 99.0), "model_ape_percent": None if config == "b8.fp32" else mean * 1.1,
                             "amplification": min(mean * 1.3, 99.0) / mean})
    return {"schema": "compositional", "schema_version": "1.0.0", "sources": [], "compute_to_system": [], "layer_to_model": rows}


def tool_doc(tool, cases, backend="native"):
    return {"schema": "tool-run", "schema_version": "2.0.0", "runner": {"name": "t", "version": "0"}, "tool": {"name": tool, "version": "1", "backend": backend},
            "environment": {"python": "3", "platform": "x", "cpu": "y"}, "invocation": {"command": ["t"], "config": None},
            "wall_clock": {"started_at": "2026-11-26T00:00:00Z", "setup_seconds": 0, "run_seconds": 0}, "cases": cases}


def ok(cid, key, params, metrics, workload="W6", hardware="HGX-H100x8"):
    return {"id": cid, "key": key, "workload": workload, "hardware": hardware, "parameters": params, "status": "ok", "error": None, "metrics": metrics, "artifacts": []}


def astra_cases():
    return [ok(f"{hw}/{c}{n}.{s}", f"{c}.n{n}.{s}", {"binary": "congestion-aware"},
               [{"name": "latency", "value": 1000.0 * n * (1 + k) * (2 if c == "all-to-all" else 1) * (1.1 if "H200" in hw else 1), "unit": "ns", "kind": "prediction"}],
               hardware=hw if n < 16 else hw.replace("x8", "x16"))
            for hw in ("HGX-H100x8", "HGX-H200x8") for c in ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
            for n in (2, 4, 8, 16) for k, s in enumerate(("1mib", "64mib", "1gib"))]


def vidur_cases():
    return [ok(f"{s}{q}", None, {"scheduler": s, "qps": q}, [{"name": f"e2e_latency_p{p}", "value": p * q / 10, "unit": "s", "kind": "prediction"} for p in (50, 90, 99)],
               workload="W5", hardware="H100-SXM5-80GB") for s in ("vllm", "orca", "sarathi") for q in (1.0, 2.0, 4.0, 8.0)]


def replay_cases():
    cdf = [{"name": f"{stem}_cdf_p{p:03d}", "value": (p + 1) * f / 1000 * (100 if stem == "e2e_latency" else 1), "unit": "s", "kind": kind, "timing": timing}
           for stem in ("ttft", "e2e_latency") for p in range(0, 101, 5)
           for kind, timing, f in (("measurement", "device", 0.9), ("prediction", "simulated", 1.0))]
    return [ok(f"W5/H200-SXM-141GB/{s}/{rate}", None, {"scheduler": s}, cdf, workload="W5", hardware="H200-SXM-141GB")
            for s in ("vllm", "orca", "sarathi") for rate in ("qps=8", "static", "qps=1")]


@pytest.fixture
def documents():
    return {"aggregate": aggregate_doc(), "compositional": compositional_doc(), "astra": [tool_doc("astra-sim", astra_cases())],
            "vidur": vidur_cases(), "replay": [tool_doc("vidur-replay", replay_cases(), backend="replayed")]}
