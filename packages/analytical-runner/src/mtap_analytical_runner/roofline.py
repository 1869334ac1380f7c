"""The roofline: per operator, latency = max(FLOPs / peak FLOP/s, bytes / memory bandwidth).

Peaks and bandwidth are the datasheet figures of ``data/hardware/hardware.json``. The peak an
operator gets depends on the dtype it computes in and the case's precision:

* fp16 (and bf16) operators use the tensor-core fp16 (bf16) peak;
* fp32 operators use the fp32 (CUDA-core) peak in ``fp32`` cases and the TF32 tensor-core peak
  in ``tf32`` cases (the same fp32 tensors: TF32 changes the math, not the bytes);
* operators without FLOPs (element-wise, normalisation, pooling, copies) take bytes / bandwidth.

A computation's latency is the sum over its operators (no overlap, no fusion, no launch
overhead). Its bound is ``compute`` when operators whose FLOP time exceeds their byte time
make up at least half of its latency, else ``memory``.

The second variant ("roofline + per-kernel floor", tool ``analytical-floor``) takes each
operator as one kernel and gives it max(roofline time, floor), where the floor is the measured
device time per CUDA-graph node of the smallest kernel of its class on that GPU (groundtruth's
``--suite floor``): ``floor.mm-16.graph`` for operators with FLOPs (GEMMs, convolutions,
attention), ``floor.add-1.graph`` for the rest (element-wise, normalisation, pooling, copies).
The pure roofline's numbers are computed exactly as without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .trace import Op

PRECISIONS = ("fp32", "tf32", "fp16")


@dataclass(frozen=True)
class Hardware:
    id: str
    name: str
    peak_flops: dict[str, float]  # FLOP/s by dtype key (fp32, tf32, fp16, bf16, ...)
    bandwidth: float  # bytes/s

    @classmethod
    def from_catalog(cls, entry: dict[str, Any]) -> Hardware:
        return cls(
            id=entry["id"],
            name=entry["name"],
            peak_flops={k: float(v) for k, v in entry.get("peak_flops", {}).items() if v},
            bandwidth=float((entry.get("memory") or {}).get("bandwidth_bytes_per_s") or 0.0),
        )


def peak_key(op_dtype: str | None, precision: str) -> str:
    """The hardware.json peak_flops key an operator computing in ``op_dtype`` uses."""
    if op_dtype == "fp32" and precision == "tf32":
        return "tf32"
    return op_dtype or precision


@dataclass(frozen=True)
class Floor:
    """Per-kernel floors of one GPU in seconds, and where each value was read."""

    gemm_s: float  # operators with FLOPs
    other_s: float  # operators without FLOPs
    gemm_source: str
    other_source: str

    def of(self, op: Op) -> float:
        return self.gemm_s if op.flops else self.other_s


@dataclass(frozen=True)
class Estimate:
    flops: int
    bytes: int
    latency_s: float
    compute_s: float  # sum of FLOPs / peak
    memory_s: float  # sum of bytes / bandwidth
    compute_bound_share: float  # share of latency from operators whose FLOP time dominates
    operators: int
    peak_flops: float | None  # the peak most of the counted FLOPs used (None if none were counted)
    floor_latency_s: float | None = None  # sum over operators of max(roofline, floor) (with a floor)
    floored: int = 0  # operators whose floor exceeded their roofline time

    @property
    def bound(self) -> str:
        return "compute" if self.compute_bound_share >= 0.5 else "memory"

    @property
    def arithmetic_intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


def op_latency(op: Op, hw: Hardware, precision: str) -> tuple[float, float, float]:
    """(latency, FLOP time, byte time) of one operator in seconds."""
    memory_s = op.bytes / hw.bandwidth
    compute_s = 0.0
    if op.flops:
        key = peak_key(op.dtype, precision)
        if key not in hw.peak_flops:
            raise KeyError(f"{hw.id} has no peak_flops.{key} in the hardware catalog")
        compute_s = op.flops / hw.peak_flops[key]
    return max(compute_s, memory_s), compute_s, memory_s


def estimate(ops: Iterable[Op], hw: Hardware, precision: str, floor: Floor | None = None) -> Estimate:
    flops = nbytes = count = floored = 0
    latency = compute = memory = compute_bound = floor_latency = 0.0
    peaks: dict[float, int] = {}
    for op in ops:
        lat, c, m = op_latency(op, hw, precision)
        if floor is not None:
            f = floor.of(op)
            floor_latency += max(lat, f)
            floored += f > lat
        flops += op.flops
        nbytes += op.bytes
        latency += lat
        compute += c
        memory += m
        count += 1
        if c > m:
            compute_bound += lat
        if op.flops:
            peak = hw.peak_flops[peak_key(op.dtype, precision)]
            peaks[peak] = peaks.get(peak, 0) + op.flops
    return Estimate(
        flops=flops,
        bytes=nbytes,
        latency_s=latency,
        compute_s=compute,
        memory_s=memory,
        compute_bound_share=compute_bound / latency if latency else 0.0,
        operators=count,
        peak_flops=max(peaks, key=lambda p: (peaks[p], p)) if peaks else None,
        floor_latency_s=floor_latency if floor is not None else None,
        floored=floored,
    )
