"""Summary statistics of timed samples (pure Python, so CPU tests cover them exactly)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default "linear" method), ``q`` in [0, 100]."""
    if not samples:
        raise ValueError("no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside [0, 100]")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """median, p10, p90, mean, std (sample), min, max, n and the relative spread (p90-p10)/median."""
    if not samples:
        raise ValueError("no samples")
    xs = [float(x) for x in samples]
    if any(not math.isfinite(x) or x < 0 for x in xs):
        raise ValueError("samples must be finite and non-negative")
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    med = percentile(xs, 50)
    p10, p90 = percentile(xs, 10), percentile(xs, 90)
    return {
        "median": med,
        "p10": p10,
        "p90": p90,
        "mean": mean,
        "std": std,
        "min": min(xs),
        "max": max(xs),
        "n": float(n),
        "spread": (p90 - p10) / med if med > 0 else 0.0,
    }


def time_metrics(samples_ms: Sequence[float], timing: str, name: str = "latency") -> list[dict]:
    """Metrics of one timed series (milliseconds): ``<name>`` is the median, then
    ``<name>_p10``, ``_p90``, ``_mean``, ``_std``, ``_min``, ``_max``, ``<name>_samples`` and
    ``<name>_spread`` ((p90-p10)/median), all with the same ``timing``."""
    from mtap_schemas.toolrun import metric

    s = summarize(samples_ms)
    out = [metric(name, round(s["median"], 6), "ms", "measurement", timing=timing)]
    for stat in ("p10", "p90", "mean", "std", "min", "max"):
        out.append(metric(f"{name}_{stat}", round(s[stat], 6), "ms", "measurement", timing=timing))
    out.append(metric(f"{name}_samples", int(s["n"]), "count", "measurement", timing=timing))
    out.append(metric(f"{name}_spread", round(s["spread"], 6), "1", "derived", timing=timing))
    return out


#: nccl-tests' bus-bandwidth factors (doc/PERFORMANCE.md): busbw = algbw * factor(n).
def bus_factor(collective: str, n: int) -> float:
    if n < 1:
        raise ValueError("n must be >= 1")
    if collective == "all-reduce":
        return 2.0 * (n - 1) / n
    if collective in ("all-gather", "reduce-scatter", "all-to-all"):
        return (n - 1) / n
    raise ValueError(f"unknown collective {collective!r}")


def bandwidths(collective: str, size_bytes: int, n: int, seconds: float) -> tuple[float, float]:
    """(algbw, busbw) in B/s as nccl-tests defines them: algbw = size / time, where size is
    the all-reduce buffer, the all-gather output, the reduce-scatter input and the
    all-to-all send buffer per rank; busbw = algbw * bus_factor."""
    if seconds <= 0:
        raise ValueError("time must be positive")
    alg = size_bytes / seconds
    return alg, alg * bus_factor(collective, n)
