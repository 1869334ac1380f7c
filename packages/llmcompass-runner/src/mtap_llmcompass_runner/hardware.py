"""LLMCompass hardware descriptions of the GPUs we measured.

LLMCompass (at the pinned commit) ships no H100 or H200 description: ``configs/`` has GA100.json
(4 x A100 80GB, the authors' validated GPU), mi210.json, TPU-like and design-space templates. The
H100/H200 descriptions are therefore built here from the tool's own GA100.json (read from the
checkout at run time) with the datasheet figures of data/hardware/hardware.json put in where the
catalog has them; every other field is kept from the A100 template. :func:`describe` returns the
description and, per field, where its value comes from; both are recorded in every case.

How the catalog figures map onto LLMCompass's fields (its ``template_to_system``):

* ``device.frequency_Hz`` = catalog ``clock_hz``
* ``compute_chiplet.core_count`` (and ``physical_core_count``) = catalog ``compute_units`` (SMs)
* ``systolic_array.mac_per_cycle`` = catalog fp16 dense peak / (2 x array_height x array_width x
  sublane_count x core_count x frequency): the template's 4 x 16x16 arrays per SM kept, their rate
  scaled so the device's systolic peak equals the datasheet's (LLMCompass takes fractional values:
  its MI210 uses 0.5)
* ``io.bandwidth_per_pin_bit`` = catalog bandwidth x 8 / (memory_channel_active_count x
  pin_count_per_channel): the template's 5 x 1024 pins kept, so that LLMCompass's off-chip
  bandwidth (channels x pins x rate / 8) equals the datasheet's
* ``io.global_buffer_MB`` (and ``physical_global_buffer_MB``) = catalog ``on_chip_bytes`` / 2**20
  (LLMCompass multiplies by 1024 x 1024)
* ``memory.total_capacity_GB`` = catalog memory bytes / 2**30 (LLMCompass multiplies by 1024**3)
* ``device_count`` = 1 and ``name``: ours (one GPU, no tensor parallelism; the interconnect is unused)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TEMPLATE = "configs/GA100.json"
CATALOG = "data/hardware/hardware.json"


def _get(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        d = d[part]
    return d


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        d = d[part]
    d[last] = value


def _leaves(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if k.startswith("_"):
            continue
        p = f"{prefix}{k}"
        out += _leaves(v, p + ".") if isinstance(v, dict) else [p]
    return out


def describe(template: dict[str, Any], entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(LLMCompass architecture description, field -> source) for one catalog ``entry``."""
    spec = copy.deepcopy(template)
    hw = entry["id"]
    cat = f"{CATALOG}#{hw}"
    sources = {f: f"kept from LLMCompass {TEMPLATE} (A100 template)" for f in _leaves(spec)}
    dev = "device.compute_chiplet"
    clock = float(entry["clock_hz"])
    cores = int(entry["compute_units"])
    sa = _get(spec, f"{dev}.core.systolic_array")
    sublanes = _get(spec, f"{dev}.core.sublane_count")
    peak = float(entry["peak_flops"]["fp16"])
    mac = peak / (2 * sa["array_height"] * sa["array_width"] * sublanes * cores * clock)
    io = spec["device"]["io"]
    pins = io["memory_channel_active_count"] * io["pin_count_per_channel"]
    bw = float(entry["memory"]["bandwidth_bytes_per_s"])
    l2_mb = float(entry["memory"]["on_chip_bytes"]) / 2**20
    values: list[tuple[str, Any, str]] = [
        ("name", f"{entry['name']} (mtap: LLMCompass GA100 template + datasheet figures)", "ours"),
        ("device_count", 1, "ours: one GPU, no tensor parallelism (the measured setting)"),
        ("device.frequency_Hz", clock, f"{cat} clock_hz"),
        (f"{dev}.core_count", cores, f"{cat} compute_units (SMs)"),
        (f"{dev}.physical_core_count", cores, f"{cat} compute_units (SMs)"),
        (
            f"{dev}.core.systolic_array.mac_per_cycle",
            mac,
            f"derived: {cat} peak_flops.fp16 {peak:g} / (2 x {sa['array_height']}x{sa['array_width']} x {sublanes} "
            f"arrays x {cores} SMs x {clock:g} Hz) (array shape and count kept from the template)",
        ),
        (
            "device.io.bandwidth_per_pin_bit",
            bw * 8 / pins,
            f"derived: {cat} memory.bandwidth_bytes_per_s {bw:g} x 8 / ({io['memory_channel_active_count']} channels x "
            f"{io['pin_count_per_channel']} pins, kept from the template)",
        ),
        ("device.io.global_buffer_MB", l2_mb, f"{cat} memory.on_chip_bytes / 2**20 (L2)"),
        ("device.io.physical_global_buffer_MB", l2_mb, f"{cat} memory.on_chip_bytes / 2**20 (L2)"),
        ("device.memory.total_capacity_GB", float(entry["memory"]["bytes"]) / 2**30, f"{cat} memory.bytes / 2**30"),
    ]
    for path, value, source in values:
        _set(spec, path, value)
        sources[path] = source
    return spec, dict(sorted(sources.items()))


def read_template(checkout: Path) -> dict[str, Any]:
    return json.loads((checkout / TEMPLATE).read_text())


def summary(spec: dict[str, Any]) -> dict[str, float]:
    """The figures the description gives LLMCompass (as its template_to_system computes them)."""
    dev = spec["device"]
    core = dev["compute_chiplet"]["core"]
    sa = core["systolic_array"]
    cores = dev["compute_chiplet"]["core_count"] * dev["compute_chiplet_count"]
    io = dev["io"]
    return {
        "systolic_peak_flops_per_s": 2
        * sa["array_height"]
        * sa["array_width"]
        * sa["mac_per_cycle"]
        * core["sublane_count"]
        * cores
        * dev["frequency_Hz"],
        "vector_peak_flops_per_s": core["sublane_count"]
        * core["vector_unit"]["vector_width"]
        * core["vector_unit"]["flop_per_cycle"]
        * cores
        * dev["frequency_Hz"],
        "memory_bandwidth_bytes_per_s": io["memory_channel_active_count"] * io["pin_count_per_channel"] * io["bandwidth_per_pin_bit"] / 8,
        "l2_bytes": io["global_buffer_MB"] * 2**20,
        "sram_per_core_bytes": core["SRAM_KB"] * 1024,
    }
