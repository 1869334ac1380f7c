"""Measure the operators VIDUR needs for a dense Llama-style model and write VIDUR's CSV schema.

Needs only PyTorch and the standard library (it runs on a GPU machine where neither vidur nor
this package's other dependencies are installed):

    PYTHONPATH=packages/vidur-runner/src python3 -m mtap_vidur_runner.profiler --output-dir OUT

or, with the package installed with its `[profile]` extra, `vidur-runner profile`.

What it writes (upstream layout, `<output-dir>/<model>/`):
- `mlp.csv.xz`: one row per token count of vidur's grid, the ten per-layer ops VIDUR's MLP-side
  predictors read (`emb`, `input_layernorm`, `attn_pre_proj`, `attn_rope`, `attn_post_proj`,
  `post_attention_layernorm`, `mlp_up_proj`, `mlp_act`, `mlp_down_proj`, `add`), each as
  `time_stats.<op>.{min,max,mean,median,std}` in milliseconds, then the model columns; the
  column set and order are those of upstream's `data/profiling/compute/*/*/mlp.csv`.
- `attention.csv.xz`: one row per (prefill chunk, KV length, batch) of vidur's attention grid:
  `time_stats.attn_kv_cache_save.*`, `time_stats.attn_prefill.*` (prefill rows),
  `time_stats.attn_decode.*` (decode rows) and the columns of vidur's `AttentionWrapper.profile`.
- `profile-meta.json`: the device, torch/CUDA versions, the grid, the timing method, the wall
  time, grid coverage and one provenance record per run (GPU, torch/CUDA, date, command, what
  that run measured).

Resumable: a run appends to the profile already in `<output-dir>/<model>/` and measures only the
grid points missing there (so runs on different machines of the same GPU add up; a profile of
another GPU is refused). Each measured point is appended at once to `mlp.partial.csv` /
`attention.partial.csv` (a killed run keeps every finished point; the next run, or
`--coverage`, merges them into the `.csv.xz` files). `--time-budget` stops measuring at a point
boundary and still writes everything. `--coverage` merges and reports coverage without torch.

Implementation notes (differences from vidur's own profiler, which needs sarathi-serve):
- The ops are PyTorch eager ops (linear layers through cuBLAS, `scaled_dot_product_attention`
  for attention, optionally `torch.compile`d RMSNorm / RoPE / SiLU-and-mul, which fuses them
  into one kernel each as sarathi's CUDA kernels are) with random fp16 weights.
- Attention reads a contiguous KV cache through PyTorch's SDPA (FlashAttention-2 backend on
  Hopper; lower-right causal mask for chunked prefill) instead of FlashInfer's paged kernels;
  `attn_kv_cache_save` scatters the new K/V rows into a paged cache by slot index, as vLLM's
  `reshape_and_cache` does.
- Timing: CUDA events around each op. Before each batch of timed calls the stream is filled
  with a `torch.cuda._sleep` so that every launch is queued ahead of the GPU: the events then
  measure device time back to back, not host launch gaps.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import lzma
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from mtap_vidur_runner import engine_ops, grid

#: VIDUR's model configs (vidur/config/model_config.py) for the models this profiler knows.
MODELS: dict[str, dict] = {
    "meta-llama/Llama-2-7b-hf": {
        "num_layers": 32,
        "num_q_heads": 32,
        "num_kv_heads": 32,
        "embedding_dim": 4096,
        "mlp_hidden_dim": 11008,
        "max_model_len": 4096,
        "use_gated_mlp": True,
        "vocab_size": 32768,
        "rope_theta": 10000.0,
    },
    # a toy shape for testing the profiler on a CPU (vidur has no such model)
    "mtap/tiny-test": {
        "num_layers": 8,
        "num_q_heads": 4,
        "num_kv_heads": 4,
        "embedding_dim": 256,
        "mlp_hidden_dim": 512,
        "max_model_len": 256,
        "use_gated_mlp": True,
        "vocab_size": 1024,
        "rope_theta": 10000.0,
    },
}

MLP_OPS = [
    "emb",
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
]
MLP_MODEL_COLUMNS = [
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "num_tokens",
    "num_tensor_parallel_workers",
]
ATTN_OPS = ["attn_kv_cache_save", "attn_prefill", "attn_decode"]
ATTN_MODEL_COLUMNS = [
    "n_embd",
    "n_q_head",
    "n_kv_head",
    "block_size",
    "num_tensor_parallel_workers",
    "max_model_len",
    "batch_size",
    "prefill_chunk_size",
    "kv_cache_size",
    "is_prefill",
    "attention_backend",
]
STATS = ["min", "max", "mean", "median", "std"]

MLP_WARMUP, MLP_ACTIVE = 2, 20  # vidur's MlpWrapper
#: GPU sleep queued ahead of each op's timed calls (ms). The host must queue all ACTIVE calls before it
#: ends, or the events time host launch gaps: 2 ms was too short for tiny torch.compile'd ops (guard
#: checks ~50-100 us a call), seen as medians 5-15x the min on a few H100/H200 points; 20 ms since 1.1.
MLP_SLEEP_MS, ATTN_SLEEP_MS = 20.0, 1.0
ATTN_WARMUP, ATTN_ACTIVE = 2, 5  # vidur's AttentionWrapper
#: the engine's attention step is ~10 launches (K/V write and read-back, copies, SDPA): a longer sleep
#: so the host queues all ACTIVE calls before the GPU reaches them
ENGINE_ATTN_SLEEP_MS = 5.0
#: operator sets: "vidur" (vLLM-like fused ops, the committed profiles) or "hf-cb" (transformers' engine's own)
OPS = ("vidur", "hf-cb")


def stats(times_ms: list[float]) -> dict[str, float]:
    """min/max/mean/median/std (population std, as numpy's default) of a list of times."""
    mean = statistics.fmean(times_ms)
    return {
        "min": min(times_ms),
        "max": max(times_ms),
        "mean": mean,
        "median": statistics.median(times_ms),
        "std": math.sqrt(sum((t - mean) ** 2 for t in times_ms) / len(times_ms)),
    }


def mlp_header() -> list[str]:
    return [f"time_stats.{op}.{s}" for op in MLP_OPS for s in STATS] + MLP_MODEL_COLUMNS


def attention_header() -> list[str]:
    return [f"time_stats.{op}.{s}" for op in ATTN_OPS for s in STATS] + ATTN_MODEL_COLUMNS


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def write_csv_xz(path: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in header])
    tmp = path.with_name(path.name + ".tmp")
    # preset 9 | extreme: smallest files; deterministic for the same input
    tmp.write_bytes(lzma.compress(buf.getvalue().encode(), preset=9 | lzma.PRESET_EXTREME))
    os.replace(tmp, path)


