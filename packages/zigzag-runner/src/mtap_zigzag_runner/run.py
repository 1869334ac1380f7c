"""Run the planned cases through ZigZag's API and turn its results into tool-run v1 cases."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .cases import HARDWARE, Case
from .layers import Layer
from .parse import LayerResult, ResultParseError, parse_complete
from .workload import zigzag_layer

# ZigZag's own settings, fixed: LOMA temporal-mapping search (exhaustive over loop-prime-factor
# orderings, deterministic), lowest latency first, at most 3 generated spatial mappings.
SETTINGS = {"temporal_mapping_search_engine": "loma", "opt": "latency", "lpf_limit": 6,
            "nb_spatial_mappings_generated": 3}


@dataclass
class Outcome:
    result: LayerResult | None
    error: tuple[str, str] | None
    first_layer: str


def inputs_dir() -> Path:
    """zigzag/inputs/ of the installed zigzag-dse (the example hardware and mappings)."""
    return Path(str(resources.files("zigzag") / "inputs"))


def own_inputs_dir() -> Path:
    """This package's own accelerator and mapping files (the Eyeriss chip)."""
    return Path(str(resources.files("mtap_zigzag_runner") / "inputs"))


def spec_file(arch: str, part: str) -> Path:
    """The accelerator (``part="accelerator"``) or mapping file of ``arch``."""
    hw = HARDWARE[arch]
    return (own_inputs_dir() if hw.get("own") else inputs_dir()) / hw[part]


#: The Eyeriss array: 12 PEs down a column (ZigZag's D1), 14 columns (D2).
EYERISS_ROWS, EYERISS_COLS = 12, 14


