"""ASTRA-sim's configuration files, generated from data/hardware and a case (never copied
from an ASTRA-sim checkout).

- network YAML (analytical backend): ``topology``, ``npus_count``, ``bandwidth`` (GB/s with
  GB = 2^30 bytes, as the analytical backend reads it), ``latency`` (ns); one entry per
  dimension (one dimension here).
- system JSON: collective algorithms and the scheduler settings of ASTRA-sim's published
  HGX-H100 validated configuration (LIFO, endpoint delay 10, 2 active chunks per dimension,
  4 dataset splits, localBWAware); ``local-mem-bw`` in GB/s from the hardware's memory bandwidth.
- remote memory JSON: no memory expansion.
"""

from __future__ import annotations

import json
from typing import Any

GIB = 1 << 30

#: Scheduler settings of ASTRA-sim's examples/system/native_collectives/HGX-H100-validated.json.
SYSTEM_DEFAULTS: dict[str, Any] = {
    "scheduling-policy": "LIFO",
    "endpoint-delay": 10,
    "active-chunks-per-dimension": 2,
    "preferred-dataset-splits": 4,
    "collective-optimization": "localBWAware",
    "boost-mode": 0,
}

TOPOLOGIES = {"switch": "Switch", "ring": "Ring", "fullyconnected": "FullyConnected", "fully-connected": "FullyConnected"}


def link_bandwidth_gbps(topology: str, npus: int, injection_bytes_per_s: float) -> float:
    """Per-link bandwidth in ASTRA-sim GB/s (2^30 B/s) that gives every NPU the hardware's
    injection bandwidth: a Switch link carries all of it, each of a bidirectional Ring's two
    links half, each of a FullyConnected NPU's n-1 links 1/(n-1)."""
    per_npu = injection_bytes_per_s / GIB
    if topology == "Switch":
        return per_npu
    if topology == "Ring":
        return per_npu / 2
    if topology == "FullyConnected":
        return per_npu / max(npus - 1, 1)
    raise ValueError(f"unknown topology {topology!r}")


def network_yaml(topology: str, npus: int, bandwidth_gbps: float, latency_ns: float) -> str:
    return (
        f"topology: [ {topology} ]\n"
        f"npus_count: [ {npus} ]\n"
        f"bandwidth: [ {_num(bandwidth_gbps)} ]  # GB/s (2^30 bytes/s)\n"
        f"latency: [ {_num(latency_ns)} ]  # ns\n"
    )


def system_json(algorithm: str, local_mem_bw_gbps: float, all_to_all_algorithm: str | None = None) -> str:
    """All collectives use ``algorithm`` (doubleBinaryTree exists for all-reduce only: the
    others then use ring)."""
    other = algorithm if algorithm != "doubleBinaryTree" else "ring"
    doc = dict(SYSTEM_DEFAULTS)
    doc.update(
        {
            "all-reduce-implementation": [algorithm],
            "all-gather-implementation": [other],
            "reduce-scatter-implementation": [other],
            "all-to-all-implementation": [all_to_all_algorithm or other],
            "local-mem-bw": _num(local_mem_bw_gbps),
        }
    )
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def memory_json() -> str:
    return json.dumps({"memory-type": "NO_MEMORY_EXPANSION"}, indent=2) + "\n"


def _num(x: float) -> float | int:
    """Integral floats as ints (``400`` not ``400.0``); others with repr precision."""
    return int(x) if float(x).is_integer() else float(x)