#: mtap hardware id -> (profile folder under data/profiles/vidur, text torch's device name must contain)
HARDWARE = {
    "H100-SXM5-80GB": ("h100", "H100"),
    "H200-SXM-141GB": ("h200", "H200"),
    "A100-SXM4-80GB": ("a100", "A100"),
}
PARTIAL = {"mlp": "mlp.partial.csv", "attention": "attention.partial.csv"}


class ProfileError(Exception):
    """A profile folder that cannot be resumed (other GPU, other grid, other model, bad file): one line."""


def _read_csv_text(text: str, where: str, header: list[str], complete_only: bool) -> list[dict[str, str]]:
    lines = text.splitlines(keepends=True)
    if not lines:
        return []
    got = next(csv.reader([lines[0]]))
    if got != header:
        raise ProfileError(f"{where}: columns differ from this profiler's ({len(got)} vs {len(header)}); not resuming into it")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.endswith("\n") and complete_only:
            break  # a killed run's half-written last line
        vals = next(csv.reader([line]), [])
        if len(vals) != len(header):
            if complete_only:
                continue
            raise ProfileError(f"{where}: line {i}: {len(vals)} fields, expected {len(header)}")
        rows.append(dict(zip(header, vals)))
    return rows


def _read_xz(path: Path, limit: int = 1 << 30) -> bytes:
    """Decompress with a bound (stdlib only: the profiler runs where mtap-schemas may not be installed)."""
    out = bytearray()
    decomp = lzma.LZMADecompressor()
    with open(path, "rb") as handle:
        while not decomp.eof:
            chunk = handle.read(1 << 16) if decomp.needs_input else b""
            if decomp.needs_input and not chunk:
                raise ValueError("truncated .xz stream")
            out += decomp.decompress(chunk, max_length=limit + 1 - len(out))
            if len(out) > limit:
                raise ValueError(f"decompresses to more than {limit} bytes")
    return bytes(out)


def read_rows(folder: Path, kind: str) -> list[dict[str, str]]:
    """Rows of `<kind>.csv.xz` then `<kind>.partial.csv` in `folder` (strings, as written)."""
    header = mlp_header() if kind == "mlp" else attention_header()
    rows: list[dict[str, str]] = []
    xz = folder / f"{kind}.csv.xz"
    if xz.is_file():
        try:
            text = _read_xz(xz).decode()
        except (lzma.LZMAError, UnicodeDecodeError, ValueError) as exc:
            raise ProfileError(f"{xz}: not a readable xz CSV ({exc})") from None
        rows += _read_csv_text(text, str(xz), header, complete_only=False)
    part = folder / PARTIAL[kind]
    if part.is_file():
        rows += _read_csv_text(part.read_bytes().decode(errors="replace"), str(part), header, complete_only=True)
    return rows


def mlp_key(row: dict) -> int:
    return int(row["num_tokens"])


def attention_key(row: dict) -> grid.AttentionInput:
    p = row["is_prefill"]
    return grid.AttentionInput(int(row["prefill_chunk_size"]), int(row["kv_cache_size"]), int(row["batch_size"]), p is True or p == "True")


def _dedupe(rows: list[dict], key) -> dict:
    """key -> row, the first measurement of a point kept (a resumed run never re-measures one)."""
    out: dict = {}
    for r in rows:
        out.setdefault(key(r), r)
    return out


def grid_points(max_tokens: int, max_seq_len: int, max_batch_size: int, max_chunk_size: int) -> tuple[list[int], list[grid.AttentionInput]]:
    """The points vidur's profiler measures (and its predictors are fitted on): MLP token counts
    and attention inputs, each once, in vidur's order."""
    tokens = list(dict.fromkeys(grid.num_tokens_to_profile(max_tokens)))
    inputs = list(dict.fromkeys(grid.attention_inputs(max_seq_len, 1, max_batch_size, max_chunk_size)))
    return tokens, inputs


def attention_order(inputs: list[grid.AttentionInput]) -> list[grid.AttentionInput]:
    """Measuring order that leaves a usable grid when a time budget cuts it: every prefill point
    first (few, and they set TTFT), then the decode points in a fixed-seed (42) random order,
    so a cut-off run still covers every batch size and KV length evenly."""
    prefill = [ai for ai in inputs if ai.is_prefill]
    decode = [ai for ai in inputs if not ai.is_prefill]
    random.Random(42).shuffle(decode)
    return prefill + decode


def coverage(folder: Path, tokens: list[int], inputs: list[grid.AttentionInput]) -> dict:
    """Points measured / points of the grid, for MLP and attention (prefill and decode apart)."""
    mlp = _dedupe(read_rows(folder, "mlp"), mlp_key)
    att = _dedupe(read_rows(folder, "attention"), attention_key)
    need_t, need_a = set(tokens), set(inputs)

    def frac(have: int, need: int) -> dict:
        return {"measured": have, "needed": need, "percent": round(100.0 * have / need, 2) if need else 100.0}

    pre = {ai for ai in need_a if ai.is_prefill}
    return {
        "mlp": frac(len(need_t & set(mlp)), len(need_t)),
        "attention": frac(len(need_a & set(att)), len(need_a)),
        "attention_prefill": frac(len(pre & set(att)), len(pre)),
        "attention_decode": frac(len((need_a - pre) & set(att)), len(need_a - pre)),
        "outside_grid": {"mlp": len(set(mlp) - need_t), "attention": len(set(att) - need_a)},
    }


def merge_partials(folder: Path) -> dict[str, int]:
    """Fold `*.partial.csv` into the `.csv.xz` files (sorted in vidur's grid order), then remove
    them. Safe to repeat; returns the row count of each file."""
    counts = {}
    for kind, key, header in (("mlp", mlp_key, mlp_header()), ("attention", attention_key, attention_header())):
        part = folder / PARTIAL[kind]
        xz = folder / f"{kind}.csv.xz"
        rows = _dedupe(read_rows(folder, kind), key)
        counts[kind] = len(rows)
        if not part.is_file():
            continue
        if kind == "mlp":
            ordered = sorted(rows.values(), key=lambda r: -mlp_key(r))  # vidur's order: largest first
        else:
            # prefill rows first, then decode; each by (chunk, KV length, batch)
            ordered = sorted(rows.values(), key=lambda r: (not attention_key(r).is_prefill, int(r["prefill_chunk_size"]),
                                                           int(r["kv_cache_size"]), int(r["batch_size"])))
        write_csv_xz(xz, header, ordered)
        part.unlink()
    return counts


