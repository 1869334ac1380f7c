"""GenZ vs measured latency: pair the committed documents by (hardware, key) and score them.

Error of one case: |GenZ - measured| / measured. Per GPU: n, MAPE (mean of the errors, %) and
the geometric-mean error (exp of the mean log error, %: the statistic GenZ's paper quotes), plus
the mean ratio GenZ / measured. The pairing and the statistics are the LLM peers' (``mtap_schemas.llmpeer``).
"""

from __future__ import annotations

from mtap_schemas import llmpeer
from mtap_schemas.llmpeer import Pair, groups, pair, summary

__all__ = ["Pair", "groups", "pair", "render", "summary"]


def render(pairs: list[Pair], timing: str, per_case: bool = True) -> str:
    return llmpeer.render(pairs, timing, "GenZ", per_case)
