"""Timing primitives: CUDA events around eager calls, CUDA-graph replays, host clocks on CPU.

Every function returns per-sample times in milliseconds; :mod:`.stats` summarizes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

#: A graph replay is made to last about this long by capturing the work several times
#: (then each sample is divided by the repeat count), so launch latency is amortized.
TARGET_REPLAY_MS = 1.0
MAX_REPS = 100
#: GPU busy-wait before each timed replay (torch.cuda._sleep), so the host has queued the
#: graph before the start event fires: launch latency stays out of device time.
SLEEP_CYCLES = 200_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eager(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Eager end-to-end: each call from an idle GPU, bracketed by CUDA events (host clock on
    CPU); host launch gaps are included, as a user of eager PyTorch sees them."""
    for _ in range(warmup):
        fn()
    sync(device)
    out: list[float] = []
    if device.type == "cuda":
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def reps_for(eager_median_ms: float, target_ms: float = TARGET_REPLAY_MS, max_reps: int = MAX_REPS) -> int:
    """How many copies of the work one graph replay holds (eager time bounds device time from above)."""
    if eager_median_ms <= 0 or not math.isfinite(eager_median_ms):
        return 1
    return max(1, min(max_reps, math.ceil(target_ms / eager_median_ms)))


def graph(fn: Callable[[], object], device: torch.device, warmup: int, iters: int, reps: int, *, side_warm: int = 2,
          sleep_cycles: int = SLEEP_CYCLES) -> list[float]:
    """Device time: capture ``reps`` calls of ``fn`` in one CUDA graph (after ``side_warm`` calls
    on a side stream, as capture needs), replay it ``iters`` times (each after a GPU busy-wait of
    ``sleep_cycles``), return per-call times (replay time / reps)."""
    if device.type != "cuda":
        raise RuntimeError("CUDA graphs need a CUDA device")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(side_warm):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    sync(device)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    try:
        for _ in range(warmup):
            g.replay()
        sync(device)
        out: list[float] = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda._sleep(sleep_cycles)
            start.record()
            g.replay()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / reps)
        return out
    finally:
        del g
        sync(device)