class _Appender:
    """Appends rows to a partial CSV, one flushed line per measured point."""

    def __init__(self, path: Path, header: list[str]):
        new = not path.is_file() or path.stat().st_size == 0
        if not new:
            data = path.read_bytes()
            if not data.endswith(b"\n"):  # drop a half-written last line left by a killed run
                path.write_bytes(data[: data.rfind(b"\n") + 1])
        self.f = open(path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.header = header
        self.w = csv.writer(self.f, lineterminator="\n")
        if new:
            self.w.writerow(header)
            self.f.flush()
        self.n = 0

    def add(self, row: dict) -> None:
        self.w.writerow([_fmt(row.get(c)) for c in self.header])
        self.f.flush()
        self.n += 1

    def close(self) -> None:
        self.f.close()


class Timer:
    """Device-time measurement of a callable, launches queued behind a GPU sleep."""

    def __init__(self, torch, device: str):
        self.torch = torch
        self.cuda = device.startswith("cuda")

    def time(self, fn, warmup: int, active: int, sleep_ms: float = 2.0) -> list[float]:
        """Per-call device times (ms) of `active` calls after `warmup` untimed ones."""
        torch = self.torch
        for _ in range(warmup):
            fn()
        if not self.cuda:
            out = []
            for _ in range(active):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1e3)
            return out
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(active)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(active)]
        # about sleep_ms at up to 2 GHz (longer at lower clocks, which only adds idle time)
        torch.cuda._sleep(int(sleep_ms * 1e-3 * 2e9))
        for s, e in zip(starts, ends):
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def _maybe_compile(torch, fn, enabled: bool, log):
    """torch.compile(fn) that falls back to eager for good if compiling or its first call fails."""
    if not enabled:
        return fn
    try:
        compiled = torch.compile(fn, dynamic=True)
    except Exception as exc:  # pragma: no cover - depends on the machine's compiler
        log(f"torch.compile unavailable ({type(exc).__name__}: {exc}); using eager for {fn.__name__}")
        return fn
    state = {"fn": compiled, "ok": False}

    def call(*args):
        if state["ok"]:
            return state["fn"](*args)
        try:
            out = state["fn"](*args)
            state["ok"] = True
            return out
        except Exception as exc:  # pragma: no cover
            log(f"torch.compile failed for {fn.__name__} ({type(exc).__name__}: {str(exc)[:200]}); using eager")
            state["fn"], state["ok"] = fn, True
            return fn(*args)

    call.__name__ = fn.__name__
    return call


def profile_mlp(
    torch, cfg: dict, device: str, dtype, token_counts: list[int], timer: Timer, compile_ops: bool, log,
    sink: _Appender, deadline: float = math.inf, engine: dict | None = None,
) -> tuple[int, int]:
    """Measure each token count, appending its row to `sink`; (measured, skipped for time). ``engine``
    (``--ops hf-cb``: {q_pad, kv_pad, max_batch_tokens}) times transformers' engine's modules instead."""
    if engine is not None:
        return _profile_mlp_engine(torch, cfg, device, dtype, token_counts, timer, log, sink, deadline, engine)
    gen = torch.Generator(device=device).manual_seed(0)
    weights = _mlp_weights(torch, cfg, device, dtype, gen)
    kernels = _mlp_kernels(torch, cfg, weights, compile_ops, log)
    return _measure_mlp_points(torch, cfg, token_counts, timer, log, sink, deadline,
                               lambda n: _mlp_point_ops(torch, cfg, device, dtype, n, weights, kernels, gen))


def _mlp_weights(torch, cfg: dict, device: str, dtype, gen) -> dict:
    """One layer's random weights (no hub access: uniform like sarathi's initialize_dummy_weights), unit norm
    weights and the RoPE cos/sin caches, drawn from ``gen`` in a fixed order."""
    h, heads, kv_heads = cfg["embedding_dim"], cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = h // heads
    ffn, vocab = cfg["mlp_hidden_dim"], cfg["vocab_size"]

    def w(*shape):
        return (torch.rand(*shape, device=device, dtype=dtype, generator=gen) - 0.5) * 2e-3

    out = {
        "emb": w(vocab, h),
        "qkv": w((heads + 2 * kv_heads) * hd, h),
        "o": w(h, heads * hd),
        "up": w(2 * ffn if cfg["use_gated_mlp"] else ffn, h),
        "down": w(h, ffn),
        "ln1": torch.ones(h, device=device, dtype=dtype),
        "ln2": torch.ones(h, device=device, dtype=dtype),
    }
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    freqs = torch.outer(torch.arange(cfg["max_model_len"], device=device, dtype=torch.float32), inv_freq)
    out["cos"], out["sin"] = freqs.cos().to(dtype), freqs.sin().to(dtype)
    return out


def _mlp_kernels(torch, cfg: dict, weights: dict, compile_ops: bool, log) -> dict:
    """The ops sarathi runs as fused CUDA kernels (RMSNorm, RoPE, SiLU-and-mul), each one function so that
    ``torch.compile`` fuses it into one kernel (eager when ``compile_ops`` is off or compiling fails), and the
    residual add (eager)."""
    F = torch.nn.functional
    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = cfg["embedding_dim"] // heads
    cos_cache, sin_cache = weights["cos"], weights["sin"]

    def rms_norm(x, weight):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
        return xf.to(x.dtype) * weight

    def rope(positions, q, k):  # neox style, in one function so compile fuses it
        cos = cos_cache[positions].unsqueeze(1)
        sin = sin_cache[positions].unsqueeze(1)
        t = positions.shape[0]

        def rot(x, n):
            x = x.view(t, n, hd)
            x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
            return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).view(t, n * hd)

        return rot(q, heads), rot(k, kv_heads)

    def silu_and_mul(x):
        d = x.shape[-1] // 2
        return F.silu(x[..., :d]) * x[..., d:]

    def add(a, b):
        return a + b

    return {
        "rms_norm": _maybe_compile(torch, rms_norm, compile_ops, log),
        "rope": _maybe_compile(torch, rope, compile_ops, log),
        "act": _maybe_compile(torch, silu_and_mul if cfg["use_gated_mlp"] else F.gelu, compile_ops, log),
        "add": add,
    }


