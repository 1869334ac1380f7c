"""D1 statistics: rows of pairs with n, MAPE and a seeded bootstrap interval, and each tool's own claim
beside our figure in the claim's metric.

A row is one tool, workload, hardware, scope, measurement timing and reference class: layers are never
pooled with model totals, a replay never with a direct measurement, a tool-built reference never with
an independent one. Its unit of count is the computation (the pair's ``computation`` key): a serving
run's request latencies (p50, p90, p99, mean, TTFT, TPOT, makespan of one run) are one pair, their APEs
averaged first, so n counts runs, not correlated percentiles.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mtap_schemas.kinds import HEADLINE_CLASSES, HEADLINE_MIN_PAIRS

#: bootstrap resamples per interval, and the interval
RESAMPLES = 2000
LEVEL = 0.95
ROW_KEYS = ["tool", "workload", "hardware", "scope", "measured_timing", "reference_class"]
_MODEL = re.compile(r"^(?P<model>.+?)\.(layer|model|conv-layers|prefill|decode|batch|serving|ddp-step)\.")


def model_of(computation: str) -> str:
    """The model (or collective) a computation key names: ``gpt2-1.5b`` of ``gpt2-1.5b.model.b1.s1024.fp32``."""
    found = _MODEL.match(computation)
    return found["model"] if found else computation.split(".", 1)[0]


def _seed(*parts: Any) -> int:
    """A seed from the row's identity (adding a row never moves another row's interval)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")


def _indices(seed: int, n: int, resamples: int) -> np.ndarray:
    """resamples × n indices in [0, n) from a counter-based generator (splitmix64): the same on every
    platform and numpy version, unlike a library RNG stream."""
    with np.errstate(over="ignore"):
        x = np.arange(resamples * n, dtype=np.uint64) + np.uint64(seed)
        x = x * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x % np.uint64(n)).astype(np.int64).reshape(resamples, n)


#: the statistic of a claim's metric over per-computation APEs (percent)
def _mape(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=-1)


def _geomean(a: np.ndarray) -> np.ndarray:
    return np.exp(np.log(np.maximum(a, 1e-9)).mean(axis=-1))


def _within10(a: np.ndarray) -> np.ndarray:
    return (a <= 10 + 1e-9).mean(axis=-1) * 100  # + rounding: 0.09 vs 0.1 is 10.000000000000002 %


def _accuracy(a: np.ndarray) -> np.ndarray:
    return 100 - a.mean(axis=-1)


STATISTICS = {"mape": _mape, "mean-error": _mape, "geomean-error": _geomean, "share-within-10pct": _within10,
              "accuracy": _accuracy, "max-error": lambda a: a.max(axis=-1), "none": _mape}
#: metrics whose interval a bootstrap cannot give (the maximum of a resample never exceeds the sample's)
NO_INTERVAL = ("max-error",)


