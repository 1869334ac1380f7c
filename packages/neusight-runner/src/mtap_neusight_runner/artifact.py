"""Artifact mode: pair every prediction in NeuSight's published artifact with the authors' label
and recompute the absolute percentage error (APE) ourselves, per device x model x method.

Layout read (``scripts/asplos/`` of a NeuSight checkout, or a copy of it)::

    label/<GPU>/<tag>.json                          the authors' measured latency (e2e_latency, ms)
    results/prediction/<GPU>/<method>/<tag>.json    a method's predicted latency (e2e_latency, ms)
    data/device_configs/<GPU>.json                  the GPU description NeuSight predicted for
    data/DLmodel_configs/<model>.json               the model description (Hugging Face format)
    summary/summary.csv                             the authors' own per-configuration errors (optional)
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtap_schemas import toolrun as tr

from .mapping import METHODS, MODELS, UNMAPPED_MODELS, Tag, case_key, hardware_id, parse_tag
from .parse import ParseError, read_latency_json, read_summary, summary_value


class ArtifactError(ValueError):
    """A malformed artifact folder: one line naming the path and what was expected."""


@dataclass
class Pair:
    """A prediction file and the label file of the same configuration; values are read when used."""

    device: str
    method: str
    tag: Tag
    prediction: Path
    label: Path

    def values(self) -> tuple[float, float]:
        """(predicted ms, label ms) as written; :class:`ParseError` for a file without a number."""
        return read_latency_json(self.prediction), read_latency_json(self.label)

    @property
    def ape(self) -> float | None:
        """|predicted - label| / label x 100; None where a file has no usable latency (its case says why)."""
        try:
            predicted, label = self.values()
        except ParseError:
            return None
        if not (math.isfinite(predicted) and math.isfinite(label)) or predicted < 0 or label <= 0:
            return None
        return abs(predicted - label) / label * 100.0


@dataclass
class Pairing:
    pairs: list[Pair] = field(default_factory=list)
    #: reason -> sorted list of "<device>/<method>/<tag>" (or "<device>/<tag>" for labels)
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def check_layout(root: Path) -> None:
    if not root.is_dir():
        raise ArtifactError(f"{root}: artifact folder not found (expected NeuSight's scripts/asplos layout: label/, results/prediction/)")
    for sub in ("label", "results/prediction", "data/device_configs"):
        if not (root / sub).is_dir():
            raise ArtifactError(
                f"{root}: no {sub}/ folder: expected NeuSight's scripts/asplos layout (label/, results/prediction/, data/device_configs/)"
            )


def devices_of(root: Path) -> list[str]:
    names = {p.name for p in (root / "label").iterdir() if p.is_dir()}
    names |= {p.name for p in (root / "results" / "prediction").iterdir() if p.is_dir()}
    return sorted(names)


def pair(
    root: Path,
    devices: list[str] | None = None,
    methods: list[str] | None = None,
    models: list[str] | None = None,
    modes: list[str] | None = None,
) -> Pairing:
    """Every (device, method, tag) prediction with its label; what could not be paired is counted."""
    check_layout(root)
    found = devices_of(root)
    for device in found:
        if not (root / "data" / "device_configs" / f"{device}.json").is_file():
            raise ArtifactError(
                f"{root / 'label' if (root / 'label' / device).is_dir() else root / 'results' / 'prediction'}/{device}: "
                f"unknown device: no data/device_configs/{device}.json describes it"
            )
    if devices is not None:
        for device in devices:
            if device not in found:
                raise ArtifactError(f"{root}: device {device!r} not in the artifact (has: {', '.join(found)})")
        found = [d for d in found if d in devices]
    want_methods = list(methods) if methods is not None else list(METHODS)
    skipped: dict[str, set[str]] = defaultdict(set)
    out = Pairing()

    def wanted(tag: Tag) -> bool:
        return (models is None or tag.model in models) and (modes is None or tag.mode in modes)

    for device in found:
        labels = {p.stem: p for p in _json_files(root / "label" / device)} if (root / "label" / device).is_dir() else {}
        method_root = root / "results" / "prediction" / device
        present = sorted(p.name for p in method_root.iterdir() if p.is_dir()) if method_root.is_dir() else []
        for method in present:
            if method not in METHODS:
                raise ArtifactError(f"{method_root / method}: unknown method folder: expected one of {', '.join(METHODS)}")
        for method in [m for m in want_methods if m in present]:
            predictions = {p.stem: p for p in _json_files(method_root / method)}
            for stem, path in sorted(predictions.items()):
                tag = parse_tag(stem)
                if tag is None:
                    skipped["unrecognised tag"].add(f"{device}/{method}/{stem}")
                    continue
                if not wanted(tag):
                    continue
                if stem not in labels:
                    skipped["prediction without label"].add(f"{device}/{method}/{stem}")
                    continue
                out.pairs.append(Pair(device, method, tag, path, labels[stem]))
            for stem in sorted(labels):
                tag = parse_tag(stem)
                if tag is not None and wanted(tag) and stem not in predictions:
                    skipped[f"label without {method} prediction"].add(f"{device}/{stem}")
        if not present:
            for stem in sorted(labels):
                tag = parse_tag(stem)
                if tag is not None and wanted(tag):
                    skipped["label without any prediction"].add(f"{device}/{stem}")
    out.pairs.sort(key=lambda p: (p.device, p.method, p.tag.text))
    out.skipped = {k: sorted(v) for k, v in sorted(skipped.items())}
    return out


def _model_parameters(root: Path, model: str) -> dict[str, Any]:
    path = root / "data" / "DLmodel_configs" / f"{model}.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: the parameters are left out
        return {}
    arch = (cfg.get("architectures") or [None])[0]
    layers = cfg.get("n_layer", cfg.get("num_hidden_layers", cfg.get("num_layers")))
    hidden = cfg.get("n_embd", cfg.get("hidden_size", cfg.get("d_model")))
    return {"architecture": arch, "model_layers": layers, "model_hidden": hidden}


@dataclass
class Unit:
    """One mapped pair and what its case needs besides the pair's files (picklable, for --jobs)."""

    root: Path
    pair: Pair
    summary_row: dict[str, str] | None

    @property
    def id(self) -> str:
        return f"artifact:{hardware_id(self.pair.device)[0]}:{self.pair.method}:{self.pair.tag.text}"

    def planned(self) -> dict[str, Any]:
        name, workload, _ = MODELS[self.pair.tag.model]
        return {"id": self.id, "workload": workload, "hardware": hardware_id(self.pair.device)[0], "key": case_key(self.pair.tag)}


