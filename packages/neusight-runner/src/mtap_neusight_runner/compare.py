"""``neusight-runner compare``: our live predictions of NeuSight's own configurations, scored.

Reads a live tool-run document (cases with ``parameters.neusight_tag`` and ``neusight_device``,
e.g. ``neusight-trained-own.tool-run.json`` from ``run --weights``) and NeuSight's artifact
folder; for every ok case it pairs our ``latency`` with the authors' measured label
(``label/<GPU>/<tag>.json``) and the authors' published NeuSight prediction
(``results/prediction/<GPU>/neusight/<tag>.json``). Per GPU and per kind of configuration
(inference, training, torch.compile fusion, 4-GPU distributed): our APE vs theirs over the same
labelled configurations, the spread of ours (median, min, max), and how far our prediction is
from theirs (|ours - theirs| / theirs). Every label of the artifact that is not scored is listed
with the reason (the document's failed/unavailable case, or why no case was planned).
Nothing here is fitted: the labels are end-to-end model latencies, which NeuSight never trains on
(its training data are single-kernel measurements).
"""

from __future__ import annotations

import ast
import csv
import math
import statistics
from pathlib import Path
from typing import Any

from mtap_schemas.toolrun import artifact as file_ref

from .mapping import MODELS, UNMAPPED_MODELS, parse_tag
from .parse import ParseError, read_latency_json

#: GPUs whose kernels are in NeuSight's NVIDIA training set (scripts/asplos/data/dataset/train/collect/*/p2.1.0/)
TRAINING_GPUS = {"NVIDIA_A100-PCIE-40GB", "Tesla_V100-PCIE-32GB", "Tesla_T4", "Tesla_P100-PCIE-16GB", "Tesla_P4"}

#: Why labelled configurations are not predicted here (classified, not silently dropped).
AMD_REASON = (
    "NeuSight predicts AMD GPUs with a separate predictor (MLP_WAVE_AMD, scripts/asplos/"
    "run_train_amd_neusight.py) trained on dataset_amd/train/{bmm,linear,ln,softmax,elem}.csv; in NeuSight's snapshot "
    "(commit 6945927) the AMD GEMM training data (dataset_amd/train/bmm.csv, linear.csv and collect/{bmm,linear}/p2.4.1/"
    "*.csv) are listed in the tree but their blobs are absent, so the BMM and LINEAR predictors (every GEMM of these "
    "models) cannot be trained from the released data; the NVIDIA predictor (MLP_WAVE) is not NeuSight's method for AMD"
)
SWITCH_REASON = (
    "the Switch Transformer (encoder-decoder mixture of experts) fits no mtap workload, so it cannot be a "
    "tool-run case; NeuSight also traces it whole (single_layer=False), and tracing switchxl4-inf-512-1 on CPU reached "
    "21 GB resident within 70 s (stopped: more than the 10 GB this machine spares)"
)


def kind_of(tag: str) -> str:
    t = parse_tag(tag)
    if t is None:
        return "unknown"
    if t.variant == "fusion":
        return "fusion"
    if t.variant:
        return "distributed"
    return "inference" if t.mode == "inf" else "training"


class KernelCheckError(ValueError):
    """A training-set or operator-graph file the kernel check cannot read (one line)."""


def training_gemms(collect_dir: Path) -> dict[str, set[tuple[str, int, int, int, int]]]:
    """NeuSight device folder name -> the GEMM shapes measured on it in NeuSight's training data
    (``collect/{linear,bmm}/p2.1.0/<device>.csv``, columns B, M, N, K)."""
    out: dict[str, set[tuple[str, int, int, int, int]]] = {}
    for op in ("linear", "bmm"):
        files = sorted((collect_dir / op).glob("*/*.csv"))
        if not files:
            raise KernelCheckError(f"{collect_dir / op}: no training CSV (expected <version>/<device>.csv)")
        for f in files:
            shapes = out.setdefault(f.stem.replace(" ", "_"), set())
            try:
                with f.open(newline="", encoding="utf-8") as fh:
                    for r in csv.DictReader(fh):
                        shapes.add((op, int(r["B"]), int(r["M"]), int(r["N"]), int(r["K"])))
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                raise KernelCheckError(f"{f}: not a NeuSight kernel table with integer B, M, N, K ({exc})") from None
    return out


