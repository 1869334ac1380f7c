"""Per-layer compute times of a ResNet-50 training step, and where they come from.

Two sources, chosen per run (the choice is named in every DDP case's parameters):

- ``groundtruth``: the committed GPU measurements,
  ``data/evaluation/groundtruth/*.tool-run.json`` cases keyed
  ``resnet50.layer.<layer>.b<batch>.fp32`` (one forward call of each Conv2d/Linear) filed
  under the GPU being simulated (the node's ``device`` in data/hardware: ``H100-SXM5-80GB`` for
  HGX-H100, ``H200-SXM-141GB`` for HGX-H200; never another GPU's), metric ``latency``; device
  timing preferred. Used only when every layer is there.
- ``roofline``: forward time = max(FLOPs / peak fp32, bytes / memory bandwidth) of the
  hardware in data/hardware (FLOPs = 2 x MACs; bytes = fp32 input + output activations +
  weights).

A training step's backward is taken as twice the forward (input and weight gradients, each
one forward's FLOPs). BatchNorm, ReLU, pooling and the optimizer are not modelled.
ASTRA-sim reads compute durations in whole microseconds (Chakra ``duration_micros``), so
each node is rounded to the nearest microsecond (at least 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtap_schemas as ms
import mtap_schemas.toolrun as tr

from .resnet50 import Layer

TIME_TO_US = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
TIMING_PREFERENCE = ("device", None, "eager-end-to-end")


@dataclass(frozen=True)
class LayerTimes:
    source: str  #: "groundtruth" | "roofline"
    detail: str  #: file or formula the numbers came from
    forward_us: dict[str, float]  #: layer name -> forward time in us
    layers: tuple[Layer, ...]  #: the layer table (data/workloads/layers/resnet50.layers.json)
    sha256: str | None = None  #: of the ground-truth document the numbers came from
    document: str | None = None  #: the ground-truth document, repository-relative
    gpu: str | None = None  #: the hardware id its cases are filed under (the simulated GPU)

    def independence(self) -> dict[str, Any] | None:
        """The DDP cases' ``independence`` (tool-run 2.2): compute taken from a measurement of the
        simulated GPU is ``calibrated-separately`` (a microbenchmark of the scored hardware that is not
        the scored step); a roofline over datasheet figures declares nothing (independent)."""
        if self.source != "groundtruth" or self.document is None:
            return None
        on = f" on this {self.gpu}" if self.gpu else ""
        return tr.independence("calibrated-separately",
                               f"per-layer ResNet-50 forward compute (resnet50.layer.*) measured{on}: {self.document}")

    def step_layers(self, batch: int, dtype_bytes: int = 4) -> list[tuple[str, int, int, int, int]]:
        """(name, forward_us, backward_us, gradient_bytes, forward_flops) for traces.write_ddp_step."""
        out = []
        for layer in self.layers:
            f = self.forward_us[layer.name]
            out.append((layer.slug, max(1, round(f)), max(1, round(2 * f)), layer.params * dtype_bytes, 2 * layer.macs(batch)))
        return out


def roofline(layers: tuple[Layer, ...], hardware: dict[str, Any], batch: int, dtype: str = "fp32") -> LayerTimes:
    peak = float(hardware["peak_flops"][dtype])
    bw = float(hardware["memory"]["bandwidth_bytes_per_s"])
    times = {}
    for layer in layers:
        flops = 2 * layer.macs(batch)
        a_in, a_out = layer.activation_elements(batch)
        weights = layer.params
        nbytes = 4 * (a_in + a_out + weights)
        times[layer.name] = max(flops / peak, nbytes / bw) * 1e6
    detail = f"roofline over {hardware['id']}: max(2*MACs / {peak:.4g} FLOP/s {dtype}, fp32 bytes / {bw:.4g} B/s) x1 forward, x2 backward"
    return LayerTimes("roofline", detail, times, layers)


def gpu_of(hardware: dict[str, Any]) -> str:
    """The hardware id of one GPU of a catalog entry: a node's ``device``, else the entry itself."""
    return str(hardware.get("device") or hardware["id"])


def from_groundtruth(layers: tuple[Layer, ...], data_dir: Path, batch: int, dtype: str = "fp32",
                     gpu: str | None = None) -> LayerTimes | None:
    """Per-layer forward times from the committed ground truth, or None when any layer is missing.
    With ``gpu`` only cases filed under that hardware id count (a prediction for one GPU never
    takes another GPU's measurements); the detail names the document.
    Documents are taken in name order; one that is not a valid tool-run (v2, or v1 as groundtruth
    wrote before the kit) is passed over, whatever is wrong with it (unreadable, not UTF-8, invalid)."""
    folder = data_dir / "evaluation" / "groundtruth"
    if not folder.is_dir():
        return None
    wanted = {f"resnet50.layer.{layer.slug}.b{batch}.{dtype}": layer.name for layer in layers}
    for path in sorted(folder.glob("*.tool-run.json")):
        doc = _tool_run(path)
        if doc is None:
            continue
        found: dict[str, tuple[int, float]] = {}
        for case in doc.get("cases", []):
            name = wanted.get(case.get("key") or "")
            if name is None or case.get("status") != "ok" or (gpu is not None and case.get("hardware") != gpu):
                continue
            for m in case.get("metrics", []):
                if m.get("name") != "latency" or m.get("unit") not in TIME_TO_US:
                    continue
                timing = m.get("timing")
                rank = TIMING_PREFERENCE.index(timing) if timing in TIMING_PREFERENCE else len(TIMING_PREFERENCE)
                value = float(m["value"]) * TIME_TO_US[m["unit"]]
                if name not in found or rank < found[name][0]:
                    found[name] = (rank, value)
        if len(found) == len(wanted):
            rel = f"data/evaluation/groundtruth/{path.name}"
            timings = sorted({str(TIMING_PREFERENCE[r]) if r < len(TIMING_PREFERENCE) else "other" for r, _ in found.values()})
            detail = f"{rel} resnet50.layer.*.b{batch}.{dtype} latency ({', '.join(timings)} timing) x1 forward, x2 backward"
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            return LayerTimes("groundtruth", detail, {k: v for k, (_, v) in found.items()}, layers, sha, rel, gpu)
    return None


def _tool_run(path: Path) -> dict[str, Any] | None:
    for major in (2, 1):
        try:
            return ms.read(path, "tool-run", major)
        except ms.SchemaError:
            continue
    return None


def layer_times(choice: str, data_dir: Path, hardware: dict[str, Any], batch: int,
                layers: tuple[Layer, ...], gpu: str | None = None) -> LayerTimes:
    """``choice``: auto (ground truth when complete, else roofline), groundtruth, roofline.
    ``gpu``: take only ground truth filed under this hardware id (see :func:`from_groundtruth`)."""
    if choice in ("auto", "groundtruth"):
        gt = from_groundtruth(layers, data_dir, batch, gpu=gpu)
        if gt is not None:
            return gt
        if choice == "groundtruth":
            raise LookupError(
                f"{data_dir}/evaluation/groundtruth: no tool-run document has ok latency cases for all "
                f"{len(layers)} keys resnet50.layer.<layer>.b{batch}.fp32" + (f" filed under {gpu}" if gpu else "")
            )
    return roofline(layers, hardware, batch)