def units(root: Path, pairing: Pairing) -> tuple[list[Unit], dict[str, list[str]]]:
    """A unit per pair whose model maps onto an mtap workload, in case-id order; the rest are counted."""
    summary_path = root / "summary" / "summary.csv"
    try:
        summary = read_summary(summary_path) if summary_path.is_file() else {}
    except ParseError as exc:
        raise ArtifactError(str(exc)) from None
    skipped: dict[str, set[str]] = defaultdict(set)
    out = []
    for p in pairing.pairs:
        if p.tag.model not in MODELS:
            reason = UNMAPPED_MODELS.get(p.tag.model, "model not mapped onto an mtap workload")
            skipped[f"no mtap workload ({reason})"].add(f"{p.device}/{p.method}/{p.tag.text}")
            continue
        out.append(Unit(root, p, summary.get((p.tag.model, p.tag.seq_len, p.tag.batch, p.device, p.tag.mode, p.tag.variant))))
    out.sort(key=lambda u: u.id)
    return out, {k: sorted(v) for k, v in sorted(skipped.items())}


def _metric(name: str, value: float, unit: str, kind: str, source: str, **rest: Any) -> dict[str, Any]:
    try:
        return tr.metric(name, value, unit, kind, source=source, **rest)
    except tr.InvalidValue as exc:
        raise tr.InvalidValue(f"{source}: {exc}") from None