def _mlp_point_ops(torch, cfg: dict, device: str, dtype, n: int, weights: dict, kernels: dict, gen) -> dict:
    """The ten MLP-side ops of one token count ``n``, as callables on random inputs of that size."""
    F = torch.nn.functional
    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    h = cfg["embedding_dim"]
    hd = h // heads
    rms_norm, rope, act_fn, add = kernels["rms_norm"], kernels["rope"], kernels["act"], kernels["add"]
    ids = torch.randint(0, cfg["vocab_size"], (n,), device=device, generator=gen)
    pos = torch.arange(n, device=device) % cfg["max_model_len"]
    x = torch.randn(n, h, device=device, dtype=dtype, generator=gen)
    qkv = F.linear(x, weights["qkv"])
    q, k, _ = qkv.split([heads * hd, kv_heads * hd, kv_heads * hd], dim=-1)
    q, k = q.contiguous(), k.contiguous()
    attn_out = torch.randn(n, heads * hd, device=device, dtype=dtype, generator=gen)
    up = F.linear(x, weights["up"])
    act = act_fn(up)
    return {
        "emb": lambda: F.embedding(ids, weights["emb"]),
        "input_layernorm": lambda: rms_norm(x, weights["ln1"]),
        "attn_pre_proj": lambda: F.linear(x, weights["qkv"]),
        "attn_rope": lambda: rope(pos, q, k),
        "attn_post_proj": lambda: F.linear(attn_out, weights["o"]),
        "post_attention_layernorm": lambda: rms_norm(x, weights["ln2"]),
        "mlp_up_proj": lambda: F.linear(x, weights["up"]),
        "mlp_act": lambda: act_fn(up),
        "mlp_down_proj": lambda: F.linear(act, weights["down"]),
        "add": lambda: add(x, attn_out),
    }


def _measure_mlp_points(torch, cfg: dict, token_counts: list[int], timer: Timer, log, sink: _Appender, deadline: float,
                        ops_of) -> tuple[int, int]:
    """Time ``ops_of(n)`` for each token count into `sink` until ``deadline``; (measured, skipped for time)."""
    measured = 0
    with torch.inference_mode():
        for i, n in enumerate(token_counts):
            if time.monotonic() > deadline:
                log(f"mlp: time budget reached, {len(token_counts) - i} of {len(token_counts)} token counts not profiled")
                return measured, len(token_counts) - i
            sink.add(_mlp_row(cfg, n, ops_of(n), timer))
            measured += 1
    return measured, 0


def _profile_mlp_engine(torch, cfg, device, dtype, token_counts, timer, log, sink, deadline, engine) -> tuple[int, int]:
    """profile_mlp for ``--ops hf-cb``: a real Llama decoder layer's modules (engine_ops.mlp_ops)."""
    model = engine_ops.layer(torch, cfg, device, dtype)
    return _measure_mlp_points(
        torch, cfg, token_counts, timer, log, sink, deadline,
        lambda n: engine_ops.mlp_ops(torch, cfg, device, dtype, n, engine.get("q_pad", 0), engine.get("max_batch_tokens"), model=model))


def _mlp_row(cfg: dict, n: int, ops: dict, timer: Timer) -> dict:
    """One mlp.csv row: the model columns, then each op's time stats over vidur's warm-up/active calls."""
    row = {
        "n_head": cfg["num_q_heads"],
        "n_kv_head": cfg["num_kv_heads"],
        "n_embd": cfg["embedding_dim"],
        "n_expanded_embd": cfg["mlp_hidden_dim"],
        "vocab_size": cfg["vocab_size"],
        "use_gated_mlp": cfg["use_gated_mlp"],
        "num_tokens": n,
        "num_tensor_parallel_workers": 1,
    }
    for op, fn in ops.items():
        for s, v in stats(timer.time(fn, MLP_WARMUP, MLP_ACTIVE, sleep_ms=MLP_SLEEP_MS)).items():
            row[f"time_stats.{op}.{s}"] = v
    return row


def profile_attention(
    torch, cfg: dict, device: str, dtype, inputs: list[grid.AttentionInput], timer: Timer, block_size: int,
    deadline: float, log, sink: _Appender, engine: dict | None = None,
) -> tuple[int, int]:
    """Measure each input, appending its row to `sink`; (measured, skipped for time). ``engine`` as for
    profile_mlp: the engine's paged SDPA step (engine_ops.attention_ops) instead of per-sequence SDPA."""
    if not inputs:
        return 0, 0
    if engine is not None:
        return _profile_attention_engine(torch, cfg, device, dtype, inputs, timer, block_size, deadline, log, sink, engine)
    gen = torch.Generator(device=device).manual_seed(1)
    buffers = _sdpa_buffers(torch, cfg, device, dtype, inputs, block_size, gen)
    return _measure_attention_points(
        torch, cfg, inputs, timer, block_size, deadline, log, sink, backend="torch-sdpa", attend_sleep_ms=ATTN_SLEEP_MS,
        ops_of=lambda ai: _sdpa_point_ops(torch, cfg, device, dtype, ai, buffers, block_size, gen))


def _sdpa_buffers(torch, cfg: dict, device: str, dtype, inputs: list[grid.AttentionInput], block_size: int, gen) -> dict:
    """What every grid point reads and writes, allocated once for the largest: contiguous K/V for the largest
    (batch x (kv + new tokens)), and the paged cache the new tokens are saved into (vLLM's reshape_and_cache)."""
    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = cfg["embedding_dim"] // heads
    max_tokens = max(ai.batch_size * (ai.kv_cache_size + max(ai.prefill_chunk_size, 1)) for ai in inputs)
    kbuf = torch.randn(max_tokens, kv_heads, hd, device=device, dtype=dtype, generator=gen)
    vbuf = torch.randn(max_tokens, kv_heads, hd, device=device, dtype=dtype, generator=gen)
    max_new = max(max(ai.prefill_chunk_size, ai.batch_size) for ai in inputs)
    num_slots = max(max_new * 4, 64 * block_size)
    return {"k": kbuf, "v": vbuf, "num_slots": num_slots,
            "k_cache": torch.empty(num_slots, kv_heads, hd, device=device, dtype=dtype),
            "v_cache": torch.empty(num_slots, kv_heads, hd, device=device, dtype=dtype)}