def rs_mapping(layer: Layer) -> list[dict]:
    """ZigZag mapping with the chip's row-stationary unrolling (Chen et al., JSSC 2017):
    filter rows (FY) down a column and output rows (OY) across the columns form a PE set; sets
    that leave rows or columns free are replicated with more input channels (C, down the
    column, whose psums add up vertically) or more filters (K, across). ZigZag trims a factor
    that does not divide the layer."""
    d = layer.dims
    fy = min(d["S"], EYERISS_ROWS)
    oy = min(d["Q"], EYERISS_COLS)
    c = min(EYERISS_ROWS // fy, d["C"])
    k = min(EYERISS_COLS // oy, d["M"])
    d1 = [f"FY, {fy}"] * (fy > 1) + [f"C, {c}"] * (c > 1)
    d2 = [f"OY, {oy}"] * (oy > 1) + [f"K, {k}"] * (k > 1)
    spatial = {dim: units for dim, units in (("D1", d1), ("D2", d2)) if units}
    return [{"name": "default", "spatial_mapping": spatial or None,
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def _quiet_logging() -> None:
    # ZigZag calls logging.basicConfig(INFO) on every run; a root handler makes that a no-op.
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)


def run_one(case: Case) -> Outcome:
    from zigzag.api import get_hardware_performance_zigzag

    layer = case.layers[0]
    hw = HARDWARE[case.arch]
    _quiet_logging()
    with tempfile.TemporaryDirectory(prefix="mtap-zigzag-") as tmp:
        if hw["mapping"] is None:
            mapping = Path(tmp) / "mapping.yaml"
            mapping.write_text(json.dumps(rs_mapping(layer)), encoding="utf-8")  # JSON is YAML
        else:
            mapping = spec_file(case.arch, "mapping")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                get_hardware_performance_zigzag(
                    [zigzag_layer(layer, hw["precision"])], str(spec_file(case.arch, "accelerator")), str(mapping),
                    dump_folder=tmp, loma_show_progress_bar=False, **SETTINGS,
                )
        except Exception as exc:  # the tool broke on this layer: a failed case naming why
            msg = f"zigzag raised {type(exc).__name__} on {layer.name}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            return Outcome(None, ("tool-crashed", msg), layer.name)
        path = Path(tmp) / f"{layer.name}_complete.json"
        try:
            return Outcome(parse_complete(path), None, layer.name)
        except ResultParseError as exc:
            return Outcome(None, ("parse-failed", str(exc).replace(tmp, "<dump>")), layer.name)


def _metrics(r: LayerResult, clock_hz: float | None, k: int = 1) -> list[dict]:
    m = [
        {"name": "cycles", "value": r.cycles * k, "unit": "cycles", "kind": "prediction", "timing": "simulated"},
        {"name": "energy", "value": round(r.energy_pj * k / 1e6, 6), "unit": "uJ", "kind": "prediction"},
        {"name": "energy_per_mac", "value": round(r.energy_pj / r.macs, 6), "unit": "pJ/MAC", "kind": "derived"},
        {"name": "utilization", "value": round(r.utilization, 6), "unit": "1", "kind": "prediction"},
        {"name": "macs", "value": r.macs * k, "unit": "count", "kind": "prediction"},
    ]
    if clock_hz:
        m.insert(1, {"name": "latency", "value": r.cycles * k / clock_hz, "unit": "s", "kind": "derived",
                     "timing": "simulated", "source": f"cycles / clock_hz of the hardware catalog ({clock_hz:g} Hz)"})
    return m


def _total_metrics(parts: list[tuple[LayerResult, int]], clock_hz: float | None) -> list[dict]:
    cycles = sum(r.cycles * n for r, n in parts)
    energy = sum(r.energy_pj * n for r, n in parts)
    macs = sum(r.macs * n for r, n in parts)
    busy = sum(r.utilization * r.cycles * n for r, n in parts)
    m = [
        {"name": "cycles", "value": cycles, "unit": "cycles", "kind": "prediction", "timing": "simulated"},
        {"name": "energy", "value": round(energy / 1e6, 6), "unit": "uJ", "kind": "prediction"},
        {"name": "energy_per_mac", "value": round(energy / macs, 6), "unit": "pJ/MAC", "kind": "derived"},
        {"name": "utilization", "value": round(busy / cycles, 6), "unit": "1", "kind": "derived"},
        {"name": "macs", "value": macs, "unit": "count", "kind": "prediction"},
    ]
    if clock_hz:
        m.insert(1, {"name": "latency", "value": cycles / clock_hz, "unit": "s", "kind": "derived",
                     "timing": "simulated", "source": f"cycles / clock_hz of the hardware catalog ({clock_hz:g} Hz)"})
    return m


def execute(cases: list[Case], artifacts: dict[str, list[dict]], clocks: dict[str, float | None],
            progress: Callable[[Case], None] | None = None) -> list[dict]:
    """Run each distinct (accelerator, layer shape) once and build every case from the runs."""
    outcomes: dict[tuple, Outcome] = {}
    for case in cases:
        if case.kind == "total":
            continue
        ident = (case.arch, case.layers[0].shape)
        if ident not in outcomes:
            outcomes[ident] = run_one(case)
        if progress:
            progress(case)

    docs = []
    for case in cases:
        doc = {"id": case.id, "key": case.key, "workload": case.workload, "hardware": case.hardware,
               "parameters": dict(case.parameters), "status": "ok", "error": None, "metrics": [],
               "artifacts": artifacts[case.arch]}
        if case.kind == "total":
            parts, failed = [], []
            for la in case.layers:
                out = outcomes.get((case.arch, la.shape))
                if out is None or out.result is None:
                    failed.append(la.name)
                else:
                    parts.append((out.result, la.repeats * la.instances))
            if failed:
                doc.update(status="failed", error={"kind": "incomplete", "message": f"no result for layer(s) {', '.join(failed)}"})
            else:
                doc["metrics"] = _total_metrics(parts, clocks.get(case.hardware))
        else:
            out = outcomes[(case.arch, case.layers[0].shape)]
            if out.first_layer != case.layers[0].name:
                doc["parameters"]["same_problem_as"] = out.first_layer
            if out.result is None:
                kind, message = out.error  # type: ignore[misc]
                doc.update(status="failed", error={"kind": kind, "message": message})
            else:
                doc["parameters"]["spatial_mapping"] = out.result.spatial_mapping
                doc["metrics"] = _metrics(out.result, clocks.get(case.hardware), case.layers[0].instances)
        docs.append(doc)
    return docs
