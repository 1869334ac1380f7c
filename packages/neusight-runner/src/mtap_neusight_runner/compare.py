"""``neusight-runner compare``: our live predictions of NeuSight's own configurations, scored.

Reads a live tool-run document (cases with ``parameters.neusight_tag`` and ``neusight_device``,
e.g. ``neusight-trained-own-nvidia.tool-run.json`` from ``run --weights``) and NeuSight's artifact
folder; for every ok case it pairs our ``latency`` with the authors' measured label
(``label/<GPU>/<tag>.json``) and the authors' published NeuSight prediction
(``results/prediction/<GPU>/neusight/<tag>.json``). Per GPU: our APE vs theirs over the same
labelled configurations, and how far our prediction is from theirs (|ours - theirs| / theirs).
Nothing here is fitted: the labels are end-to-end model latencies, which NeuSight never trains on
(its training data are single-kernel measurements).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mtap_schemas.toolrun import artifact as file_ref

from .parse import ParseError, read_latency_json

#: GPUs whose kernels are in NeuSight's NVIDIA training set (scripts/asplos/data/dataset/train/collect/*/p2.1.0/)
TRAINING_GPUS = {"NVIDIA_A100-PCIE-40GB", "Tesla_V100-PCIE-32GB", "Tesla_T4", "Tesla_P100-PCIE-16GB", "Tesla_P4"}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def compare(doc: dict[str, Any], artifact_dir: Path) -> dict[str, Any]:
    rows = []
    for case in doc["cases"]:
        p = case.get("parameters") or {}
        if case["status"] != "ok" or "neusight_tag" not in p:
            continue
        ours = next((m["value"] for m in case["metrics"] if m["name"] == "latency"), None)
        if ours is None:
            continue
        device, tag = p["neusight_device"], p["neusight_tag"]
        label_path = artifact_dir / "label" / device / f"{tag}.json"
        pub_path = artifact_dir / "results" / "prediction" / device / "neusight" / f"{tag}.json"
        try:
            label = read_latency_json(label_path) if label_path.is_file() else None
            theirs = read_latency_json(pub_path) if pub_path.is_file() else None
        except ParseError:
            label = theirs = None
        row = {"device": device, "tag": tag, "ours_ms": ours, "published_ms": theirs, "label_ms": label,
               "gpu_in_training_set": device in TRAINING_GPUS}
        if label:
            row["ours_ape"] = abs(ours - label) / label * 100
            row["label_sha256"] = file_ref(label_path)["sha256"]
        if label and theirs is not None:
            row["published_ape"] = abs(theirs - label) / label * 100
        if theirs:
            row["ours_vs_published"] = (ours - theirs) / theirs * 100
        rows.append(row)
    per_gpu = []
    for device in sorted({r["device"] for r in rows}):
        rs = [r for r in rows if r["device"] == device]
        scored = [r for r in rs if "ours_ape" in r and "published_ape" in r]
        per_gpu.append({
            "device": device, "gpu_in_training_set": device in TRAINING_GPUS, "predicted": len(rs), "labelled": len(scored),
            "ours_mean_ape": _mean([r["ours_ape"] for r in scored]),
            "published_mean_ape": _mean([r["published_ape"] for r in scored]),
            "mean_abs_ours_vs_published": _mean([abs(r["ours_vs_published"]) for r in rs if "ours_vs_published" in r]),
        })
    scored = [r for r in rows if "ours_ape" in r and "published_ape" in r]
    total = {"predicted": len(rows), "labelled": len(scored),
             "ours_mean_ape": _mean([r["ours_ape"] for r in scored]),
             "published_mean_ape": _mean([r["published_ape"] for r in scored])}
    return {"rows": rows, "per_gpu": per_gpu, "total": total}


def _f(x: float | None, fmt: str = "{:.1f} %") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def markdown(result: dict[str, Any]) -> str:
    lines = ["| GPU | in NeuSight's training set | predicted | labelled | our mean APE | published mean APE (same configs) | mean \\|ours − published\\| |",
             "|---|---|---|---|---|---|---|"]
    for g in result["per_gpu"]:
        lines.append(f"| {g['device']} | {'yes' if g['gpu_in_training_set'] else 'no (held out)'} | {g['predicted']} | "
                     f"{g['labelled']} | {_f(g['ours_mean_ape'])} | {_f(g['published_mean_ape'])} | "
                     f"{_f(g['mean_abs_ours_vs_published'])} |")
    t = result["total"]
    lines.append(f"| **all** | | {t['predicted']} | {t['labelled']} | {_f(t['ours_mean_ape'])} | {_f(t['published_mean_ape'])} | |")
    return "\n".join(lines)
