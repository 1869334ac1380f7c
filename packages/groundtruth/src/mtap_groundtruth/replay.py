"""Suite ``replay``: a serving simulator's batches, run on the GPU and timed.

Input is a ``batch-plan`` document (``vidur-runner batches`` writes one from VIDUR's
recorded batches): the model's shape and the distinct batch compositions, each a list of
prefill requests (query tokens, KV tokens including the query) and the decode requests — v1:
their count and longest KV; v2: (count, KV) per distinct KV, so each request attends over its
own KV as VIDUR predicted it. Each composition is one case, keyed
``<model>.batch.<composition>.fp16`` (e.g. ``llama2-7b.batch.p130x130-d2x344.fp16``, v2
``llama2-7b.batch.d1x120-d2x344.fp16``).

What runs is one forward pass of the model's decoder layers over the batch's tokens, with
random fp16 weights, built from the same operators and the same timing method as the VIDUR
operator profile (packages/vidur-runner/src/mtap_vidur_runner/profiler.py), so the replay
measures the composition of the profiled kernels, nothing else:

* per layer: RMSNorm, the fused QKV GEMM, RoPE, the K/V save (a slot scatter into a paged
  cache, as vLLM's ``reshape_and_cache``; one write-only cache shared by the layers), attention, the output GEMM, the residual add,
  RMSNorm, the fused gate/up GEMM, SiLU-and-mul, the down GEMM, the residual add. RMSNorm,
  RoPE and SiLU-and-mul are ``torch.compile``d (one fused kernel each) on CUDA, as in the
  profile; GEMMs are cuBLAS through ``F.linear``;
* attention is ``F.scaled_dot_product_attention`` (the FlashAttention-2 backend on Hopper)
  over contiguous K/V of each layer's own buffer: one call per prefill request (causal, the
  lower-right mask when the request has KV before its chunk) and one call per decode group
  (v1: all decode requests over K/V padded to the longest; v2: the requests of one KV length
  over that KV — SDPA takes no per-row lengths, so a group of equal lengths is the exact
  computation in the fewest calls). The outputs are concatenated into the batch's rows;
* no embedding, final norm, LM head or sampling: VIDUR's batch time (``model_time``) counts
  the decoder layers only.

Timing, per composition after ``warmup`` untimed calls (default 1; a new shape may compile): ``latency`` timing ``eager-end-to-end`` —
``eager_reps`` calls each from an idle GPU (host launch gaps and ``torch.compile`` guard checks
included); ``latency`` timing ``device`` — the call captured once in a CUDA graph and replayed
``reps`` times behind a short GPU sleep, bracketed by CUDA events (kernel time and on-device gaps,
no host launch gaps: what the profile's sleep-queued events measure per operator). On CPU (tests) both are
host-clock times of the same calls and the model is the plan's shape unless ``tiny``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cases import Case

#: the plan's composition key (schemas/batch-plan.v1.schema.json)
_PART = re.compile(r"^(p(\d+)x(\d+)|d(\d+)x(\d+))$")

#: the paged K/V save cache's block size (vidur's and the profile's)
BLOCK = 16
#: GPU busy-wait before each timed graph replay (~1 ms at 1.98 GHz), so the host has queued the replay
SLEEP_CYCLES = 2_000_000
#: the tiny model (CPU tests): the plan's layer structure at toy widths
TINY = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "ffn": 128}


@dataclass(frozen=True)
class Composition:
    prefill: tuple[tuple[int, int], ...]  # (query tokens, KV tokens including them)
    #: (requests, KV) per decode group: batch-plan v1 has one group (the requests padded to the longest
    #: KV), v2 one group per distinct KV (each request attends over its own KV)
    groups: tuple[tuple[int, int], ...] = ()

    @property
    def decode(self) -> tuple[int, int]:
        """(decode requests, longest KV), as batch-plan v1 names the decode part."""
        return (sum(n for n, _ in self.groups), max((kv for _, kv in self.groups), default=0))

    @property
    def tokens(self) -> int:
        return sum(q for q, _ in self.prefill) + self.decode[0]

    @property
    def kv_tokens(self) -> int:
        """K/V rows attention reads (each decode group at its KV)."""
        return sum(kv for _, kv in self.prefill) + sum(n * kv for n, kv in self.groups)

    @property
    def key(self) -> str:
        return "-".join([f"p{q}x{kv}" for q, kv in self.prefill] + [f"d{n}x{kv}" for n, kv in self.groups])


#: a replay is built from VIDUR's own operator set, in VIDUR's batches: a reference of class
#: shared-operators for VIDUR (mtap_schemas.kinds.REFERENCE_CLASSES), independent of any other tool
INDEPENDENCE = {"class": "shared-operators", "tools": ["vidur"],
                "what": "a replay of VIDUR's own operator set: each batch composition VIDUR formed, run as one Llama-2-7B forward pass "
                        "built from the operators VIDUR's H200 profile measured (fused QKV/up GEMMs, compiled RMSNorm/RoPE/SiLU-and-mul, "
                        "SDPA; packages/groundtruth/src/mtap_groundtruth/replay.py)"}

def parse_key(key: str) -> Composition:
    """The composition a plan key names (v1: at most one decode part; v2: one per distinct KV, by KV);
    ValueError for a malformed one."""
    prefill: list[tuple[int, int]] = []
    groups: list[tuple[int, int]] = []
    if not key:
        raise ValueError("empty composition key")
    for part in key.split("-"):
        m = _PART.match(part)
        if not m:
            raise ValueError(f"composition key {key!r}: part {part!r} is not p<q>x<kv> or d<n>x<kv>")
        if m.group(2):
            if groups:
                raise ValueError(f"composition key {key!r}: prefill part {part!r} after a decode part")
            q, kv = int(m.group(2)), int(m.group(3))
            if q < 1 or kv < q:
                raise ValueError(f"composition key {key!r}: prefill {part!r} needs 1 <= query <= kv")
            prefill.append((q, kv))
        else:
            n, kv = int(m.group(4)), int(m.group(5))
            if n < 1 or kv < 1:
                raise ValueError(f"composition key {key!r}: decode {part!r} needs count and KV >= 1")
            if groups and kv <= groups[-1][1]:
                raise ValueError(f"composition key {key!r}: decode parts must have distinct KVs in increasing order")
            groups.append((n, kv))
    return Composition(tuple(sorted(prefill)), tuple(groups))


def plan_cases(plan: dict[str, Any]) -> list[Case]:
    """One case per composition of a (validated) batch-plan v1 or v2 document, in the plan's order."""
    model = plan["model"]["key"]
    v2 = plan["schema_version"].startswith("2.")
    out = []
    seen: dict[Composition, tuple[int, str]] = {}
    for i, c in enumerate(plan["compositions"]):
        comp = parse_key(c["key"])
        if comp in seen:  # measured twice, paired twice: refused, never planned twice
            j, first = seen[comp]
            same = f"{c['key']!r}" + ("" if first == c["key"] else f" (the same composition as {first!r})")
            raise ValueError(f"composition {same} is listed twice (entries {j} and {i}); a plan lists each composition once")
        seen[comp] = (i, c["key"])
        decode = [list(g) for g in comp.groups] if v2 else list(comp.decode)
        if not v2 and len(comp.groups) > 1:
            raise ValueError(f"composition {c['key']!r}: several decode parts need a batch-plan v2 document")
        if [list(p) for p in comp.prefill] != sorted(c["prefill"]) or decode != c["decode"]:
            raise ValueError(f"composition {c['key']!r}: its prefill/decode fields disagree with the key")
        out.append(Case(f"{model}.batch.{c['key']}.fp16", plan["workload"], "replay", "replay",
                        {"composition": c["key"], "batch_tokens": comp.tokens, "prefill_requests": len(comp.prefill),
                         "decode_requests": comp.decode[0], "decode_groups": len(comp.groups),
                         "simulator_batches": c["batches"]}))
    return out