def graph_gemms(opgraph: Path) -> set[tuple[str, int, int, int, int]]:
    """The GEMM shapes NeuSight predicts for one configuration: its parsed operator graph's Linear (B = 1, M, N, K)
    and BMM (B, M, N, K) operations, forward, backward and accumulation (NeusightPredictor.predict_phase)."""
    shapes = set()
    try:
        with opgraph.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                for col in ("FwOps", "BwOps", "AccOps"):
                    for name, args in ast.literal_eval(r[col]):
                        if name == "Linear":
                            shapes.add(("linear", 1, *map(int, args)))
                        elif name == "BMM":
                            shapes.add(("bmm", *map(int, args)))
    except (OSError, KeyError, ValueError, SyntaxError, TypeError) as exc:
        raise KernelCheckError(f"{opgraph}: not a NeuSight operator graph ({exc})") from None
    return shapes


def kernel_check(rows: list[dict[str, Any]], collect_dir: Path, opgraph_dir: Path) -> dict[str, Any]:
    """Adds to each row how many of its GEMM shapes NeuSight's training data measured on that GPU and on any GPU:
    whether a scored configuration's kernels were seen in training, not only its end-to-end label."""
    train = training_gemms(collect_dir)
    every = set().union(*train.values())
    checked = 0
    for r in rows:
        graph = opgraph_dir / f"{r['tag']}.csv"
        if not graph.is_file():
            continue
        shapes = graph_gemms(graph)
        r["gemm_shapes"] = len(shapes)
        r["gemm_shapes_in_training_set_same_gpu"] = len(shapes & train.get(r["device"], set()))
        r["gemm_shapes_in_training_set_any_gpu"] = len(shapes & every)
        checked += 1
    return {
        "training_data": {d: len(s) for d, s in sorted(train.items())},
        "configurations_checked": checked,
        "gemm_shapes": sum(r.get("gemm_shapes", 0) for r in rows),
        "gemm_shapes_in_training_set_same_gpu": sum(r.get("gemm_shapes_in_training_set_same_gpu", 0) for r in rows),
        "gemm_shapes_in_training_set_any_gpu": sum(r.get("gemm_shapes_in_training_set_any_gpu", 0) for r in rows),
    }


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Our APE vs published APE over the rows that have both, with the spread of ours."""
    scored = [r for r in rows if "ours_ape" in r and "published_ape" in r]
    ours = [r["ours_ape"] for r in scored]
    return {
        "predicted": len(rows),
        "labelled": len(scored),
        "ours_mean_ape": _mean(ours),
        "ours_median_ape": statistics.median(ours) if ours else None,
        "ours_min_ape": min(ours) if ours else None,
        "ours_max_ape": max(ours) if ours else None,
        "published_mean_ape": _mean([r["published_ape"] for r in scored]),
        "published_max_ape": max((r["published_ape"] for r in scored), default=None),
        "mean_abs_ours_vs_published": _mean([abs(r["ours_vs_published"]) for r in rows if "ours_vs_published" in r]),
    }


def _unscored_reason(device: str, tag: str, case: dict[str, Any] | None) -> tuple[str, str]:
    if case is not None:
        err = case.get("error") or {}
        return case["status"], f"{err.get('kind', '')}: {err.get('message', '')}".strip(": ")
    t = parse_tag(tag)
    if device.startswith("AMD_"):
        return "unsupported", AMD_REASON
    if t is not None and t.model in UNMAPPED_MODELS:
        return "unsupported", SWITCH_REASON
    if t is None or t.model not in MODELS:
        return "unsupported", f"tag {tag!r}: model maps onto no mtap workload"
    return "not-planned", "not in this document's configuration"


def compare(doc: dict[str, Any], artifact_dir: Path, kernels: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """``kernels``: (NeuSight's ``dataset/train/collect`` folder, a folder of the configurations' parsed operator
    graphs, e.g. ``--trace-cache``/opgraph): also count the scored configurations' GEMM shapes in the training data."""
    rows = []
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for case in doc["cases"]:
        p = case.get("parameters") or {}
        if "neusight_tag" not in p or "neusight_device" not in p:
            continue
        by_pair[(p["neusight_device"], p["neusight_tag"])] = case
        if case["status"] != "ok":
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
        row = {
            "device": device,
            "tag": tag,
            "kind": kind_of(tag),
            "ours_ms": ours,
            "published_ms": theirs,
            "label_ms": label,
            "gpu_in_training_set": device in TRAINING_GPUS,
        }
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
        per_gpu.append({"device": device, "gpu_in_training_set": device in TRAINING_GPUS, **_stats(rs)})
    per_kind = [
        {"kind": k, **_stats([r for r in rows if r["kind"] == k])}
        for k in ("inference", "training", "fusion", "distributed")
        if any(r["kind"] == k for r in rows)
    ]
    per_gpu_kind = [
        {"device": d, "kind": k, **_stats(rs)}
        for d in sorted({r["device"] for r in rows})
        for k in ("inference", "training", "fusion", "distributed")
        if (rs := [r for r in rows if r["device"] == d and r["kind"] == k])
    ]
    scored = {(r["device"], r["tag"]) for r in rows if "ours_ape" in r}
    unscored = []
    label_root = artifact_dir / "label"
    for folder in sorted(p for p in label_root.iterdir() if p.is_dir()) if label_root.is_dir() else []:
        for label in sorted(folder.glob("*.json")):
            if (folder.name, label.stem) in scored:
                continue
            status, reason = _unscored_reason(folder.name, label.stem, by_pair.get((folder.name, label.stem)))
            unscored.append({"device": folder.name, "tag": label.stem, "kind": kind_of(label.stem), "status": status, "reason": reason})
    total = {**_stats(rows), "labels_in_artifact": len(scored) + len(unscored), "unscored": len(unscored)}
    out = {"rows": rows, "per_gpu": per_gpu, "per_kind": per_kind, "per_gpu_kind": per_gpu_kind, "total": total, "unscored": unscored}
    if kernels is not None:
        out["kernel_check"] = kernel_check(rows, *kernels)
    return out


