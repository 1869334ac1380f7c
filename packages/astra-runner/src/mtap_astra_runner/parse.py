"""Parse the log an ASTRA-sim 2.0 analytical binary prints (stdout, spdlog format).

Lines used (one set per simulated NPU ``N``)::

    [...] [workload] [info] sys[N] finished, C cycles, exposed communication E cycles.
    [...] [statistics] [info] sys[N], Wall time: W
    [...] [statistics] [info] sys[N], GPU time: G
    [...] [statistics] [info] sys[N], Comm time: M
    [...] [statistics] [info] sys[N], Total compute-communication overlap: O

ASTRA-sim counts time in cycles of 1 ns. The overlap line is printed only when it is
positive; a workload without compute has no GPU time line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mtap_schemas.toolrun import metric

FINISHED = re.compile(r"sys\[(\d+)\] finished, (\d+) cycles, exposed communication (\d+) cycles\.")
STAT = re.compile(r"sys\[(\d+)\], (Wall time|GPU time|CPU time|Comm time|Total compute-communication overlap): (\d+)")

STAT_FIELDS = {
    "Wall time": "wall",
    "GPU time": "gpu",
    "CPU time": "cpu",
    "Comm time": "comm",
    "Total compute-communication overlap": "overlap",
}


SPDLOG_TIME = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\] ")
#: an absolute path (e.g. the build folder an assertion names): only its last part is kept
ABS_PATH = re.compile(r"(?<![\w.~>])/(?:[^\s/:'\"`]+/)+(?=[^\s/:'\"`]+)")


class ParseError(ValueError):
    pass


@dataclass
class NpuResult:
    npu: int
    cycles: int
    exposed_comm: int
    stats: dict[str, int] = field(default_factory=dict)


def parse(text: str, npus: int | None = None) -> dict[int, NpuResult]:
    """NPU id -> its result. Raises ParseError when no NPU finished or some NPU is missing."""
    out: dict[int, NpuResult] = {}
    for m in FINISHED.finditer(text):
        npu = int(m.group(1))
        out[npu] = NpuResult(npu, int(m.group(2)), int(m.group(3)))
    if not out:
        raise ParseError("no 'sys[N] finished, C cycles, exposed communication E cycles.' line in the output")
    for m in STAT.finditer(text):
        npu = int(m.group(1))
        if npu in out:
            out[npu].stats[STAT_FIELDS[m.group(2)]] = int(m.group(3))
    if npus is not None:
        missing = sorted(set(range(npus)) - set(out))
        if missing:
            raise ParseError(f"{len(missing)} of {npus} NPUs never reported 'finished' (first missing: sys[{missing[0]}])")
    return out


def critical(results: dict[int, NpuResult]) -> NpuResult:
    """The NPU that finished last (lowest id on ties): its time is the workload's time."""
    return max(results.values(), key=lambda r: (r.cycles, -r.npu))


def metrics(results: dict[int, NpuResult]) -> list[dict]:
    """tool-run metrics (simulated predictions) of the NPU that finished last."""
    r = critical(results)

    def m(name: str, value: float, unit: str = "ns") -> dict:
        return metric(name, value, unit, "prediction", timing="simulated")

    out = [
        m("latency", r.cycles),
        m("cycles", r.cycles, "cycles"),
        m("exposed_communication", r.exposed_comm),
    ]
    names = {"wall": "wall_time", "gpu": "compute_time", "comm": "communication_time", "overlap": "compute_communication_overlap"}
    for key, name in names.items():
        if key in r.stats:
            out.append(m(name, r.stats[key]))
        elif key == "overlap" and "wall" in r.stats:
            out.append(m(name, 0))  # printed only when positive
    return out


def failure_message(text: str) -> str:
    """The tool's own reason for an abort: the last error-looking line, else the last line."""
    # drop spdlog's "[2026-01-01 00:00:00.000] " time stamp: messages stay deterministic
    lines = [SPDLOG_TIME.sub("", ln).strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no output"
    keys = ("terminate called", "what():", "Assertion", "error", "Error", "abort", "Abort", "Segmentation", "exception")
    hits = [ln for ln in lines if any(k in ln for k in keys)]
    picked = hits[-2:] if hits else lines[-1:]
    # no machine paths in documents: "/work/build/astra-sim/.../Device.cpp:51" -> "Device.cpp:51"
    return ABS_PATH.sub("", " | ".join(picked))[:500]