def case_for(unit: Unit) -> dict[str, Any]:
    """The tool-run case of one pair (runs in a worker process): ok, or failed naming the file that is wrong."""
    root, p = unit.root, unit.pair
    name, workload, fit = MODELS[p.tag.model]
    hw, catalogued = hardware_id(p.device)
    own = p.method == "neusight"
    metric = "latency" if own else "baseline_latency"
    row = unit.summary_row
    reported = summary_value(row, f"{p.method}_all_e2e_err")

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    artifacts = [
        tr.artifact(path, name=rel(path)) for path in (p.label, p.prediction, root / "data" / "device_configs" / f"{p.device}.json")
    ]
    model_cfg = root / "data" / "DLmodel_configs" / f"{p.tag.model}.json"
    if model_cfg.is_file():
        artifacts.append(tr.artifact(model_cfg, name=rel(model_cfg)))
    if row is not None and reported is not None:
        artifacts.append(tr.artifact(root / "summary" / "summary.csv", name="summary/summary.csv"))
    params: dict[str, Any] = {
        "method": p.method,
        "method_is_neusight": own,
        "neusight_tag": p.tag.text,
        "neusight_device": p.device,
        "hardware_in_catalog": catalogued,
        "model": name,
        "neusight_model": p.tag.model,
        "workload_fit": fit,
        **p.tag.parameters(),
        "precision_note": "FP32, TF32 off: NeuSight sets cudnn.allow_tf32=False; cuda.matmul.allow_tf32 is PyTorch's default False",
    }
    params.update(_model_parameters(root, p.tag.model))
    where = {"workload": workload, "hardware": hw, "key": case_key(p.tag), "parameters": params, "artifacts": artifacts}
    try:
        predicted, label = p.values()
    except ParseError as exc:
        return tr.failed(unit.id, kind="parse-failed", message=str(exc), **where)
    try:
        metrics = [
            _metric(metric, predicted, "ms", "prediction", rel(p.prediction), timing="reported"),
            _metric("latency", label, "ms", "measurement", rel(p.label), timing="reported"),
            _metric(
                f"{metric}_ape",
                tr.ratio(abs(predicted - label), label, f"{rel(p.label)}: field e2e_latency (the APE's divisor)") * 100.0,
                "%",
                "derived",
                "recomputed by neusight-runner: |predicted - label| / label * 100",
            ),
        ]
        if reported is not None:
            metrics.append(
                _metric(f"{metric}_ape_reported", reported, "%", "derived", f"summary/summary.csv column {p.method}_all_e2e_err")
            )
    except tr.InvalidValue as exc:
        return tr.failed(unit.id, kind="invalid-value", message=str(exc), **where)
    return tr.ok(unit.id, metrics=metrics, **where)


def mean_ape_table(pairing: Pairing, root: Path) -> list[dict[str, Any]]:
    """Mean APE per device x method over every pair (mapped or not), next to the authors' own mean
    over the same configurations from summary/summary.csv where it has them."""
    summary_path = root / "summary" / "summary.csv"
    summary = read_summary(summary_path) if summary_path.is_file() else {}
    groups: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    for p in pairing.pairs:
        if p.ape is not None:  # a pair without a usable latency is a failed case, not a number here
            groups[(p.device, p.method)].append(p)
    rows = []
    for (device, method), pairs in sorted(groups.items()):
        ours = [p.ape for p in pairs]
        theirs = [
            summary_value(
                summary.get((p.tag.model, p.tag.seq_len, p.tag.batch, p.device, p.tag.mode, p.tag.variant)), f"{method}_all_e2e_err"
            )
            for p in pairs
        ]
        given = [t for t in theirs if t is not None]
        diffs = [abs(o - t) for o, t in zip(ours, theirs) if t is not None]
        rows.append(
            {
                "device": device,
                "method": method,
                "pairs": len(pairs),
                "mean_ape": sum(ours) / len(ours),
                "authors_pairs": len(given),
                "authors_mean_ape": sum(given) / len(given) if given else None,
                "max_abs_diff": max(diffs) if diffs else None,
                "modes": dict(Counter(p.tag.mode for p in pairs)),
            }
        )
    return rows