def interval(values: np.ndarray, statistic: str, seed: int) -> list[float] | None:
    """Percentile bootstrap interval of ``statistic`` over ``values``; None for n < 2 or a maximum."""
    if len(values) < 2 or statistic in NO_INTERVAL:
        return None
    stats = STATISTICS[statistic](values[_indices(seed, len(values), RESAMPLES)])
    lo, hi = np.quantile(stats, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def per_computation(pairs: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """One value per computation within ``by``: the mean APE of its metric pairs (and their count)."""
    return (
        pairs.group_by([*by, "computation"], maintain_order=True)
        .agg(pl.col("ape_percent").mean().alias("ape"), pl.len().alias("metric_pairs"),
             pl.col("measured_spread").median().alias("spread"))
        .sort([*by, "computation"], nulls_last=True)
    )


def d1_rows(errors: pl.DataFrame, recipe_gaps: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The D1 rows (aggregate 2.1 ``d1_rows``), sorted, headline or not with the reason.

    ``recipe_gaps`` (tool -> gap, :func:`mtap_aggregate.tables.recipe_gaps`): a tool scored with weights
    trained here short of its authors' recipe gets ``recipe`` (aggregate 2.4) and no headline row."""
    recipe_gaps = recipe_gaps or {}
    if errors.height == 0:
        return []
    units = per_computation(errors, ROW_KEYS)
    out = []
    for key, group in units.group_by(ROW_KEYS, maintain_order=True):
        row = dict(zip(ROW_KEYS, key))
        ape = group["ape"].to_numpy()
        n = len(ape)
        note = errors.filter(*(pl.col(k) == v if v is not None else pl.col(k).is_null() for k, v in row.items()))["reference_note"]
        notes = sorted({x for x in note.to_list() if x})
        spread = group["spread"].drop_nulls()
        why = None
        if row["reference_class"] not in HEADLINE_CLASSES:
            why = f"reference {row['reference_class']}" + (f": {'; '.join(notes)}" if notes else "")
        elif n < HEADLINE_MIN_PAIRS:
            why = f"n = {n} < {HEADLINE_MIN_PAIRS}"
        elif row["tool"] in recipe_gaps:
            why = "weights trained here short of the authors' recipe"
        out.append({
            **row,
            "models": sorted({model_of(c) for c in group["computation"]}),
            "reference_note": "; ".join(notes),
            "pairs": n,
            "metrics": int(group["metric_pairs"].sum()),
            "mape": float(ape.mean()),
            "mape_ci95": interval(ape, "mape", _seed(*row.values())),
            "median_ape": float(np.median(ape)),
            "max_ape": float(ape.max()),
            "within10": float(_within10(ape)),
            "measured_spread": float(spread.median() * 100) if spread.len() else None,
            "headline": why is None,
            "why_not_headline": why,
            **({"recipe": recipe_gaps[row["tool"]]} if row["tool"] in recipe_gaps else {}),
        })
    return sorted(out, key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in ROW_KEYS))


@dataclass(frozen=True)
class Match:
    """Which of our pairs a claim's subset covers (claims v2 ``match``/``nearest``)."""

    spec: dict[str, Any]
    tool: str

    def select(self, errors: pl.DataFrame) -> pl.DataFrame:
        s = self.spec
        out = errors.filter(pl.col("tool").is_in(s.get("tools") or [self.tool]),
                            pl.col("reference_class").is_in(s.get("classes") or list(HEADLINE_CLASSES)))
        for column, field in (("hardware", "hardware"), ("scope", "scopes"), ("measured_timing", "timings"),
                              ("workload", "workloads"), ("metric", "metrics")):
            if s.get(field):
                out = out.filter(pl.col(column).is_in(s[field]))
        if s.get("key_pattern"):
            out = out.filter(pl.col("computation").str.contains(s["key_pattern"]))
        return out

    def describe(self, picked: pl.DataFrame) -> str:
        parts = [", ".join(sorted(set(picked["tool"].to_list())))]
        parts.append("on " + ", ".join(sorted(set(picked["hardware"].to_list()))))
        timings = sorted({t for t in picked["measured_timing"].to_list() if t})
        if timings:
            parts.append("measured as " + ", ".join(timings))
        parts.append(", ".join(sorted(set(picked["scope"].to_list()))) + " scope")
        models = sorted({model_of(c) for c in picked["computation"].to_list()})
        parts.append(", ".join(models[:6]) + (f" (+{len(models) - 6} more)" if len(models) > 6 else ""))
        return "; ".join(parts)


def claims_vs_measured(errors: pl.DataFrame, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim (claims v2) beside our figure in its metric on the matching, else nearest, subset."""
    out = []
    for claim in claims:
        metric = claim["metric"]
        result = {"tool": claim["tool"], "claim": claim["id"], "statement": claim["statement"], "metric": metric,
                  "claimed": claim["value"], "citation": claim["citation"], "subset": claim["subset"],
                  "match": "none", "ours": None, "ours_ci95": None, "n": 0, "our_subset": "", "reference_classes": [],
                  "why": claim.get("why_none") or ""}
        for kind in ("match", "nearest"):
            spec = claim.get(kind)
            if not spec:
                continue
            match = Match(spec, claim["tool"])
            picked = match.select(errors)
            if picked.height == 0:
                continue
            # one value per computation of each (tool, hardware, timing): the claim's metric is over configurations
            units = per_computation(picked, ["tool", "hardware", "measured_timing"])
            ape = units["ape"].to_numpy()
            value = float(STATISTICS[metric](ape))
            result.update(match="matching" if kind == "match" else "nearest", ours=value if math.isfinite(value) else None,
                          ours_ci95=interval(ape, metric, _seed(claim["id"], kind)), n=len(ape),
                          our_subset=match.describe(picked) + ("; MAPE (the claim states no figure)" if metric == "none" else ""),
                          reference_classes=sorted(set(picked["reference_class"].to_list())),
                          why="" if kind == "match" else spec.get("why", ""))
            break
        out.append(result)
    return out