def _sdpa_point_ops(torch, cfg: dict, device: str, dtype, ai: grid.AttentionInput, buffers: dict, block_size: int, gen):
    """(save, attend) of one grid point: the new K/V rows scattered into the paged cache by slot, and SDPA of the
    new queries over the contiguous K/V (lower-right causal mask for a chunked prefill, causal for a first one)."""
    F = torch.nn.functional
    from torch.nn.attention.bias import causal_lower_right

    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = cfg["embedding_dim"] // heads
    scale = hd**-0.5
    num_slots, k_cache, v_cache = buffers["num_slots"], buffers["k_cache"], buffers["v_cache"]
    b = ai.batch_size
    new = ai.prefill_chunk_size if ai.is_prefill else 1
    total = ai.kv_cache_size + new
    q = torch.randn(b, new, heads, hd, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    k = buffers["k"][: b * total].view(b, total, kv_heads, hd).transpose(1, 2)
    v = buffers["v"][: b * total].view(b, total, kv_heads, hd).transpose(1, 2)
    new_k = torch.randn(b * new, kv_heads, hd, device=device, dtype=dtype, generator=gen)
    new_v = torch.randn(b * new, kv_heads, hd, device=device, dtype=dtype, generator=gen)
    # each sequence's new tokens go to its own run of slots, as with a block table
    slots = (torch.randperm(num_slots // block_size, device=device, generator=gen)[: math.ceil(b * new / block_size) + 1] * block_size)
    slots = (slots[:, None] + torch.arange(block_size, device=device)[None, :]).flatten()[: b * new]

    def save():
        k_cache.index_copy_(0, slots, new_k)
        v_cache.index_copy_(0, slots, new_v)

    if ai.is_prefill and ai.kv_cache_size > 0:
        mask = causal_lower_right(new, total)

        def attn():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    elif ai.is_prefill:

        def attn():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:

        def attn():
            return F.scaled_dot_product_attention(q, k, v, scale=scale)

    return save, attn


def _measure_attention_points(torch, cfg: dict, inputs: list[grid.AttentionInput], timer: Timer, block_size: int, deadline: float,
                              log, sink: _Appender, *, backend: str, attend_sleep_ms: float, ops_of) -> tuple[int, int]:
    """Time each point's (save, attend) from ``ops_of(ai)`` into `sink` until ``deadline``, logging progress every
    500 points; (measured, skipped for time)."""
    measured = skipped = 0
    t_loop = time.monotonic()
    with torch.inference_mode():
        for i, ai in enumerate(inputs):
            if time.monotonic() > deadline:
                skipped = len(inputs) - i
                log(f"attention: time budget reached, {skipped} of {len(inputs)} grid points not profiled")
                break
            save, attend = ops_of(ai)
            row = _attention_row(cfg, ai, block_size, backend)
            name = "attn_prefill" if ai.is_prefill else "attn_decode"
            for s, val in stats(timer.time(save, ATTN_WARMUP, ATTN_ACTIVE, sleep_ms=ATTN_SLEEP_MS)).items():
                row[f"time_stats.attn_kv_cache_save.{s}"] = val
            for s, val in stats(timer.time(attend, ATTN_WARMUP, ATTN_ACTIVE, sleep_ms=attend_sleep_ms)).items():
                row[f"time_stats.{name}.{s}"] = val
            sink.add(row)
            measured += 1
            if i % 500 == 0:
                log(f"attention: {i}/{len(inputs)} after {time.monotonic() - t_loop:.1f}s")
    return measured, skipped


def _attention_row(cfg: dict, ai: grid.AttentionInput, block_size: int, backend: str) -> dict:
    return {
        "n_embd": cfg["embedding_dim"],
        "n_q_head": cfg["num_q_heads"],
        "n_kv_head": cfg["num_kv_heads"],
        "block_size": block_size,
        "num_tensor_parallel_workers": 1,
        "max_model_len": cfg["max_model_len"],
        "batch_size": ai.batch_size,
        "prefill_chunk_size": ai.prefill_chunk_size,
        "kv_cache_size": ai.kv_cache_size,
        "is_prefill": ai.is_prefill,
        "attention_backend": backend,
    }


def _profile_attention_engine(torch, cfg, device, dtype, inputs, timer, block_size, deadline, log, sink, engine) -> tuple[int, int]:
    """profile_attention for ``--ops hf-cb``: the engine's paged SDPA step (engine_ops.attention_ops) over one
    paged cache for the whole grid: every point's blocks (rounded up per request) plus the padding."""
    heads, kv_heads = cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = cfg["embedding_dim"] // heads
    q_pad, kv_pad, cap = engine.get("q_pad", 0), engine.get("kv_pad", 0), engine.get("max_batch_tokens")
    need = max(ai.batch_size * math.ceil((ai.kv_cache_size + max(ai.prefill_chunk_size, 1)) / block_size) * block_size
               for ai in inputs)
    num_slots = engine_ops.pad_to(need, kv_pad, None) + block_size
    gen = torch.Generator(device=device).manual_seed(1)
    caches = (torch.randn(num_slots, kv_heads, hd, device=device, dtype=dtype, generator=gen),
              torch.randn(num_slots, kv_heads, hd, device=device, dtype=dtype, generator=gen))
    return _measure_attention_points(
        torch, cfg, inputs, timer, block_size, deadline, log, sink, backend="hf-paged-sdpa", attend_sleep_ms=ENGINE_ATTN_SLEEP_MS,
        ops_of=lambda ai: engine_ops.attention_ops(
            torch, cfg, device, dtype, batch=ai.batch_size, new=ai.prefill_chunk_size if ai.is_prefill else 1,
            kv=ai.kv_cache_size, block_size=block_size, num_slots=num_slots, q_pad=q_pad, kv_pad=kv_pad,
            max_batch_tokens=cap, gen=gen, caches=caches))


def _command(argv: list[str] | None) -> str:
    import shlex

    args = sys.argv[1:] if argv is None else argv
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "profiler"
    if prog in ("__main__.py", "profiler.py", "-c", "-m"):
        prog = "python -m mtap_vidur_runner.profiler"
    return " ".join([prog, *map(shlex.quote, args)])


def _read_meta(folder: Path) -> dict | None:
    f = folder / "profile-meta.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{f}: not readable JSON ({exc})") from None


def _grid_params(max_tokens, max_seq_len, max_batch_size, max_chunk_size, block_size) -> dict:
    return {"max_tokens": max_tokens, "max_seq_len": max_seq_len, "max_batch_size": max_batch_size,
            "max_chunk_size": max_chunk_size, "block_size": block_size}


def check_resumable(folder: Path, model: str, gpu_name: str | None, params: dict, device: str) -> dict | None:
    """The existing meta when `folder` may be resumed by this run; ProfileError otherwise."""
    meta = _read_meta(folder)
    if meta is None:
        return None
    if meta.get("model") not in (None, model):
        raise ProfileError(f"{folder}/profile-meta.json: model {meta.get('model')!r}, not {model!r}; not resuming into it")
    if meta.get("device", device) != device:
        raise ProfileError(f"{folder}/profile-meta.json: measured on device {meta.get('device')!r}, this run is {device!r}; not resuming into it")
    if gpu_name is not None and meta.get("gpu_name") not in (None, gpu_name):
        raise ProfileError(
            f"{folder}/profile-meta.json: measured on {meta.get('gpu_name')!r}, this GPU is {gpu_name!r}; "
            "a profile holds one GPU model's measurements only (use another --output)")
    if meta.get("ops", "vidur") != params.get("ops", "vidur"):
        raise ProfileError(f"{folder}/profile-meta.json: operator set {meta.get('ops', 'vidur')!r}, this run is "
                           f"{params.get('ops', 'vidur')!r}; a profile holds one operator set (use another --output)")
    old = meta.get("grid")
    if old is None:  # a profile written before the grid was recorded (the H100 one)
        old = {k: meta.get("attention", {}).get(k) for k in ("max_seq_len", "max_batch_size", "max_chunk_size", "block_size")}
        old["max_tokens"] = meta.get("mlp", {}).get("max_tokens")
    for k, v in params.items():
        if old.get(k) is not None and old[k] != v:
            raise ProfileError(f"{folder}/profile-meta.json: grid {k} is {old[k]}, this run asks {v}; not resuming into it")
    return meta


def profile_coverage(output_dir: Path, model: str = "meta-llama/Llama-2-7b-hf", max_tokens: int = 4096, max_seq_len: int = 4096,
                     max_batch_size: int = 128, max_chunk_size: int = 4096, merge: bool = True) -> dict:
    """Merge a killed run's partial files (when `merge`) and report the coverage of `<output_dir>/<model>/`
    (stdlib only: runs where torch is not installed)."""
    folder = output_dir / model
    if not folder.is_dir():
        raise ProfileError(f"{folder}: no such profile folder")
    if merge:
        merge_partials(folder)
    tokens, inputs = grid_points(max_tokens, max_seq_len, max_batch_size, max_chunk_size)
    cov = coverage(folder, tokens, inputs)
    meta = _read_meta(folder)
    if merge and meta is not None and meta.get("coverage") != cov:
        meta["coverage"] = cov
        meta.setdefault("attention", {})["profiled"] = len(_dedupe(read_rows(folder, "attention"), attention_key))
        _write_json(folder / "profile-meta.json", meta)
    return cov


def drop_mlp_rows(folder: Path, token_counts: list[int]) -> dict[int, dict[str, float]]:
    """Remove the rows of `token_counts` from `folder`'s mlp.csv.xz so this run measures them again;
    returns the removed rows' medians (ms) per op, for the run's provenance record."""
    if not token_counts or not (folder / "mlp.csv.xz").is_file():
        return {}
    rows = read_rows(folder, "mlp")
    drop = set(token_counts)
    gone = {mlp_key(r): {op: float(r[f"time_stats.{op}.median"]) for op in MLP_OPS} for r in rows if mlp_key(r) in drop}
    if gone:
        write_csv_xz(folder / "mlp.csv.xz", mlp_header(), [r for r in rows if mlp_key(r) not in drop])
    return gone


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def run_profile(
    output_dir: Path,
    model: str = "meta-llama/Llama-2-7b-hf",
    device: str = "cuda",
    max_tokens: int = 4096,
    max_seq_len: int = 4096,
    max_batch_size: int = 128,
    max_chunk_size: int = 4096,
    block_size: int = 16,
    compile_ops: bool | None = None,
    time_budget_s: float = 1e9,
    log=lambda m: print(m, file=sys.stderr, flush=True),
    hardware: str | None = None,
    command: str | None = None,
    remeasure_mlp: list[int] | None = None,
    ops: str = "vidur",
    engine: dict | None = None,
) -> dict:
    """Profile `model` on `device` into `<output_dir>/<model>/`, measuring only the grid points not
    already there; write mlp.csv.xz, attention.csv.xz, profile-meta.json. Returns the meta."""
    t_wall = time.monotonic()
    _check_known(model, hardware)
    import torch

    cfg = MODELS[model]
    gpu_name = _gpu_name(torch, device, hardware)
    compile_ops, engine = _operator_set(ops, compile_ops, engine, device)
    params = _grid_params(max_tokens, max_seq_len, max_batch_size, max_chunk_size, block_size)
    if engine is not None:  # a profile is one operator set: resuming with another is refused
        params.update(ops=ops, **{f"engine_{k}": v for k, v in sorted(engine.items())})
    out = output_dir / model
    old_meta, replaced, have_mlp, have_att = _open_profile(out, model, gpu_name, params, device, remeasure_mlp)

    deadline = time.monotonic() + time_budget_s
    torch.manual_seed(0)
    random.seed(0)
    timer = Timer(torch, device)
    # fp16 as served; float32 on a CPU (testing only: CPUs have no fast fp16 matmul)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32

    tokens, inputs = grid_points(max_tokens, max_seq_len, max_batch_size, max_chunk_size)
    if device.startswith("cuda"):
        inputs = _within_memory(torch, cfg, inputs, block_size)
    todo_t, todo_a = [n for n in tokens if n not in have_mlp], [ai for ai in attention_order(inputs) if ai not in have_att]
    log(f"mlp: {len(todo_t)} of {len(tokens)} token counts to measure ({len(tokens) - len(todo_t)} already in {out})")
    mlp_n, mlp_s = _measure_into(out, "mlp", log, lambda sink: profile_mlp(
        torch, cfg, device, dtype, todo_t, timer, compile_ops, log, sink, deadline, engine=engine) if todo_t else (0, 0))
    log(f"attention: {len(todo_a)} of {len(inputs)} grid points to measure ({len(inputs) - len(todo_a)} already there)")
    attn_n, attn_s = _measure_into(out, "attention", log, lambda sink: profile_attention(
        torch, cfg, device, dtype, todo_a, timer, block_size, deadline, log, sink, engine=engine))
    merge_partials(out)
    cov = coverage(out, tokens, inputs)
    log(f"coverage: mlp {cov['mlp']['measured']}/{cov['mlp']['needed']}, attention {cov['attention']['measured']}/{cov['attention']['needed']} ({cov['attention']['percent']}%)")

    env = _environment(torch, gpu_name, compile_ops)
    run = _run_record(command, hardware, env, time_budget_s, mlp_n, mlp_s, attn_n, attn_s, t_wall, replaced)
    earlier = _earlier_runs(old_meta)
    method = _method(params, ops, engine, inputs, cov, earlier, mlp_s, attn_s)
    meta = _meta(model, hardware or (old_meta or {}).get("hardware"), device, env, dtype, method, cov, [*earlier, run])
    _write_json(out / "profile-meta.json", meta)
    return meta


def _check_known(model: str, hardware: str | None) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if hardware is not None and hardware not in HARDWARE:
        raise ValueError(f"unknown hardware {hardware!r}; known: {', '.join(HARDWARE)}")


def _open_profile(out: Path, model: str, gpu_name: str | None, params: dict, device: str, remeasure_mlp: list[int] | None):
    """Ready the profile folder for this run: checked resumable, a killed run's points merged first, the
    ``remeasure_mlp`` rows dropped. (old meta or None, the dropped rows' medians, MLP token counts there,
    attention points there)."""
    old_meta = check_resumable(out, model, gpu_name, params, device)
    out.mkdir(parents=True, exist_ok=True)
    merge_partials(out)
    replaced = drop_mlp_rows(out, remeasure_mlp or [])
    have_mlp = set(_dedupe(read_rows(out, "mlp"), mlp_key))
    have_att = set(_dedupe(read_rows(out, "attention"), attention_key))
    return old_meta, replaced, have_mlp, have_att


def _gpu_name(torch, device: str, hardware: str | None) -> str | None:
    """The GPU's name as torch reports it (None on a CPU); ProfileError when it is not the ``hardware`` named."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but torch.cuda.is_available() is False")
    gpu_name = torch.cuda.get_device_properties(0).name if device.startswith("cuda") else None
    if hardware is not None and device.startswith("cuda") and HARDWARE[hardware][1] not in gpu_name:
        raise ProfileError(f"--hardware {hardware}: this GPU is {gpu_name!r} (expected a name with {HARDWARE[hardware][1]!r})")
    return gpu_name


def _operator_set(ops: str, compile_ops: bool | None, engine: dict | None, device: str) -> tuple[bool, dict | None]:
    """(compile_ops, engine) of an operator set: ``hf-cb`` runs eagerly with the engine's settings (defaults
    filled in); ``vidur`` has no engine and compiles on a GPU unless told otherwise."""
    if ops not in OPS:
        raise ValueError(f"unknown operator set {ops!r}; known: {', '.join(OPS)}")
    if ops == "hf-cb":
        compile_ops = False  # the engine runs its modules eagerly (default_compile_level 0)
        engine = {"q_pad": 0, "kv_pad": 0, "max_batch_tokens": None, **(engine or {})}
    else:
        engine = None
    if compile_ops is None:
        compile_ops = device.startswith("cuda")
    return compile_ops, engine


def _within_memory(torch, cfg: dict, inputs: list[grid.AttentionInput], block_size: int) -> list[grid.AttentionInput]:
    """The attention points vidur's memory filter keeps on this card (get_max_num_blocks: 90% of the card,
    1/8 of the layers)."""
    total = torch.cuda.mem_get_info()[1]
    block_bytes = 2 * block_size * cfg["num_kv_heads"] * (cfg["embedding_dim"] // cfg["num_q_heads"]) * 2
    max_blocks = math.floor(total * 0.9 / (block_bytes * (cfg["num_layers"] // 8)))
    return [ai for ai in inputs if ai.is_under_memory_limit(max_blocks * block_size)]


def _measure_into(folder: Path, kind: str, log, measure) -> tuple[int, float]:
    """``measure(sink)`` with a sink appending each point to `<kind>.partial.csv` (closed however measuring
    ends); (points measured, seconds)."""
    sink = _Appender(folder / PARTIAL[kind], mlp_header() if kind == "mlp" else attention_header())
    t0 = time.monotonic()
    try:
        measured, _skipped = measure(sink)
    finally:
        sink.close()
    seconds = time.monotonic() - t0
    log(f"{kind}: {measured} measured in {seconds:.1f}s")
    return measured, seconds


def _environment(torch, gpu_name: str | None, compile_ops: bool) -> dict:
    """What this run ran on: recorded in the run's provenance and as the profile's current environment."""
    return {
        "gpu_name": gpu_name,
        "torch": torch.__version__,
        "cuda": getattr(torch.version, "cuda", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "compiled_ops": bool(compile_ops),
    }


def _run_record(command: str | None, hardware: str | None, env: dict, time_budget_s: float, mlp_n: int, mlp_s: float,
                attn_n: int, attn_s: float, t_wall: float, replaced: dict) -> dict:
    """This run's provenance record: when, the command, the environment, the budget and sleeps, what it
    measured and how long it took (and the medians of the MLP rows it measured again)."""
    run = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command or _command(None),
        "hardware": hardware,
        **env,
        "time_budget_s": time_budget_s if time_budget_s < 1e9 else None,
        "mlp_sleep_ms": MLP_SLEEP_MS,
        "attention_sleep_ms": ATTN_SLEEP_MS,
        "mlp_measured": mlp_n,
        "attention_measured": attn_n,
        "mlp_seconds": round(mlp_s, 1),
        "attention_seconds": round(attn_s, 1),
        "seconds": round(time.monotonic() - t_wall, 1),
    }
    if replaced:
        run["mlp_remeasured"] = {str(n): meds for n, meds in sorted(replaced.items())}
    return run


def _earlier_runs(old_meta: dict | None) -> list[dict]:
    """The provenance records of the runs before this one; a profile from before provenance records gets
    one record of what its meta said."""
    runs = list((old_meta or {}).get("runs") or [])
    if old_meta is not None and not runs:
        runs.append({k: old_meta.get(k) for k in ("gpu_name", "torch", "cuda", "python", "platform", "compiled_ops", "seconds")}
                    | {"date": None, "command": None, "mlp_measured": old_meta.get("mlp", {}).get("token_counts"),
                       "attention_measured": old_meta.get("attention", {}).get("profiled")})
    return runs


def _meta(model: str, hardware: str | None, device: str, env: dict, dtype, method: dict, cov: dict, runs: list[dict]) -> dict:
    """profile-meta.json: the model, hardware, device and current environment, how it was measured
    (``_method``), the coverage and every run's provenance record."""
    return {
        "model": model,
        "hardware": hardware,
        "device": device,
        **env,
        "dtype": str(dtype).replace("torch.", ""),
        **method,
        "coverage": cov,
        "runs": runs,
        "tensor_parallel": [1],
        "grid_source": "vidur 0.0.26 vidur.profiling.utils (restated in mtap_vidur_runner.grid)",
        "seconds": round(sum((r.get("seconds") or 0) for r in runs), 1),
    }