@dataclass
class ReplaySettings:
    device: Any  # torch.device
    reps: int = 3
    eager_reps: int = 2
    warmup: int = 1
    tiny: bool = False
    compile_ops: bool | None = None  # default: on CUDA only
    sync_debug: bool = False  # log the ops of one call that synchronize with the GPU (env MTAP_REPLAY_SYNC_DEBUG=1)
    log: Callable[[str], None] = field(default=lambda _m: None)


def _maybe_compile(torch: Any, fn: Callable, enabled: bool, log: Callable[[str], None]) -> Callable:
    """torch.compile(fn, dynamic=True), falling back to eager for good if compiling fails."""
    if not enabled:
        return fn
    compiled = torch.compile(fn, dynamic=True)
    state = {"fn": compiled, "ok": False}

    def call(*args: Any) -> Any:
        if state["ok"]:
            return state["fn"](*args)
        try:
            out = state["fn"](*args)
        except Exception as exc:  # noqa: BLE001 - depends on the machine's compiler
            log(f"torch.compile failed for {fn.__name__} ({type(exc).__name__}: {str(exc)[:200]}); using eager")
            state["fn"] = fn
            out = fn(*args)
        state["ok"] = True
        return out

    call.__name__ = fn.__name__
    return call


class Model:
    """The plan model's decoder layers (random fp16 weights; fp32 on CPU) and per-layer K/V buffers."""

    def __init__(self, shape: dict[str, int], max_kv_tokens: int, max_tokens: int, s: ReplaySettings) -> None:
        import torch

        self.torch = torch
        self.F = torch.nn.functional
        self.device = s.device
        self.dt = torch.float16 if s.device.type == "cuda" else torch.float32
        shape = dict(shape) | (TINY if s.tiny else {})
        self.layers, self.h, self.heads = shape["layers"], shape["hidden"], shape["heads"]
        self.kvh, self.ffn = shape["kv_heads"], shape["ffn"]
        self.hd = self.h // self.heads
        gen = torch.Generator(device=s.device).manual_seed(0)
        dev, dt, hd = s.device, self.dt, self.hd

        def w(*sh: int) -> Any:  # uniform like sarathi's initialize_dummy_weights (and the profile)
            return (torch.rand(*sh, device=dev, dtype=dt, generator=gen) - 0.5) * 2e-3

        self.weights = [
            {
                "ln1": torch.ones(self.h, device=dev, dtype=dt),
                "qkv": w((self.heads + 2 * self.kvh) * hd, self.h),
                "o": w(self.h, self.heads * hd),
                "ln2": torch.ones(self.h, device=dev, dtype=dt),
                "up": w(2 * self.ffn, self.h),
                "down": w(self.h, self.ffn),
            }
            for _ in range(self.layers)
        ]
        # attention reads each layer's own contiguous K/V (as the profile's kbuf/vbuf); new rows are
        # saved into each layer's paged cache by slot
        self.kv_rows = max(1, max_kv_tokens)
        self.kbuf = [torch.randn(self.kv_rows, self.kvh, hd, device=dev, dtype=dt, generator=gen) for _ in range(self.layers)]
        self.vbuf = [torch.randn(self.kv_rows, self.kvh, hd, device=dev, dtype=dt, generator=gen) for _ in range(self.layers)]
        # one paged save cache for all layers: it is only written (a scatter), so sharing it changes no
        # access the timing sees, and per-layer copies would take 80 GB for the largest batches
        self.slots = max(4 * max_tokens, 64 * BLOCK)
        self.slots += -self.slots % BLOCK
        k_cache = torch.empty(self.slots, self.kvh, hd, device=dev, dtype=dt)
        v_cache = torch.empty(self.slots, self.kvh, hd, device=dev, dtype=dt)
        self.k_cache, self.v_cache = [k_cache] * self.layers, [v_cache] * self.layers
        max_pos = max(4096, max_kv_tokens)
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd))
        freqs = torch.outer(torch.arange(max_pos, device=dev, dtype=torch.float32), inv)
        cos_cache, sin_cache = freqs.cos().to(dt), freqs.sin().to(dt)
        heads, kvh = self.heads, self.kvh
        F = self.F

        def rms_norm(x: Any, weight: Any) -> Any:
            xf = x.float()
            xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
            return xf.to(x.dtype) * weight

        def rope(positions: Any, q: Any, k: Any) -> Any:  # neox style, one function so compile fuses it
            cos = cos_cache[positions].unsqueeze(1)
            sin = sin_cache[positions].unsqueeze(1)
            t = positions.shape[0]

            def rot(x: Any, n: int) -> Any:
                x = x.reshape(t, n, hd)
                x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
                return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).view(t, n * hd)

            return rot(q, heads), rot(k, kvh)

        def silu_and_mul(x: Any) -> Any:
            d = x.shape[-1] // 2
            return F.silu(x[..., :d]) * x[..., d:]

        enabled = s.compile_ops if s.compile_ops is not None else s.device.type == "cuda"
        self.compiled = bool(enabled)
        self.rms_norm = _maybe_compile(torch, rms_norm, enabled, s.log)
        self.rope = _maybe_compile(torch, rope, enabled, s.log)
        self.act = _maybe_compile(torch, silu_and_mul, enabled, s.log)
        self.gen = gen

    def batch(self, comp: Composition) -> Callable[[], Any]:
        """The forward pass over one composition's tokens, as a no-argument callable."""
        torch, F = self.torch, self.F
        dev, dt, hd, heads, kvh = self.device, self.dt, self.hd, self.heads, self.kvh
        if comp.kv_tokens > self.kv_rows:
            raise ValueError(f"composition {comp.key} reads {comp.kv_tokens} K/V rows, the buffers hold {self.kv_rows}")
        t = comp.tokens
        x0 = torch.randn(t, self.h, device=dev, dtype=dt, generator=self.gen)
        positions: list[int] = []
        for q, kv in comp.prefill:
            positions += range(kv - q, kv)
        n_dec = comp.decode[0]
        for n, kv in comp.groups:
            positions += [kv - 1] * n
        pos = torch.tensor(positions, device=dev, dtype=torch.long)
        # each request's new rows go to its own run of blocks, as with a block table
        blocks = torch.randperm(self.slots // BLOCK, device=dev, generator=self.gen)[: math.ceil(t / BLOCK) + len(comp.prefill) + n_dec]
        slot = (blocks[:, None] * BLOCK + torch.arange(BLOCK, device=dev)[None, :]).flatten()[:t]
        # attention calls: (query row offset, query rows, kv row offset, kv rows per sequence, sequences, mask kind)
        calls = []
        qo = ko = 0
        for q, kv in comp.prefill:
            calls.append((qo, q, ko, kv, 1, "lower-right" if kv > q else "causal"))
            qo += q
            ko += kv
        for n, kv in comp.groups:  # one call per decode group: each request over its own KV
            calls.append((qo, 1, ko, kv, n, "none"))
            qo += n
            ko += n * kv
        from torch.nn.attention.bias import causal_lower_right

        masks = {i: causal_lower_right(q, kv) for i, (_, q, _, kv, _, kind) in enumerate(calls) if kind == "lower-right"}
        scale = hd**-0.5
        layers = list(zip(self.weights, self.kbuf, self.vbuf, self.k_cache, self.v_cache))
        rms_norm, rope, act = self.rms_norm, self.rope, self.act
        split = [heads * hd, kvh * hd, kvh * hd]

        def forward() -> Any:
            x = x0
            for wts, kb, vb, kc, vc in layers:
                h1 = rms_norm(x, wts["ln1"])
                qkv = F.linear(h1, wts["qkv"])
                q, k, v = qkv.split(split, dim=-1)
                q, k = rope(pos, q, k)
                kc.index_copy_(0, slot, k.view(t, kvh, hd))
                vc.index_copy_(0, slot, v.reshape(t, kvh, hd))
                outs = []
                for i, (qo_, nq, ko_, nkv, nseq, kind) in enumerate(calls):
                    qi = q[qo_ : qo_ + nq * nseq].view(nseq, nq, heads, hd).transpose(1, 2)
                    ki = kb[ko_ : ko_ + nkv * nseq].view(nseq, nkv, kvh, hd).transpose(1, 2)
                    vi = vb[ko_ : ko_ + nkv * nseq].view(nseq, nkv, kvh, hd).transpose(1, 2)
                    if kind == "causal":
                        y = F.scaled_dot_product_attention(qi, ki, vi, is_causal=True, scale=scale)
                    elif kind == "lower-right":
                        y = F.scaled_dot_product_attention(qi, ki, vi, attn_mask=masks[i], scale=scale)
                    else:
                        y = F.scaled_dot_product_attention(qi, ki, vi, scale=scale)
                    outs.append(y.transpose(1, 2).reshape(nq * nseq, heads * hd))
                attn = outs[0] if len(outs) == 1 else torch.cat(outs)
                x = x + F.linear(attn, wts["o"])
                h2 = rms_norm(x, wts["ln2"])
                x = x + F.linear(act(F.linear(h2, wts["up"])), wts["down"])
            return x

        return forward


def time_device(fn: Callable[[], Any], reps: int, device: Any) -> list[float]:
    """Per-call device ms: one call captured in a CUDA graph (after one warm call on a side stream,
    as capture needs), replayed ``reps`` times, each behind a short GPU sleep (so the host has
    queued the replay before the start event) and bracketed by CUDA events: kernel time and the
    gaps between kernels on the device, no host launch gaps (groundtruth's "device" timing)."""
    from . import timing

    return timing.graph(fn, device, warmup=0, iters=reps, reps=1, side_warm=1, sleep_cycles=SLEEP_CYCLES)


def time_eager(fn: Callable[[], Any], reps: int, device: Any) -> tuple[list[float], float]:
    """(per-call eager ms from an idle GPU, median host enqueue ms); host clock on CPU."""
    import torch

    out, host = [], []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            t0 = time.perf_counter()
            fn()
            host.append((time.perf_counter() - t0) * 1e3)
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            dt = (time.perf_counter() - t0) * 1e3
            out.append(dt)
            host.append(dt)
    return out, sorted(host)[len(host) // 2]


def measure(model: Model, comp: Composition, s: ReplaySettings) -> tuple[list[dict], dict[str, Any]]:
    """(metrics, extra parameters) of one composition."""
    import torch

    from . import stats

    with torch.inference_mode():
        fn = model.batch(comp)
        if s.warmup:
            time_eager(fn, s.warmup, s.device)  # warm-up (a new shape may compile)
        if s.sync_debug and s.device.type == "cuda":  # name every op that synchronizes with the GPU
            import warnings

            torch.cuda.set_sync_debug_mode("warn")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    fn()
                    torch.cuda.synchronize(s.device)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            s.log(f"sync debug, {comp.key}: {len(caught)} synchronizing call(s)"
                  + "".join(f"\n  {w.filename}:{w.lineno}: {str(w.message)[:200]}" for w in caught[:10]))
        eager, host_ms = time_eager(fn, s.eager_reps, s.device)
        metrics = []
        extra: dict[str, Any] = {"host_enqueue_ms": round(host_ms, 3), "reps": s.reps, "eager_reps": s.eager_reps}
        if s.device.type == "cuda":
            try:
                metrics += stats.time_metrics(time_device(fn, s.reps, s.device), "device")
            except RuntimeError as exc:  # a capture the driver refused: eager only, saying why
                extra["device_timing_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        metrics += stats.time_metrics(eager, "eager-end-to-end")
    return metrics, extra


def buffer_sizes(cases: list[Case]) -> tuple[int, int]:
    """(largest K/V rows, largest batch tokens) over the cases' compositions."""
    comps = [parse_key(c.params["composition"]) for c in cases]
    return max((c.kv_tokens for c in comps), default=1), max((c.tokens for c in comps), default=1)


def run_cases(cases: list[Case], plan: dict[str, Any], settings: ReplaySettings, hardware: str,
              progress: Callable[[Case], None] | None = None, deadline: float | None = None,
              on_case: Callable[[Case, dict], None] | None = None, common: dict | None = None) -> list[dict]:
    """Measure each composition into a tool-run case; one that raises becomes ``failed``. Past the
    ``deadline`` no case is started and none is recorded (the document holds what was measured)."""
    import mtap_schemas.toolrun as tr

    from . import record

    common = dict(common or {})
    kv_rows, tokens = buffer_sizes(cases)
    model = Model(plan["model"], kv_rows, tokens, settings) if cases else None
    if model is not None:
        common["compiled_ops"] = model.compiled
        if settings.tiny:
            common["tiny"] = True
    out = []
    for case in cases:
        base = {"workload": case.workload, "hardware": hardware, "key": case.key}
        params = dict(case.params) | common
        if deadline is not None and time.monotonic() > deadline:
            # the rest stay out of the document (a later run measures them from a plan of what is left:
            # `vidur-runner batches --skip-measured`), so no case is recorded as a failure it is not
            settings.log(f"--time-budget spent: {len(cases) - len(out)} of {len(cases)} compositions left unmeasured")
            break
        try:
            metrics, extra = measure(model, parse_key(case.params["composition"]), settings)
            result = tr.ok(case.case_id(hardware), **base, parameters=dict(sorted((params | extra).items())), metrics=metrics,
                           independence=INDEPENDENCE)
        except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others
            result = record.measurement_failed(case.case_id(hardware), base, params, exc)
        record.deliver(out, case, result, progress, on_case)
    return out
