"""Multi-GPU measurements (suite ``multi``): NCCL collectives with nccl-tests' bandwidth
definitions, and a ResNet-50 DistributedDataParallel training step. One process per GPU
(torch.multiprocessing, spawn), for any number of GPUs; with ``device=cpu`` it runs the same
code on the gloo backend (tests).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from . import stats
from .cases import Case

#: NVLink multicast (NVLS) stays off: the lent hosts require it, and it must not depend on
#: the caller's environment. Children inherit these.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
BACK_TO_BACK = 20  # ops per nccl-tests-style sample
BACK_TO_BACK_SAMPLES = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def time(self, fn: Callable[[], object], count: int = 1) -> tuple[float | None, float]:
        """(device ms from CUDA events or None on CPU, host ms incl. synchronize) for ``count`` calls."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            start.record()
            for _ in range(count):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end), (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        return None, (time.perf_counter() - t0) * 1e3


def _collective_fn(name: str, size: int, n: int, device: torch.device) -> Callable[[], object]:
    numel = size // 4  # float32, as nccl-tests' default
    g = torch.Generator(device="cpu").manual_seed(dist.get_rank())
    if name == "all-reduce":
        buf = torch.randn(numel, generator=g).to(device)
        return lambda: dist.all_reduce(buf)
    if name == "all-gather":  # size = the gathered output
        inp, out = torch.randn(numel // n, generator=g).to(device), torch.empty(numel, device=device)
        return lambda: dist.all_gather_into_tensor(out, inp)
    if name == "reduce-scatter":  # size = the input that is reduced and scattered
        inp, out = torch.randn(numel, generator=g).to(device), torch.empty(numel // n, device=device)
        return lambda: dist.reduce_scatter_tensor(out, inp)
    if name == "all-to-all":  # size = each rank's send buffer
        inp, out = torch.randn(numel, generator=g).to(device), torch.empty(numel, device=device)
        return lambda: dist.all_to_all_single(out, inp)
    raise ValueError(f"unknown collective {name!r}")


def _collective(case: dict, n: int, device: torch.device, iters: int, warmup: int) -> dict:
    p = case["params"]
    clock = _Clock(device)
    fn = _collective_fn(p["collective"], p["size_bytes"], n, device)
    for _ in range(warmup):
        fn()
    dev_ms, host_ms = [], []
    for _ in range(iters):
        dist.barrier()
        d, h = clock.time(fn)
        dev_ms.append(d)
        host_ms.append(h)
    b2b = []
    for _ in range(BACK_TO_BACK_SAMPLES):
        dist.barrier()
        d, h = clock.time(fn, BACK_TO_BACK)
        b2b.append((d if d is not None else h) / BACK_TO_BACK)
    return {"device_ms": dev_ms, "host_ms": host_ms, "b2b_ms": b2b}


def _ddp(case: dict, n: int, device: torch.device, iters: int, warmup: int, tiny: bool) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .models import ResNet50, init_random_

    p = case["params"]
    batch = min(p["batch_per_gpu"], 2) if tiny else p["batch_per_gpu"]
    image = 32 if tiny else 224
    model = init_random_(ResNet50().to(device), seed=0).train()
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator(device="cpu").manual_seed(dist.get_rank())
    x = torch.randn(batch, 3, image, image, generator=g).to(device)
    y = torch.randint(1000, (batch,), generator=g).to(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    clock = _Clock(device)
    for _ in range(warmup):
        step()
    dev_ms, host_ms = [], []
    for _ in range(iters):
        dist.barrier()
        d, h = clock.time(step)
        dev_ms.append(d)
        host_ms.append(h)
    return {"device_ms": dev_ms, "host_ms": host_ms, "batch_run": batch, "image": image}


def _worker(rank: int, n: int, port: int, cases: list[dict], iters: int, warmup: int, tiny: bool, use_cuda: bool, tf32: bool, out_path: str) -> None:
    os.environ.update(NO_MULTICAST)
    if use_cuda:
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    dist.init_process_group(
        "nccl" if use_cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=n,
        timeout=_dt.timedelta(seconds=300), **({"device_id": device} if use_cuda else {}),
    )
    results: dict[str, Any] = {}
    try:
        for case in cases:
            try:
                if case["kind"] == "collective":
                    r = _collective(case, n, device, iters, warmup)
                else:
                    r = _ddp(case, n, device, iters, warmup, tiny)
                r["ok"] = True
            except Exception as exc:  # noqa: BLE001 - recorded as a failed case
                r = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500], "trace": traceback.format_exc()[-2000:]}
            results[case["key"]] = r
            if use_cuda:
                torch.cuda.empty_cache()
    finally:
        # Each rank writes its own samples; the parent combines them (no object collectives).
        with open(f"{out_path}.{rank}", "w", encoding="utf-8") as fh:
            json.dump(results, fh)
        dist.destroy_process_group()


def _per_sample(per_rank: list[list[float | None]], how: str) -> list[float] | None:
    if any(v is None for r in per_rank for v in r):
        return None
    combine = max if how == "max" else (lambda xs: sum(xs) / len(xs))
    return [combine(list(vals)) for vals in zip(*per_rank)]


def summarize(case: Case, gathered: list[dict]) -> tuple[list[dict], dict[str, Any]]:
    """Metrics of one multi-GPU case from every rank's samples.

    Collectives: each sample is the mean over ranks (as nccl-tests averages its ranks);
    algbw/busbw from the median. DDP step: each sample is the slowest rank's time."""
    p = case.params
    n = len(gathered)
    metrics: list[dict] = []
    extra: dict[str, Any] = {"ranks": n}
    if case.kind == "collective":
        dev = _per_sample([g["device_ms"] for g in gathered], "mean")
        host = _per_sample([g["host_ms"] for g in gathered], "mean")
        b2b = _per_sample([g["b2b_ms"] for g in gathered], "mean")
        basis_timing = "device" if dev is not None else "eager-end-to-end"
        if dev is not None:
            metrics += stats.time_metrics(dev, "device")
        metrics += stats.time_metrics(host, "eager-end-to-end")
        metrics += stats.time_metrics(b2b, basis_timing, "latency_back_to_back")
        for label, series in (("", dev if dev is not None else host), ("_back_to_back", b2b)):
            med_s = stats.percentile(series, 50) / 1e3
            alg, bus = stats.bandwidths(p["collective"], p["size_bytes"], n, med_s)
            metrics.append({"name": f"algbw{label}", "value": round(alg, 1), "unit": "B/s", "kind": "derived", "timing": basis_timing})
            metrics.append({"name": f"busbw{label}", "value": round(bus, 1), "unit": "B/s", "kind": "derived", "timing": basis_timing})
        extra.update(bus_factor=round(stats.bus_factor(p["collective"], n), 6), back_to_back_ops=BACK_TO_BACK, rank_combine="mean")
    else:
        dev = _per_sample([g["device_ms"] for g in gathered], "max")
        host = _per_sample([g["host_ms"] for g in gathered], "max")
        # An eager training step: the CUDA-event time and the host time both include the host's
        # launch gaps, so both are "eager-end-to-end"; the event series is the primary one.
        metrics += stats.time_metrics(dev if dev is not None else host, "eager-end-to-end")
        metrics += stats.time_metrics(host, "eager-end-to-end", "host_latency")
        med_s = stats.percentile(dev if dev is not None else host, 50) / 1e3
        images = gathered[0]["batch_run"] * n
        metrics.append({"name": "throughput", "value": round(images / med_s, 2), "unit": "img/s", "kind": "derived", "timing": "eager-end-to-end"})
        extra.update(batch_run=gathered[0]["batch_run"], image=gathered[0]["image"], rank_combine="max")
    return metrics, extra


def run_cases(cases: list[Case], hardware: str, device: torch.device, gpus: int, iters: int, warmup: int, tiny: bool, tf32: bool,
              progress: Callable[[Case], None] | None = None) -> list[dict]:
    """Run the multi-GPU cases, one process group per GPU count; returns tool-run cases."""
    os.environ.update(NO_MULTICAST)
    by_n: dict[int, list[Case]] = {}
    for c in cases:
        by_n.setdefault(c.params["npus"], []).append(c)
    results: dict[str, dict] = {}
    for n, group in sorted(by_n.items()):
        base_cases = {c.key: c for c in group}
        if n > gpus:
            for c in group:
                results[c.key] = _failed(c, hardware, "unavailable", "gpus-missing", f"needs {n} GPUs, this host has {gpus}")
                if progress:
                    progress(c)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out_path = os.path.join(tmp, "results.json")
            payload = [{"key": c.key, "kind": c.kind, "params": c.params} for c in group]
            try:
                mp.spawn(_worker, args=(n, _free_port(), payload, iters, warmup, tiny, device.type == "cuda", tf32, out_path), nprocs=n, join=True)
                per_rank = []
                for r in range(n):
                    with open(f"{out_path}.{r}", encoding="utf-8") as fh:
                        per_rank.append(json.load(fh))
                raw = {key: [pr[key] for pr in per_rank] for key in per_rank[0] if all(key in pr for pr in per_rank)}
            except Exception as exc:  # noqa: BLE001 - the whole group failed: record it
                raw = {}
                lines = [ln for ln in str(exc).splitlines() if ln.strip()]  # a child's traceback ends in its error
                err = f"{type(exc).__name__}: {lines[-1].strip() if lines else ''}"[:500]
                for c in group:
                    results[c.key] = _failed(c, hardware, "failed", "measurement-failed", f"process group of {n} failed: {err}")
        for key, gathered in raw.items():
            case = base_cases[key]
            bad = [g for g in gathered if not g["ok"]]
            if bad:
                results[key] = _failed(case, hardware, "failed", "measurement-failed", bad[0]["error"])
            else:
                metrics, extra = summarize(case, gathered)
                params = dict(case.params) | extra | {"device": device.type, "nccl_nvls_enable": "0"}
                if tiny:
                    params["tiny"] = True
                results[key] = {"id": case.id, "key": case.key, "workload": case.workload, "hardware": hardware, "parameters": params,
                                "status": "ok", "error": None, "metrics": metrics, "artifacts": []}
        for c in group:
            if c.key not in results:
                results[c.key] = _failed(c, hardware, "failed", "measurement-failed", "no result came back from the process group")
            if progress:
                progress(c)
    return [results[c.key] for c in cases]


def _failed(case: Case, hardware: str, status: str, kind: str, message: str) -> dict:
    return {"id": case.id, "key": case.key, "workload": case.workload, "hardware": hardware, "parameters": dict(case.params),
            "status": status, "error": {"kind": kind, "message": message}, "metrics": [], "artifacts": []}