def _method(params: dict, ops: str, engine: dict | None, inputs: list[grid.AttentionInput], cov: dict, earlier: list[dict],
            mlp_s: float, attn_s: float) -> dict:
    """The meta's account of how the profile was measured: weights, timing, grid, operator set (and engine),
    and per side (MLP, attention) its grid, warm-up/active calls and seconds (this run's ``mlp_s`` /
    ``attn_s`` plus the ``earlier`` runs')."""
    return {
        "weights": "random (uniform +-1e-3), no checkpoint",
        "timing": "CUDA events per call, launches queued behind torch.cuda._sleep (device time); median over active calls",
        "grid": params,
        "ops": ops,
        **({"engine": {"implementation": engine_ops.ENGINE, **engine,
                       "transformers": _version("transformers")}} if engine is not None else {}),
        "mlp": {"token_counts": cov["mlp"]["measured"], "max_tokens": params["max_tokens"], "warmup": MLP_WARMUP, "active": MLP_ACTIVE,
                "seconds": round(mlp_s + sum((r.get("mlp_seconds") or 0) for r in earlier), 1)},
        "attention": {
            "grid_points": len(inputs),
            "profiled": cov["attention"]["measured"] + cov["outside_grid"]["attention"],
            "skipped_for_time": len(inputs) - cov["attention"]["measured"],
            "max_seq_len": params["max_seq_len"],
            "max_batch_size": params["max_batch_size"],
            "max_chunk_size": params["max_chunk_size"],
            "block_size": params["block_size"],
            "backend": ("transformers paged|sdpa (sdpa_attention_paged_forward: paged K/V write and index_select read-back, "
                        "one masked SDPA per step over the packed requests)" if engine is not None
                        else "torch.nn.functional.scaled_dot_product_attention, contiguous KV"),
            "order": "prefill points first, then decode points in a fixed-seed (42) random order",
            "warmup": ATTN_WARMUP,
            "active": ATTN_ACTIVE,
            "seconds": round(attn_s + sum((r.get("attention_seconds") or 0) for r in earlier), 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtap_vidur_runner.profiler", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", "--output", dest="output_dir", type=Path,
                   help="profile root: writes <DIR>/<model>/... (default data/profiles/vidur/<device of --hardware>)")
    p.add_argument("--hardware", choices=sorted(HARDWARE), help="mtap hardware id; the GPU found must match it")
    p.add_argument("--model", default="meta-llama/Llama-2-7b-hf", choices=sorted(MODELS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--max-seq-len", type=int, default=4096)
    p.add_argument("--max-batch-size", type=int, default=128)
    p.add_argument("--max-chunk-size", type=int, default=4096)
    p.add_argument("--compile", dest="compile_ops", action="store_true", default=None)
    p.add_argument("--no-compile", dest="compile_ops", action="store_false")
    p.add_argument("--time-budget", "--time-budget-s", dest="time_budget_s", type=float, default=1e9,
                   help="seconds of measuring; stops at a point boundary and writes everything")
    p.add_argument("--remeasure-mlp", type=lambda v: [int(x) for x in v.split(",") if x], default=None, metavar="N,N,...",
                   help="measure these MLP token counts again (their old medians go into the run's provenance record)")
    p.add_argument("--coverage", action="store_true", help="merge a killed run's partial files and print coverage; measures nothing (no torch)")
    p.add_argument("--block-size", type=int, default=None,
                   help="KV block of the attention rows (vidur filters its profile by it)  [default 16; 256 with --ops hf-cb, the engine's]")
    p.add_argument("--ops", choices=OPS, default="vidur",
                   help="operator set: vidur = vLLM-like fused ops (the committed profiles); hf-cb = transformers' "
                        "continuous-batching engine's own modules and paged SDPA (engine_ops)")
    p.add_argument("--q-pad", type=int, default=0, help="--ops hf-cb: the engine's q_padding_interval_size (0 = no padding)")
    p.add_argument("--kv-pad", type=int, default=0, help="--ops hf-cb: the engine's kv_padding_interval_size (0 = no padding)")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="--ops hf-cb: the engine's max_batch_tokens (caps query padding)")
    a = p.parse_args(argv)
    if a.ops != "hf-cb" and (a.q_pad or a.kv_pad or a.max_batch_tokens):
        p.error("--q-pad/--kv-pad/--max-batch-tokens: only with --ops hf-cb")
    block_size = a.block_size or (256 if a.ops == "hf-cb" else 16)
    if a.output_dir is None:
        if a.hardware is None:
            p.error("give --output-dir or --hardware")
        a.output_dir = Path("data/profiles/vidur" if a.ops == "vidur" else f"data/profiles/vidur-{a.ops}") / HARDWARE[a.hardware][0]
    if a.time_budget_s <= 0:
        p.error("--time-budget: expected a positive number of seconds")
    try:
        if a.coverage:
            cov = profile_coverage(a.output_dir, a.model, a.max_tokens, a.max_seq_len, a.max_batch_size, a.max_chunk_size)
            print(json.dumps(cov, indent=2, sort_keys=True))
            return 0
        meta = run_profile(
            a.output_dir, a.model, a.device, a.max_tokens, a.max_seq_len, a.max_batch_size, a.max_chunk_size,
            block_size=block_size, compile_ops=a.compile_ops, time_budget_s=a.time_budget_s, hardware=a.hardware,
            command=_command(argv), remeasure_mlp=a.remeasure_mlp, ops=a.ops,
            engine={"q_pad": a.q_pad, "kv_pad": a.kv_pad, "max_batch_tokens": a.max_batch_tokens} if a.ops == "hf-cb" else None,
        )
    except (ProfileError, ValueError, RuntimeError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta["coverage"], indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
