"""Compute → system: ASTRA-sim's training steps, compute vs total vs exposed communication.

Training-step keys (schemas/README.md): ``resnet50.ddp-step.n<N>.b<B>.<dtype>``; metrics
``latency`` (total), ``compute_time`` and ``exposed_communication`` in time units.
"""

from __future__ import annotations

import re

import polars as pl

from .layers import _measured

#: the NPU count of a training-step key; the model before it may hold dots (``llama-3.1-8b.ddp-step.n2.b1.fp16``)
STEP = re.compile(r"\.ddp-step\.n(\d+)\.")


def compute_to_system(frame: pl.DataFrame) -> list[dict]:
    steps = frame.filter(pl.col("key").str.contains(r"\.ddp-step\.n\d+\."))
    measured = _measured(steps)
    predicted = steps.filter(pl.col("kind") == "prediction")
    wide = (
        predicted.filter(pl.col("metric").is_in(["latency", "compute_time", "exposed_communication"]))
        .group_by(["tool", "hardware", "key", "case"])
        .agg(*[pl.col("ms").filter(pl.col("metric") == m).first().alias(m) for m in ("latency", "compute_time", "exposed_communication")])
        .filter(pl.col("latency").is_not_null())
        .join(measured, on=["hardware", "key"], how="left")
        .sort(["tool", "hardware", "key", "case"])
    )
    out = []
    for r in wide.iter_rows(named=True):
        total, compute, exposed = r["latency"], r["compute_time"], r["exposed_communication"]
        meas = r["measured_ms"]
        out.append({
            "tool": r["tool"],
            "hardware": r["hardware"],
            "key": r["key"],
            "case": r["case"],
            "npus": int(STEP.search(r["key"]).group(1)),
            "total_ns": total * 1e6,
            "compute_ns": None if compute is None else compute * 1e6,
            "exposed_communication_ns": None if exposed is None else exposed * 1e6,
            "exposed_fraction": (exposed / total) if (exposed is not None and total) else None,
            "system_over_compute": (total / compute) if compute else None,
            "measured_ms": meas,
            "measured_timing": r["measured_timing"],
            "ape_percent": abs(total - meas) / meas * 100 if meas else None,
        })
    return out
