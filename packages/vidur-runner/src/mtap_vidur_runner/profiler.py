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
- `profile-meta.json`: the device, torch/CUDA versions, the grid, the timing method and the
  wall time.

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

from mtap_vidur_runner import grid

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
ATTN_WARMUP, ATTN_ACTIVE = 2, 5  # vidur's AttentionWrapper


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


def profile_mlp(torch, cfg: dict, device: str, dtype, token_counts: list[int], timer: Timer, compile_ops: bool, log) -> list[dict]:
    F = torch.nn.functional
    dt = dtype
    h, heads, kv_heads = cfg["embedding_dim"], cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = h // heads
    ffn, vocab = cfg["mlp_hidden_dim"], cfg["vocab_size"]
    gen = torch.Generator(device=device).manual_seed(0)

    def w(*shape):  # random weights (no hub access): uniform like sarathi's initialize_dummy_weights
        return (torch.rand(*shape, device=device, dtype=dt, generator=gen) - 0.5) * 2e-3

    emb_w = w(vocab, h)
    qkv_w = w((heads + 2 * kv_heads) * hd, h)
    o_w = w(h, heads * hd)
    up_w = w(2 * ffn if cfg["use_gated_mlp"] else ffn, h)
    down_w = w(h, ffn)
    ln1_w = torch.ones(h, device=device, dtype=dt)
    ln2_w = torch.ones(h, device=device, dtype=dt)
    max_pos = cfg["max_model_len"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    freqs = torch.outer(torch.arange(max_pos, device=device, dtype=torch.float32), inv_freq)
    cos_cache, sin_cache = freqs.cos().to(dt), freqs.sin().to(dt)

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

    rms_norm_c = _maybe_compile(torch, rms_norm, compile_ops, log)
    rope_c = _maybe_compile(torch, rope, compile_ops, log)
    act_c = _maybe_compile(torch, silu_and_mul if cfg["use_gated_mlp"] else F.gelu, compile_ops, log)

    rows = []
    with torch.inference_mode():
        for n in token_counts:
            ids = torch.randint(0, vocab, (n,), device=device, generator=gen)
            pos = torch.arange(n, device=device) % max_pos
            x = torch.randn(n, h, device=device, dtype=dt, generator=gen)
            qkv = F.linear(x, qkv_w)
            q, k, _ = qkv.split([heads * hd, kv_heads * hd, kv_heads * hd], dim=-1)
            q, k = q.contiguous(), k.contiguous()
            attn_out = torch.randn(n, heads * hd, device=device, dtype=dt, generator=gen)
            up = F.linear(x, up_w)
            act = act_c(up)
            ops = {
                "emb": lambda: F.embedding(ids, emb_w),  # noqa: B023 - called within this iteration
                "input_layernorm": lambda: rms_norm_c(x, ln1_w),  # noqa: B023 - called within this iteration
                "attn_pre_proj": lambda: F.linear(x, qkv_w),  # noqa: B023 - called within this iteration
                "attn_rope": lambda: rope_c(pos, q, k),  # noqa: B023 - called within this iteration
                "attn_post_proj": lambda: F.linear(attn_out, o_w),  # noqa: B023 - called within this iteration
                "post_attention_layernorm": lambda: rms_norm_c(x, ln2_w),  # noqa: B023 - called within this iteration
                "mlp_up_proj": lambda: F.linear(x, up_w),  # noqa: B023 - called within this iteration
                "mlp_act": lambda: act_c(up),  # noqa: B023 - called within this iteration
                "mlp_down_proj": lambda: F.linear(act, down_w),  # noqa: B023 - called within this iteration
                "add": lambda: add(x, attn_out),  # noqa: B023 - called within this iteration
            }
            row = {
                "n_head": heads,
                "n_kv_head": kv_heads,
                "n_embd": h,
                "n_expanded_embd": ffn,
                "vocab_size": vocab,
                "use_gated_mlp": cfg["use_gated_mlp"],
                "num_tokens": n,
                "num_tensor_parallel_workers": 1,
            }
            for op, fn in ops.items():
                for s, v in stats(timer.time(fn, MLP_WARMUP, MLP_ACTIVE)).items():
                    row[f"time_stats.{op}.{s}"] = v
            rows.append(row)
    return rows


def profile_attention(
    torch, cfg: dict, device: str, dtype, inputs: list[grid.AttentionInput], timer: Timer, block_size: int,
    deadline: float, log,
) -> tuple[list[dict], int]:
    F = torch.nn.functional
    from torch.nn.attention.bias import causal_lower_right

    dt = dtype
    h, heads, kv_heads = cfg["embedding_dim"], cfg["num_q_heads"], cfg["num_kv_heads"]
    hd = h // heads
    gen = torch.Generator(device=device).manual_seed(1)
    # contiguous K/V big enough for the largest (batch x (kv + new tokens)) of the grid
    max_tokens = max(ai.batch_size * (ai.kv_cache_size + max(ai.prefill_chunk_size, 1)) for ai in inputs)
    kbuf = torch.randn(max_tokens, kv_heads, hd, device=device, dtype=dt, generator=gen)
    vbuf = torch.randn(max_tokens, kv_heads, hd, device=device, dtype=dt, generator=gen)
    # paged cache the new tokens are saved into (vLLM's reshape_and_cache)
    max_new = max(max(ai.prefill_chunk_size, ai.batch_size) for ai in inputs)
    num_slots = max(max_new * 4, 64 * block_size)
    k_cache = torch.empty(num_slots, kv_heads, hd, device=device, dtype=dt)
    v_cache = torch.empty(num_slots, kv_heads, hd, device=device, dtype=dt)
    scale = hd**-0.5

    rows = []
    skipped = 0
    with torch.inference_mode():
        for i, ai in enumerate(inputs):
            if time.monotonic() > deadline:
                skipped = len(inputs) - i
                log(f"attention: time budget reached, {skipped} of {len(inputs)} grid points not profiled")
                break
            b = ai.batch_size
            new = ai.prefill_chunk_size if ai.is_prefill else 1
            total = ai.kv_cache_size + new
            q = torch.randn(b, new, heads, hd, device=device, dtype=dt, generator=gen).transpose(1, 2)
            k = kbuf[: b * total].view(b, total, kv_heads, hd).transpose(1, 2)
            v = vbuf[: b * total].view(b, total, kv_heads, hd).transpose(1, 2)
            new_k = torch.randn(b * new, kv_heads, hd, device=device, dtype=dt, generator=gen)
            new_v = torch.randn(b * new, kv_heads, hd, device=device, dtype=dt, generator=gen)
            # each sequence's new tokens go to its own run of slots, as with a block table
            slots = (torch.randperm(num_slots // block_size, device=device, generator=gen)[: math.ceil(b * new / block_size) + 1] * block_size)
            slots = (slots[:, None] + torch.arange(block_size, device=device)[None, :]).flatten()[: b * new]

            def save():
                k_cache.index_copy_(0, slots, new_k)  # noqa: B023 - called within this iteration
                v_cache.index_copy_(0, slots, new_v)  # noqa: B023 - called within this iteration

            if ai.is_prefill and ai.kv_cache_size > 0:
                mask = causal_lower_right(new, total)

                def attn():
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # noqa: B023 - called within this iteration
            elif ai.is_prefill:

                def attn():
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)  # noqa: B023 - called within this iteration
            else:

                def attn():
                    return F.scaled_dot_product_attention(q, k, v, scale=scale)  # noqa: B023 - called within this iteration

            row = {
                "n_embd": h,
                "n_q_head": heads,
                "n_kv_head": kv_heads,
                "block_size": block_size,
                "num_tensor_parallel_workers": 1,
                "max_model_len": cfg["max_model_len"],
                "batch_size": b,
                "prefill_chunk_size": ai.prefill_chunk_size,
                "kv_cache_size": ai.kv_cache_size,
                "is_prefill": ai.is_prefill,
                "attention_backend": "torch-sdpa",
            }
            name = "attn_prefill" if ai.is_prefill else "attn_decode"
            for s, val in stats(timer.time(save, ATTN_WARMUP, ATTN_ACTIVE, sleep_ms=1.0)).items():
                row[f"time_stats.attn_kv_cache_save.{s}"] = val
            for s, val in stats(timer.time(attn, ATTN_WARMUP, ATTN_ACTIVE, sleep_ms=1.0)).items():
                row[f"time_stats.{name}.{s}"] = val
            rows.append(row)
            if i % 500 == 0:
                log(f"attention: {i}/{len(inputs)}")
    return rows, skipped


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
) -> dict:
    """Profile `model` on `device`; write mlp.csv.xz, attention.csv.xz, profile-meta.json. Returns the meta."""
    import torch

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    cfg = MODELS[model]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but torch.cuda.is_available() is False")
    if compile_ops is None:
        compile_ops = device.startswith("cuda")
    t_start = time.monotonic()
    deadline = t_start + time_budget_s
    torch.manual_seed(0)
    random.seed(0)

    gpu_name = torch.cuda.get_device_properties(0).name if device.startswith("cuda") else None
    timer = Timer(torch, device)
    # fp16 as served; float32 on a CPU (testing only: CPUs have no fast fp16 matmul)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32

    out = output_dir / model
    out.mkdir(parents=True, exist_ok=True)

    tokens = list(dict.fromkeys(grid.num_tokens_to_profile(max_tokens)))
    log(f"mlp: {len(tokens)} token counts")
    t0 = time.monotonic()
    mlp_rows = profile_mlp(torch, cfg, device, dtype, tokens, timer, compile_ops, log)
    mlp_s = time.monotonic() - t0
    write_csv_xz(out / "mlp.csv.xz", mlp_header(), mlp_rows)
    log(f"mlp: done in {mlp_s:.1f}s")

    inputs = list(dict.fromkeys(grid.attention_inputs(max_seq_len, 1, max_batch_size, max_chunk_size)))
    if device.startswith("cuda"):
        # vidur's memory filter (get_max_num_blocks: 90% of the card, 1/8 of the layers)
        total = torch.cuda.mem_get_info()[1]
        block_bytes = 2 * block_size * cfg["num_kv_heads"] * (cfg["embedding_dim"] // cfg["num_q_heads"]) * 2
        max_blocks = math.floor(total * 0.9 / (block_bytes * (cfg["num_layers"] // 8)))
        inputs = [ai for ai in inputs if ai.is_under_memory_limit(max_blocks * block_size)]
    # fixed-seed shuffle: if the time budget cuts the run short, what was measured still covers the grid
    order = list(range(len(inputs)))
    random.Random(42).shuffle(order)
    log(f"attention: {len(inputs)} grid points")
    t0 = time.monotonic()
    attn_rows, skipped = profile_attention(torch, cfg, device, dtype, [inputs[i] for i in order], timer, block_size, deadline, log)
    attn_s = time.monotonic() - t0
    key = {ai: i for i, ai in enumerate(inputs)}
    attn_rows.sort(key=lambda r: key[grid.AttentionInput(r["prefill_chunk_size"], r["kv_cache_size"], r["batch_size"], r["is_prefill"])])
    write_csv_xz(out / "attention.csv.xz", attention_header(), attn_rows)
    log(f"attention: {len(attn_rows)} rows in {attn_s:.1f}s")

    meta = {
        "model": model,
        "device": device,
        "gpu_name": gpu_name,
        "torch": torch.__version__,
        "cuda": getattr(torch.version, "cuda", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "compiled_ops": bool(compile_ops),
        "dtype": str(dtype).replace("torch.", ""),
        "weights": "random (uniform +-1e-3), no checkpoint",
        "timing": "CUDA events per call, launches queued behind torch.cuda._sleep (device time); median over active calls",
        "mlp": {"token_counts": len(tokens), "max_tokens": max_tokens, "warmup": MLP_WARMUP, "active": MLP_ACTIVE, "seconds": round(mlp_s, 1)},
        "attention": {
            "grid_points": len(inputs),
            "profiled": len(attn_rows),
            "skipped_for_time": skipped,
            "max_seq_len": max_seq_len,
            "max_batch_size": max_batch_size,
            "max_chunk_size": max_chunk_size,
            "block_size": block_size,
            "backend": "torch.nn.functional.scaled_dot_product_attention, contiguous KV",
            "warmup": ATTN_WARMUP,
            "active": ATTN_ACTIVE,
            "seconds": round(attn_s, 1),
        },
        "tensor_parallel": [1],
        "grid_source": "vidur 0.0.26 vidur.profiling.utils (restated in mtap_vidur_runner.grid)",
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (out / "profile-meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtap_vidur_runner.profiler", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--model", default="meta-llama/Llama-2-7b-hf", choices=sorted(MODELS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--max-seq-len", type=int, default=4096)
    p.add_argument("--max-batch-size", type=int, default=128)
    p.add_argument("--max-chunk-size", type=int, default=4096)
    p.add_argument("--compile", dest="compile_ops", action="store_true", default=None)
    p.add_argument("--no-compile", dest="compile_ops", action="store_false")
    p.add_argument("--time-budget-s", type=float, default=1e9)
    a = p.parse_args(argv)
    meta = run_profile(
        a.output_dir, a.model, a.device, a.max_tokens, a.max_seq_len, a.max_batch_size, a.max_chunk_size,
        compile_ops=a.compile_ops, time_budget_s=a.time_budget_s,
    )
    print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
