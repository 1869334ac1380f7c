"""The W5 cross-tool tables: every tool that predicts the ground truth's own Llama-2-7B prefill and
decode keys, side by side on the same cases of each GPU (issue 30).

Only pairs whose measurement is the CUDA-graph ``device`` latency, and only the cases that every
tool in the table predicted, so each tool is scored on the same computations: a tool that
predicts fewer cases is listed with its own n in the per-tool table, never silently averaged over
a different subset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from .fidelity import _seed, interval
from .tables import Table

#: the static W5 computations (batch 1 prefill over t tokens; one decode step of b sequences at kv)
W5_KEY = r"^llama2-7b\.(prefill\.b1\.t\d+|decode\.b\d+\.kv\d+)\.fp16$"
TIMING = "device"
METRIC = "latency"


def w5_pairs(errors: pl.DataFrame) -> pl.DataFrame:
    """The latency pairs of the static W5 keys against device-timed measurements, one per tool and case."""
    if errors.is_empty():
        return errors
    return (
        errors.filter(pl.col("key").str.contains(W5_KEY) & (pl.col("measured_timing") == TIMING)
                      & (pl.col("metric") == METRIC))
        .select("tool", "hardware", "key", "predicted", "measured", "measured_spread", "ape_percent", "reference_class")
        .unique(subset=["tool", "hardware", "key"], keep="first", maintain_order=True)
        .sort("hardware", "tool", "key")
    )


def _order(key: str) -> tuple[int, int, int]:
    parts = key.split(".")
    if parts[1] == "prefill":
        return (0, int(parts[3][1:]), 0)
    return (1, int(parts[2][1:]), int(parts[3][2:]))


def _summary_row(hw: str, tool: str, sel: pl.DataFrame, common: int) -> list[str]:
    ape = np.asarray(sel["ape_percent"].to_list(), dtype=float)
    ratio = np.asarray((sel["predicted"] / sel["measured"]).to_list(), dtype=float)
    ci = interval(ape, "mape", _seed("w5-cross-tool", hw, tool))
    geo = math.exp(float(np.log(np.maximum(ape, 1e-9)).mean()))
    within = float((ape <= 10 + 1e-9).mean() * 100)
    classes = ", ".join(sorted(set(sel["reference_class"].to_list())))
    return [hw, tool, f"{len(ape)}" + ("" if len(ape) == common else f" of {common}"), f"{ape.mean():.1f}%",
            "—" if ci is None else f"{ci[0]:.1f}–{ci[1]:.1f}%", f"{geo:.1f}%", f"{within:.0f}%",
            f"{ratio.mean():.2f} ({ratio.min():.2f}–{ratio.max():.2f})", classes]


def w5_cross_tool(errors: pl.DataFrame) -> list[Table]:
    """Two tables: per GPU and tool, the scores on the W5 keys; per case, each tool's predicted/measured."""
    pairs = w5_pairs(errors)
    summary: list[list[str]] = []
    per_case: list[list[str]] = []
    tools_all: list[str] = sorted(set(pairs["tool"].to_list())) if not pairs.is_empty() else []
    for hw in sorted(set(pairs["hardware"].to_list())) if not pairs.is_empty() else []:
        mine = pairs.filter(pl.col("hardware") == hw)
        keys = sorted(set(mine["key"].to_list()), key=_order)
        by_tool = {t: mine.filter(pl.col("tool") == t) for t in tools_all}
        for tool in tools_all:
            if not by_tool[tool].is_empty():
                summary.append(_summary_row(hw, tool, by_tool[tool], len(keys)))
        lookup: dict[tuple[str, str], dict[str, Any]] = {(r["tool"], r["key"]): r for r in mine.to_dicts()}
        for key in keys:
            measured = next(r for (t, k), r in lookup.items() if k == key)
            spread = measured["measured_spread"]
            row = [hw, key, f"{measured['measured']:.4g}", "—" if spread is None else f"{spread * 100:.1f}%"]
            for tool in tools_all:
                r = lookup.get((tool, key))
                row.append("—" if r is None else f"{r['predicted'] / r['measured']:.2f}")
            per_case.append(row)
    notes = [
        "Cases: the ground truth's own Llama-2-7B fp16 keys (prefill b1 over t tokens; one decode step of b sequences "
        "at kv cached tokens), one GPU, measured as CUDA-graph device latency (groundtruth h100-x1 / h200-x1).",
        "n: the cases the tool predicted of those measured on the GPU (\"k of N\" when it predicted fewer); MAPE with a "
        "seeded 95 % bootstrap interval; geomean error; share within ±10 %; mean predicted/measured (min–max).",
        "reference: how independent the measurement is of the tool (calibrated-separately: the tool used a profile or "
        "database of the same GPU model that is not the scored cases — VIDUR our operator profile, AIConfigurator "
        "NVIDIA's per-operator database; analytical-floor a launch floor measured on the GPU).",
    ]
    table_summary = Table(
        "w5-cross-tool",
        "W5 cross-tool: each tool on the ground truth's Llama-2-7B prefill and decode cases, per GPU",
        ["GPU", "tool", "n", "MAPE", "95% CI", "geomean", "within ±10%", "pred/meas", "reference"],
        summary, notes)
    table_cases = Table(
        "w5-cross-tool-cases",
        "W5 cross-tool, per case: measured device latency (ms, spread) and each tool's predicted/measured",
        ["GPU", "case", "measured (ms)", "spread", *tools_all],
        per_case, ["spread: the measurement's (p90 − p10) / median over its repeats.",
                   "A ratio below 1 is an under-prediction; — the tool has no prediction for the case."])
    return [table_summary, table_cases]
