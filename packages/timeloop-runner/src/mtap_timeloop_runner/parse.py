"""Parse the ``Summary Stats`` section of ``timeloop-mapper.stats.txt`` (Timeloop v3)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_FLOAT = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


class StatsParseError(ValueError):
    """The stats text lacks a field every successful mapper run writes."""


def _count(text: str) -> int | float:
    """An integer count as Timeloop prints it; a value that is not a finite integer stays a float
    (the writer then refuses it as an invalid value instead of this parser crashing on it)."""
    value = float(text)
    return int(value) if math.isfinite(value) and value.is_integer() else value


@dataclass
class Stats:
    cycles: int
    energy_uj: float
    utilization: float  # fraction of the MAC instances busy, 0..1
    computes: int
    fj_per_compute: float  # total energy per compute (MAC), all levels and networks
    area_mm2: float | None
    gflops_at_1ghz: float | None
    per_level_fj_per_compute: dict[str, float] = field(default_factory=dict)


def _find(pattern: str, text: str, what: str, required: bool = True) -> str | None:
    m = re.search(pattern, text, flags=re.MULTILINE)
    if m is None:
        if required:
            raise StatsParseError(f"no {what!r} line in the Summary Stats section")
        return None
    return m.group(1)


def parse_stats(text: str) -> Stats:
    """Read cycles, energy, utilization, computes, fJ/Compute and area from a stats file."""
    start = text.rfind("Summary Stats")
    if start < 0:
        raise StatsParseError("no 'Summary Stats' section (did the mapper find a mapping?)")
    summary = text[start:]
    cycles = _count(_find(rf"^Cycles:\s*{_FLOAT}\s*$", summary, "Cycles"))
    energy = float(_find(rf"^Energy:\s*{_FLOAT}\s*uJ\s*$", summary, "Energy"))
    util_text = _find(rf"^Utilization:\s*{_FLOAT}\s*(%?)\s*$", summary, "Utilization")
    utilization = float(util_text)
    if re.search(r"^Utilization:.*%\s*$", summary, flags=re.MULTILINE):
        utilization /= 100.0
    area = _find(rf"^Area:\s*{_FLOAT}\s*mm\^2\s*$", summary, "Area", required=False)
    gflops = _find(rf"^GFLOPs \(@1GHz\):\s*{_FLOAT}\s*$", summary, "GFLOPs", required=False)
    # Sparse runs print "Algorithmic Computes" then "Actual Computes"; dense ones "Computes".
    computes = _count(_find(rf"^(?:Actual )?Computes\s*=\s*{_FLOAT}\s*$", summary, "Computes"))
    block = summary[summary.rfind("fJ/Compute"):] if "fJ/Compute" in summary else ""
    if not block:
        raise StatsParseError("no 'fJ/Compute' table in the Summary Stats section")
    levels: dict[str, float] = {}
    for line in block.splitlines()[1:]:
        m = re.match(rf"^\s+(.+?)\s*=\s*{_FLOAT}\s*$", line)
        if not m:
            if line.strip():
                break
            continue
        levels[m.group(1).strip()] = float(m.group(2))
    if "Total" not in levels:
        raise StatsParseError("no 'Total' row in the fJ/Compute table")
    total = levels.pop("Total")
    return Stats(
        cycles=cycles,
        energy_uj=energy,
        utilization=utilization,
        computes=computes,
        fj_per_compute=total,
        area_mm2=float(area) if area is not None else None,
        gflops_at_1ghz=float(gflops) if gflops is not None else None,
        per_level_fj_per_compute=levels,
    )
