"""Suite ``floor``: the per-kernel launch floor of a GPU, measured by microbenchmarks alone.

Nothing here times a model layer or fits anything: each case launches one trivial kernel many
times back to back and reports the time per launch, so the floor is independent of the ground
truth a predictor using it is scored against.

Kernels (the smallest ones the models launch, plus an empty one):

* ``empty-kernel`` — ``torch.cuda._sleep(0)``: PyTorch's spin kernel asked to spin 0 cycles
  (it reads the clock once and returns), i.e. a launch with no work;
* ``fill-1`` — ``Tensor.fill_`` on a 1-element fp16 tensor (PyTorch's elementwise kernel);
* ``add-1`` — ``torch.add(a, b, out=c)`` on 1-element fp16 tensors (a binary elementwise kernel,
  as every residual add and bias add in the models);
* ``mm-16`` — ``torch.mm`` of 16x16 fp16 matrices (the smallest cuBLAS GEMM).

Modes, each a case ``floor.<kernel>.<mode>``:

* ``eager`` — host-observed: ``launches`` back-to-back launches from Python, then one
  synchronize; time per launch = host wall time / launches (what eager PyTorch pays per kernel,
  dispatcher included);
* ``graph`` — device time per graph node: ``launches`` launches captured in one CUDA graph,
  replayed after a GPU busy-wait (so the host has queued it), bracketed by CUDA events;
  time per node = event time / launches;
* ``eager-sync`` (empty kernel only) — one launch then a synchronize, host-observed: the
  round trip of a single isolated launch.

Each mode is repeated ``reps`` times; the metric ``latency`` is the median per-launch time over
the repetitions with p10/p90/mean/std/min/max (:func:`stats.time_metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .cases import FLOOR_KERNELS as KERNELS  # noqa: F401 - re-exported
from .cases import Case
from .timing import graph, sync

#: launches per repetition and repetitions per case (defaults; the CLI's --iters sets reps)
LAUNCHES = 2000
REPS = 50
WARMUP_LAUNCHES = 200
SLEEP_CYCLES = 1_000_000  # GPU busy-wait before a timed graph replay (~0.5 ms at 2 GHz)

DESCRIPTIONS = {
    "empty-kernel": "torch.cuda._sleep(0): a launch with no work",
    "fill-1": "Tensor.fill_ on a 1-element fp16 tensor",
    "add-1": "torch.add(out=) on 1-element fp16 tensors",
    "mm-16": "torch.mm(out=) of 16x16 fp16 matrices (cuBLAS)",
}


@dataclass
class FloorSettings:
    device: torch.device
    reps: int = REPS
    launches: int = LAUNCHES
    warmup: int = WARMUP_LAUNCHES


def launcher(kernel: str, device: torch.device) -> Callable[[], object]:
    """A zero-argument callable that launches ``kernel`` once (on CPU: the same op on the CPU,
    and a Python no-op for the empty kernel — smoke tests only)."""
    dtype = torch.float16
    if kernel == "empty-kernel":
        if device.type == "cuda":
            return lambda: torch.cuda._sleep(0)
        return lambda: None
    if kernel == "fill-1":
        t = torch.zeros(1, dtype=dtype, device=device)
        return lambda: t.fill_(1.0)
    if kernel == "add-1":
        a = torch.randn(1, device=device).to(dtype)
        b = torch.randn(1, device=device).to(dtype)
        c = torch.empty(1, dtype=dtype, device=device)
        return lambda: torch.add(a, b, out=c)
    if kernel == "mm-16":
        dt = dtype if device.type == "cuda" else torch.float32
        a = torch.randn(16, 16, device=device).to(dt)
        b = torch.randn(16, 16, device=device).to(dt)
        c = torch.empty(16, 16, dtype=dt, device=device)
        return lambda: torch.mm(a, b, out=c)
    raise ValueError(f"unknown floor kernel {kernel!r}")


def eager_samples(fn: Callable[[], object], s: FloorSettings) -> list[float]:
    """Per-launch host time (ms) of ``s.launches`` back-to-back launches, ``s.reps`` times."""
    for _ in range(s.warmup):
        fn()
    sync(s.device)
    out = []
    for _ in range(s.reps):
        t0 = time.perf_counter()
        for _ in range(s.launches):
            fn()
        sync(s.device)
        out.append((time.perf_counter() - t0) * 1e3 / s.launches)
    return out


def eager_sync_samples(fn: Callable[[], object], s: FloorSettings) -> list[float]:
    """Host round trip (ms) of one launch followed by a synchronize, ``s.reps * 10`` times."""
    for _ in range(s.warmup):
        fn()
        sync(s.device)
    out = []
    for _ in range(s.reps * 10):
        t0 = time.perf_counter()
        fn()
        sync(s.device)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def graph_samples(fn: Callable[[], object], s: FloorSettings) -> list[float]:
    """Device time per graph node (ms): ``s.launches`` launches in one CUDA graph (after 3 warm
    launches on a side stream and 3 warm replays), replayed ``s.reps`` times after a GPU busy-wait,
    timed by CUDA events (:func:`timing.graph`)."""
    return graph(fn, s.device, warmup=3, iters=s.reps, reps=s.launches, side_warm=3, sleep_cycles=SLEEP_CYCLES)


def warm_gpu(device: torch.device, seconds: float = 1.0) -> None:
    """Keep the GPU busy with fp16 GEMMs for about ``seconds`` so its clocks have left idle
    before tiny kernels are timed (as they have during the model measurements)."""
    if device.type != "cuda":
        return
    a = torch.randn(4096, 4096, device=device, dtype=torch.float16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize(device)


def sm_clock_mhz() -> float | None:
    """The SM clock nvidia-smi reports now (None without nvidia-smi)."""
    from .env import _num, nvidia_smi

    rows = nvidia_smi()
    return _num(rows[0].get("clocks.sm", "")) if rows else None


def measure(case: Case, s: FloorSettings) -> tuple[list[float], str, dict]:
    """(per-launch samples in ms, the metric timing, parameters) of one floor case.
    A graph case on a machine without CUDA raises :class:`NotImplementedError`."""
    kernel, mode = case.params["kernel"], case.params["mode"]
    fn = launcher(kernel, s.device)
    params = {"kernel_op": DESCRIPTIONS[kernel], "reps": s.reps, "device": s.device.type}
    if mode == "eager":
        params["launches_per_rep"] = s.launches
        return eager_samples(fn, s), "eager-end-to-end", params
    if mode == "eager-sync":
        params["reps"] = s.reps * 10
        params["launches_per_rep"] = 1
        return eager_sync_samples(fn, s), "eager-end-to-end", params
    if mode == "graph":
        if s.device.type != "cuda":
            raise NotImplementedError("CUDA graphs need a CUDA device")
        params["launches_per_rep"] = s.launches
        return graph_samples(fn, s), "device", params
    raise ValueError(f"unknown floor mode {mode!r}")


def run_cases(cases: list[Case], settings: FloorSettings, hardware: str, progress: Callable[[Case], None] | None = None,
              deadline: float | None = None, on_case: Callable[[Case, dict], None] | None = None,
              common: dict | None = None) -> list[dict]:
    """Measure each floor case into a tool-run case; a case that raises becomes ``failed``
    (``unsupported`` for a graph case without CUDA)."""
    import mtap_schemas.toolrun as tr

    from . import record, stats

    common = dict(common or {})
    warm_gpu(settings.device)
    out = []
    for case in cases:
        base = {"workload": case.workload, "hardware": hardware, "key": case.key}
        params = dict(case.params) | common
        if deadline is not None and time.monotonic() > deadline:
            result = tr.failed(case.case_id(hardware), **base, parameters=dict(sorted(params.items())), kind="timeout",
                               message="not measured: the run's --time-budget was spent before this case")
        else:
            try:
                samples, timing, extra = measure(case, settings)
                clock = sm_clock_mhz() if settings.device.type == "cuda" else None
                if clock is not None:
                    extra["sm_clock_mhz_after"] = clock
                result = tr.ok(case.case_id(hardware), **base, parameters=dict(sorted((params | extra).items())),
                               metrics=stats.time_metrics(samples, timing))
            except NotImplementedError as exc:
                result = tr.unsupported(case.case_id(hardware), **base, parameters=dict(sorted(params.items())),
                                        kind="unsupported-case", message=str(exc))
            except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others
                result = record.measurement_failed(case.case_id(hardware), base, params, exc)
        record.deliver(out, case, result, progress, on_case)
    return out