def _f(x: float | None, fmt: str = "{:.1f} %") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _spread(g: dict[str, Any]) -> str:
    if g["ours_median_ape"] is None:
        return "–"
    return f"{g['ours_median_ape']:.1f} / {g['ours_min_ape']:.1f}–{g['ours_max_ape']:.1f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| GPU | kernels in NeuSight's training set | predicted | labelled | our mean APE | ours: median / min–max | "
        "published mean APE (same configs) | mean \\|ours − published\\| |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in result["per_gpu"]:
        lines.append(
            f"| {g['device']} | {'yes' if g['gpu_in_training_set'] else 'no (held out)'} | {g['predicted']} | "
            f"{g['labelled']} | {_f(g['ours_mean_ape'])} | {_spread(g)} | {_f(g['published_mean_ape'])} | "
            f"{_f(g['mean_abs_ours_vs_published'])} |"
        )
    t = result["total"]
    lines.append(
        f"| **all** | | {t['predicted']} | {t['labelled']} | {_f(t['ours_mean_ape'])} | {_spread(t)} | "
        f"{_f(t['published_mean_ape'])} | {_f(t['mean_abs_ours_vs_published'])} |"
    )
    if result.get("per_kind"):
        lines += [
            "",
            "| kind | predicted | labelled | our mean APE | ours: median / min–max | published mean APE | mean \\|ours − published\\| |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in result["per_kind"]:
            lines.append(
                f"| {g['kind']} | {g['predicted']} | {g['labelled']} | {_f(g['ours_mean_ape'])} | {_spread(g)} | "
                f"{_f(g['published_mean_ape'])} | {_f(g['mean_abs_ours_vs_published'])} |"
            )
    if result.get("unscored"):
        counts: dict[tuple[str, str], int] = {}
        for u in result["unscored"]:
            counts[(u["status"], u["reason"])] = counts.get((u["status"], u["reason"]), 0) + 1
        lines += ["", f"{t['labels_in_artifact']} labels in the artifact, {t['labelled']} scored, {t['unscored']} not:"]
        for (status, reason), n in sorted(counts.items(), key=lambda kv: -kv[1]):
            lines.append(f"- {n} {status}: {reason}")
    if result.get("kernel_check"):
        k = result["kernel_check"]
        lines += [
            "",
            f"GEMM shapes of {k['configurations_checked']} configurations ({k['gemm_shapes']} shape-configuration pairs): "
            f"{k['gemm_shapes_in_training_set_same_gpu']} measured on the same GPU in NeuSight's training data, "
            f"{k['gemm_shapes_in_training_set_any_gpu']} on any of its training GPUs.",
        ]
    return "\n".join(lines)
