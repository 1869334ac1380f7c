"""Read ZigZag's per-layer result file (``<layer>_complete.json``, written by its
CompleteSaveStage) into the figures mtap reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class ResultParseError(ValueError):
    """The result file lacks a field ZigZag writes for every evaluated layer."""


@dataclass
class LayerResult:
    cycles: float  # computation + data on-loading + data off-loading
    energy_pj: float
    utilization: float  # MAC utilization including every stall
    macs: int
    spatial_mapping: str


def _get(doc: dict, path: str, source: str):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ResultParseError(f"{source}: no field {path}")
        node = node[part]
    return node


def parse_complete(path: Path) -> LayerResult:
    source = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultParseError(f"{source}: unreadable: {exc}") from None
    latency = _get(doc, "outputs.latency", source)
    cycles = sum(float(latency[k]) for k in ("data_onloading", "computation", "data_offloading"))
    macs = 1
    for size in _get(doc, "inputs.layer.loop_dimensions", source).values():
        macs *= int(size)
    # The unrolling ZigZag actually used (after trimming the mapping file's to the array and
    # the layer), e.g. "(K, 12)" and "(C, 3)" at the output operand's array level.
    levels = _get(doc, "inputs.spatial_mapping.O", source)
    spatial = " ".join(str(u).strip("()").replace(", ", "") for level in levels for u in level)
    return LayerResult(
        cycles=cycles,
        energy_pj=float(_get(doc, "outputs.energy.energy_total", source)),
        utilization=float(_get(doc, "outputs.spatial.mac_utilization.stalls_onloading_offloading", source)),
        macs=macs,
        spatial_mapping=spatial,
    )
