"""Batch → request: a serving simulator's batch-time error composed into request latency.

Batch level: the tool's predicted time of each distinct batch composition (keys
``<model>.batch.<composition>.<dtype>``, e.g. vidur-runner's ``vidur-batches`` document) against
the GPU-measured batch of the same key (groundtruth suite replay), device time preferred: mean
APE per tool and hardware. Request level: per simulated case, the tool's request metrics against
the same case's ``replayed`` timeline (its schedule re-run with the measured batch times; backend
``replayed``, same hardware and key), device timing.
"""

from __future__ import annotations

import math

import polars as pl

from .layers import _measured

#: request-level metrics compared (ms after loading)
REQUEST_METRICS = ("ttft_p50", "ttft_p99", "tpot_p50", "e2e_latency_p50", "e2e_latency_p99", "makespan")


def batch_to_request(frame: pl.DataFrame) -> list[dict]:
    batches = frame.filter(pl.col("key").str.contains(r"\.batch\."))
    measured = _measured(batches)
    predicted = batches.filter((pl.col("kind") == "prediction") & (pl.col("metric") == "latency") & (pl.col("backend") != "replayed"))
    # the mean over sorted values with math.fsum: the same bytes on every run (a parallel sum is not)
    per_hw = (
        predicted.join(measured, on=["hardware", "key"], how="inner")
        .with_columns(((pl.col("ms") - pl.col("measured_ms")).abs() / pl.col("measured_ms") * 100).alias("ape"))
        .group_by(["tool", "hardware"])
        .agg(pl.len().alias("batch_pairs"), pl.col("ape").sort().alias("apes"))
        .with_columns(pl.col("apes").map_elements(lambda xs: math.fsum(xs) / len(xs), return_dtype=pl.Float64).alias("batch_mape_percent"))
        .drop("apes")
    )
    if per_hw.is_empty():
        return []
    replayed = frame.filter((pl.col("backend") == "replayed") & (pl.col("kind") == "measurement") & (pl.col("timing") == "device")
                            & pl.col("metric").is_in(REQUEST_METRICS))
    requests = (
        frame.filter((pl.col("kind") == "prediction") & (pl.col("backend") != "replayed") & pl.col("metric").is_in(REQUEST_METRICS))
        .join(per_hw, on=["tool", "hardware"], how="inner")
        .join(replayed.select("hardware", "key", "metric", pl.col("ms").alias("replayed_ms"), pl.col("timing").alias("measured_timing")),
              on=["hardware", "key", "metric"], how="inner")
        .sort(["tool", "hardware", "case", "metric"])
    )
    out = []
    for r in requests.iter_rows(named=True):
        ape = abs(r["ms"] - r["replayed_ms"]) / r["replayed_ms"] * 100 if r["replayed_ms"] else None
        mape = r["batch_mape_percent"]
        out.append({
            "tool": r["tool"], "hardware": r["hardware"], "key": r["key"], "case": r["case"],
            "batch_pairs": int(r["batch_pairs"]), "batch_mape_percent": mape, "metric": r["metric"],
            "predicted_ms": r["ms"], "replayed_ms": r["replayed_ms"], "measured_timing": f"{r['measured_timing']} (replayed)",
            "ape_percent": ape, "amplification": (ape / mape) if (ape is not None and mape) else None,
        })
    return out
