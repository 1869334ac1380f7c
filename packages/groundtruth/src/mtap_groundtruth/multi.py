"""Multi-GPU measurements (suite ``multi``): NCCL collectives with nccl-tests' bandwidth
definitions, and a ResNet-50 DistributedDataParallel training step. One process per GPU, each
started through ``mtap_schemas.proc.run_tool`` (own process group, killed on timeout or when
another rank fails) as ``python -m mtap_groundtruth.multi rank ...``, for any number of GPUs;
with ``device=cpu`` it runs the same code on the gloo backend (tests).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

import mtap_schemas.toolrun as tr

from . import stats
from .cases import Case

#: NVLink multicast (NVLS) stays off: the lent hosts require it, and it must not depend on
#: the caller's environment. Children inherit these.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
BACK_TO_BACK = 20  # ops per nccl-tests-style sample
BACK_TO_BACK_SAMPLES = 5
#: seconds a process group of ranks may run: this per case it holds, plus start-up
GROUP_SECONDS_PER_CASE = 300
GROUP_STARTUP_SECONDS = 120


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

    from .models import init_random_, resnet50

    p = case["params"]
    batch = min(p["batch_per_gpu"], 2) if tiny else p["batch_per_gpu"]
    image = 32 if tiny else 224
    model = init_random_(resnet50().to(device), seed=0).train()
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
            metrics.append(tr.metric(f"algbw{label}", round(alg, 1), "B/s", "derived", timing=basis_timing))
            metrics.append(tr.metric(f"busbw{label}", round(bus, 1), "B/s", "derived", timing=basis_timing))
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
        metrics.append(tr.metric("throughput", round(images / med_s, 2), "img/s", "derived", timing="eager-end-to-end"))
        extra.update(batch_run=gathered[0]["batch_run"], image=gathered[0]["image"], rank_combine="max")
    return metrics, extra


def run_cases(cases: list[Case], hardware: str | dict[int, str], device: torch.device, gpus: int, iters: int, warmup: int,
              tiny: bool, tf32: bool, progress: Callable[[Case], None] | None = None,
              common: dict[str, Any] | None = None) -> list[dict]:
    """Run the multi-GPU cases, one process group per GPU count; returns tool-run cases. ``hardware``: one
    id for every case, or :func:`hardware_ids`' mapping (each case under its GPU count's id)."""
    os.environ.update(NO_MULTICAST)
    ids = hardware if isinstance(hardware, dict) else None
    by_n: dict[int, list[Case]] = {}
    for c in cases:
        by_n.setdefault(c.params["npus"], []).append(c)
    results: dict[str, dict] = {}
    for n, group in sorted(by_n.items()):
        base_cases = {c.key: c for c in group}
        hw = case_hardware(group[0], ids) if ids is not None else str(hardware)
        if n > gpus:
            for c in group:
                results[c.key] = _failed(c, hw, "unavailable", "gpus-missing", f"needs {n} GPUs, this host has {gpus}", common)
                if progress:
                    progress(c)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out_path = os.path.join(tmp, "results.json")
            payload = [{"key": c.key, "kind": c.kind, "params": c.params} for c in group]
            try:
                per_rank = run_ranks(n, payload, out_path, iters, warmup, tiny, device.type == "cuda", tf32, tmp,
                                     timeout=GROUP_STARTUP_SECONDS + GROUP_SECONDS_PER_CASE * len(group))
                raw = {key: [pr[key] for pr in per_rank] for key in per_rank[0] if all(key in pr for pr in per_rank)}
            except RankError as exc:  # the whole group failed: record it
                raw = {}
                for c in group:
                    results[c.key] = _failed(c, hw, "failed", exc.kind, f"process group of {n} failed: {exc}", common)
        for key, gathered in raw.items():
            case = base_cases[key]
            bad = [g for g in gathered if not g["ok"]]
            if bad:
                results[key] = _failed(case, hw, "failed", "measurement-failed", bad[0]["error"], common)
            else:
                metrics, extra = summarize(case, gathered)
                params = dict(case.params) | extra | {"device": device.type, "nccl_nvls_enable": "0"} | dict(common or {})
                if tiny:
                    params["tiny"] = True
                if case.kind == "ddp":
                    from .measure import resnet50_train_flops

                    metrics.append(tr.metric("forward_backward_flops", resnet50_train_flops(params["batch_run"], params["image"]),
                                             "FLOP", "derived"))
                results[key] = tr.ok(case.case_id(hw), workload=case.workload, hardware=hw, key=case.key,
                                     parameters=dict(sorted(params.items())), metrics=metrics)
        for c in group:
            if c.key not in results:
                results[c.key] = _failed(c, hw, "failed", "measurement-failed", "no result came back from the process group", common)
            if progress:
                progress(c)
    return [results[c.key] for c in cases]


def hardware_ids(catalog: list[dict[str, Any]], card: str, host_gpus: int, gpus: int, requested: str | None = None) -> dict[int, str]:
    """The hardware id of each GPU count of the multi suite on a host of ``host_gpus`` GPUs of catalog id
    ``card`` (the single GPU's), using ``gpus`` of them: ``{1: card}`` plus, when the run uses more than
    one GPU, ``{0: node}`` for every count of 2 and more (0 = "any n > 1": see :func:`case_hardware`).

    The node is the catalog's ``gpu-node`` of that GPU whose ``devices`` is the host's GPU count (the
    2-GPU direct-NVLink H200 host is ``H200-SXM-141GB-x2-nvlink``, an 8-GPU HGX H200 ``HGX-H200x8``), or
    ``requested`` (``--hardware``), which must be such an entry (or the GPU itself, for a 1-GPU run).
    A 1-GPU case is always filed under the GPU: it uses no interconnect. Raises ValueError, one line,
    when the catalog has no such node, several, or ``requested`` has another GPU count than the host,
    and when the run would use only some of the node's GPUs for multi-GPU cases (they would read as a
    smaller machine: ``environment.gpu.count`` is the GPUs used)."""
    nodes = [h for h in catalog if h.get("kind") == "gpu-node" and h.get("device") == card]
    if requested is not None and requested != card:
        entry = next((h for h in nodes if h["id"] == requested), None)
        if entry is None:
            raise ValueError(f"--hardware: {requested!r} is not a multi-GPU node of {card} in the catalog "
                             f"({', '.join(sorted(h['id'] for h in nodes)) or 'it has none'})")
        if entry["devices"] != host_gpus:
            raise ValueError(f"--hardware: {requested} has {entry['devices']} GPUs, this host has {host_gpus} "
                             "(a measurement is filed under the machine it ran on)")
        node: str | None = requested
    elif gpus <= 1:
        node = None
    else:
        if requested == card:
            raise ValueError(f"--hardware: {card} is one GPU, the run uses {gpus} (--gpus): name this {host_gpus}-GPU host's "
                             "node, or leave --hardware out")
        fits = sorted(h["id"] for h in nodes if h["devices"] == host_gpus)
        if not fits:
            raise ValueError(f"--hardware: the catalog has no node of {host_gpus} x {card} (kind gpu-node, device {card}, "
                             f"devices {host_gpus}): add this host to data/hardware/hardware.json with its interconnect, "
                             "then name it with --hardware")
        if len(fits) > 1:
            raise ValueError(f"--hardware: the catalog has several nodes of {host_gpus} x {card} ({', '.join(fits)}): "
                             "name the one this host is (its interconnect decides)")
        node = fits[0]
    if node is not None and 1 < gpus < host_gpus:
        raise ValueError(f"--gpus: {gpus} of this host's {host_gpus}: its multi-GPU cases are filed under {node} "
                         f"({host_gpus} GPUs) and need all of them (--gpus {host_gpus}), or --gpus 1")
    return {1: card} if node is None else {1: card, 0: node}


def case_hardware(case: Case, ids: dict[int, str]) -> str:
    """The hardware id of one multi-suite case (:func:`hardware_ids`): its GPU count's, else the node's."""
    n = case.params["npus"]
    return ids.get(n) or ids.get(0) or ids[1]


class RankError(RuntimeError):
    """A rank process did not finish cleanly; ``kind`` is the error kind (timeout, out-of-memory, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def run_ranks(n: int, payload: list[dict], out_path: str, iters: int, warmup: int, tiny: bool, use_cuda: bool, tf32: bool,
              tmp: str, timeout: float) -> list[dict]:
    """Start ``n`` rank processes through ``proc.run_tool`` (one thread waits for each); when one
    fails, the others' process groups are killed. Returns each rank's results (rank order)."""
    from mtap_schemas import proc

    payload_path = os.path.join(tmp, "payload.json")
    with open(payload_path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    port = _free_port()
    env = dict(os.environ) | NO_MULTICAST
    argvs = [[sys.executable, "-m", "mtap_groundtruth.multi", "rank", "--rank", str(r), "--world", str(n), "--port", str(port),
              "--payload", payload_path, "--out", out_path, "--iters", str(iters), "--warmup", str(warmup)]
             + (["--tiny"] if tiny else []) + (["--cuda"] if use_cuda else []) + (["--tf32"] if tf32 else []) for r in range(n)]
    results: list[Any] = [None] * n

    def one(r: int) -> None:
        res = proc.run_tool(argvs[r], timeout=timeout, env=env)
        results[r] = res
        if not res.ok:
            proc.kill_active()  # the other ranks would wait for this one until NCCL's own timeout

    threads = [threading.Thread(target=one, args=(r,), daemon=True) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [(r, res) for r, res in enumerate(results) if not res.ok]
    if failed:
        # the first rank that failed on its own (not killed after another's failure) names the cause
        own = [(r, res) for r, res in failed if res.outcome != "signal"] or failed
        r, res = own[0]
        kind, message = res.error(timeout)
        return_kind = kind if kind in ("timeout", "out-of-memory") else "measurement-failed"
        raise RankError(return_kind, f"rank {r}: {message}")
    per_rank = []
    for r in range(n):
        with open(f"{out_path}.{r}", encoding="utf-8") as fh:
            per_rank.append(json.load(fh))
    return per_rank


def _rank_main(argv: list[str]) -> None:
    """``python -m mtap_groundtruth.multi rank --rank R --world N ...``: one rank of a process group."""
    import argparse

    ap = argparse.ArgumentParser(prog="mtap_groundtruth.multi rank")
    ap.add_argument("verb", choices=["rank"])
    for name in ("--rank", "--world", "--port", "--iters", "--warmup"):
        ap.add_argument(name, type=int, required=True)
    ap.add_argument("--payload", required=True)
    ap.add_argument("--out", required=True)
    for flag in ("--tiny", "--cuda", "--tf32"):
        ap.add_argument(flag, action="store_true")
    a = ap.parse_args(argv)
    with open(a.payload, encoding="utf-8") as fh:
        payload = json.load(fh)
    _worker(a.rank, a.world, a.port, payload, a.iters, a.warmup, a.tiny, a.cuda, a.tf32, a.out)


def _failed(case: Case, hardware: str, status: str, kind: str, message: str, common: dict[str, Any] | None = None) -> dict:
    make = tr.unavailable if status == "unavailable" else tr.failed
    return make(case.case_id(hardware), workload=case.workload, hardware=hardware, key=case.key,
                parameters=dict(sorted((dict(case.params) | dict(common or {})).items())), kind=kind, message=message)


if __name__ == "__main__":  # pragma: no cover - a rank process (run_ranks)
    _rank_main(sys.argv[1:])
