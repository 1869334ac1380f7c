"""Serve a trace through Hugging Face transformers' continuous-batching engine and time each request.

The engine is ``transformers.generation.continuous_batching`` (``model.init_continuous_batching``):
a paged KV cache, a FIFO or prefill-first scheduler with a token budget per step, CUDA graphs.
The model is Llama-2-7B's architecture (its config, fp16) with random weights: latency does not
depend on the weights' values, only on the shapes, and EOS is disabled (``eos_token_id=-1``) so
each request generates exactly the trace's output length. A load-generator loop submits each
request on the trace's clock; a collector thread takes the finished ones. Times are host
``time.perf_counter`` seconds from the point's start: what a client of the engine would see.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: Llama-2-7B (meta-llama/Llama-2-7b-hf config.json), written out so nothing is downloaded
LLAMA2_7B = {
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
}
#: the same architecture scaled down, for CPU tests (--tiny)
TINY = {**LLAMA2_7B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": 512}

#: engine settings a run may set; None = the engine's own default (resolved values are recorded)
ENGINE_DEFAULTS: dict[str, Any] = {
    "attn_implementation": "paged|sdpa",  # no flash-attn on the GPU image; sdpa is PyTorch's own
    "scheduler_type": "fifo",
    "block_size": 256,
    "max_batch_tokens": None,
    "num_blocks": None,
    "max_requests_per_batch": None,
    "use_cuda_graph": None,
    "use_async_batching": None,
    "allow_block_sharing": True,
}


@dataclass
class Served:
    """One point's raw result: per request and per engine step."""

    requests: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    wall_s: float
    complete: bool
    note: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


class Engine:
    """The model and a started continuous-batching manager, reused across points."""

    def __init__(self, device: str, *, tiny: bool = False, seed: int = 0, settings: dict[str, Any] | None = None,
                 max_prompt: int = 512, max_output: int = 64) -> None:
        import torch
        import transformers
        from transformers import ContinuousBatchingConfig, GenerationConfig, LlamaConfig, LlamaForCausalLM
        from transformers.generation.continuous_batching.utils import WorkloadHints

        self.torch = torch
        self.settings = {**ENGINE_DEFAULTS, **(settings or {})}
        self.tiny = tiny
        fields = TINY if tiny else LLAMA2_7B
        self.vocab = fields["vocab_size"]
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        config = LlamaConfig(**fields)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        with torch.device(device):
            model = LlamaForCausalLM._from_config(config, dtype=dtype,
                                                  attn_implementation=self.settings["attn_implementation"])
        self.model = model.eval()
        self.load_s = time.perf_counter() - t0
        gen = GenerationConfig(do_sample=False, max_new_tokens=max_output, eos_token_id=-1, pad_token_id=0)
        cb_fields = {k: v for k, v in self.settings.items() if k != "attn_implementation" and v is not None}
        cb = ContinuousBatchingConfig(**cb_fields)
        hints = WorkloadHints(max_prompt_length=max_prompt, max_generated_length=max_output, num_requests=1024)
        self.manager = self.model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb,
                                                           workload_hints=hints)
        t0 = time.perf_counter()
        self.manager.warmup()
        self.warmup_s = time.perf_counter() - t0
        self.steps: list[dict[str, Any]] | None = None
        self._hooked = False
        self.manager.start()
        self.resolved = self._resolved(transformers.__version__, dtype)

    def _resolved(self, version: str, dtype: Any) -> dict[str, Any]:
        """The engine's settings after it resolved its defaults (cache size, token budget, graphs)."""
        cfg = self.manager.continuous_batching_config
        out: dict[str, Any] = {"engine": "transformers.generation.continuous_batching", "transformers": version,
                               "dtype": str(dtype).removeprefix("torch."),
                               "attn_implementation": self.model.config._attn_implementation}
        for name in ("scheduler_type", "block_size", "num_blocks", "max_batch_tokens", "max_requests_per_batch",
                     "max_blocks_per_request", "use_cuda_graph", "use_async_batching", "allow_block_sharing",
                     "q_padding_interval_size", "kv_padding_interval_size", "max_memory_percent", "default_compile_level"):
            value = getattr(cfg, name, None)
            out[name] = list(value) if isinstance(value, tuple) else value
        out["model"] = "Llama-2-7B architecture, random weights" if not self.tiny else "tiny Llama (tests)"
        out["load_s"] = round(self.load_s, 3)
        out["warmup_s"] = round(self.warmup_s, 3)
        return out

    def _hook(self) -> None:
        """Record every scheduled step: when, and each request's query tokens and state (prefill/decode)."""
        deadline = time.perf_counter() + 60
        while self.manager.batch_processor is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        bp = self.manager.batch_processor
        if bp is None or self._hooked:
            return
        scheduler = bp.scheduler
        original = scheduler.schedule_batch

        def schedule_batch(token_budget: int, cache_budget: int):  # noqa: ANN202 - the engine's own signature
            result = original(token_budget, cache_budget)
            steps = self.steps
            if steps is not None and result[0]:
                steps.append({"t": time.perf_counter(), "requests": [
                    [fs.state.request_id, int(fs.query_length), int(fs.state.position_offset)]
                    for fs in result[0]]})
            return result

        scheduler.schedule_batch = schedule_batch
        self._hooked = True

    def serve(self, requests: list[dict[str, Any]], *, seed: int, timeout_s: float, label: str = "",
              progress: Any = None) -> Served:
        """Submit ``requests`` ({id, arrival_s, prompt_tokens, output_tokens}) on their clock; wait for all."""
        self._hook()
        rng = random.Random(seed)
        prompts = {r["id"]: [rng.randrange(1, self.vocab) for _ in range(r["prompt_tokens"])] for r in requests}
        order = sorted(requests, key=lambda r: (r["arrival_s"], r["id"]))
        results: dict[str, Any] = {}
        submitted: dict[str, float] = {}
        done = threading.Event()
        want = len(order)
        steps: list[dict[str, Any]] = []
        self.steps = steps

        def collect() -> None:
            while len(results) < want and not done.is_set():
                out = self.manager.get_result(timeout=0.05)
                if out is not None and out.is_finished():
                    results[out.request_id] = out

        collector = threading.Thread(target=collect, daemon=True)
        t0 = time.perf_counter()
        collector.start()
        for r in order:
            wait = t0 + r["arrival_s"] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            rid = f"{label}{r['id']}"
            submitted[rid] = time.perf_counter()
            self.manager.add_request(prompts[r["id"]], request_id=rid, max_new_tokens=r["output_tokens"],
                                     record_timestamps=True, eos_token_id=-1)
            if progress is not None:
                progress(len(submitted), want)
        last_arrival = order[-1]["arrival_s"] if order else 0.0
        collector.join(timeout=max(1.0, t0 + last_arrival + timeout_s - time.perf_counter()))
        done.set()
        collector.join(timeout=5)
        self.steps = None
        wall = time.perf_counter() - t0
        rows = []
        for r in requests:
            rid = f"{label}{r['id']}"
            out = results.get(rid)
            row: dict[str, Any] = {"id": r["id"], "arrival_s": r["arrival_s"], "prompt_tokens": r["prompt_tokens"],
                                   "output_tokens": r["output_tokens"], "submit_s": round(submitted[rid] - t0, 6)}
            if out is None:
                row["error"] = f"not finished within {timeout_s:g} s of the last arrival"
            elif out.error is not None:
                row["error"] = str(out.error)[:300]
            else:
                stamps = out.timestamps or []
                row["tokens"] = len(out.generated_tokens)
                row["scheduled_s"] = round(out.lifespan[0] - t0, 6) if out.lifespan[0] > 0 else None
                row["first_token_s"] = round(stamps[0] - t0, 6) if stamps else None
                row["done_s"] = round(stamps[-1] - t0, 6) if stamps else None
                if row["tokens"] != r["output_tokens"]:
                    row["error"] = f"generated {row['tokens']} tokens, the trace asks for {r['output_tokens']}"
            rows.append(row)
        id_of = {f"{label}{r['id']}": r["id"] for r in requests}
        step_rows = [{"t_s": round(s["t"] - t0, 6),
                      "requests": [[id_of.get(rid, rid), q, kv] for rid, q, kv in s["requests"]]} for s in steps]
        complete = all("error" not in row for row in rows)
        note = None if complete else f"{sum('error' in row for row in rows)} of {len(rows)} requests did not finish"
        return Served(rows, step_rows, round(wall, 3), complete, note, self.resolved)

    def close(self) -> None:
        try:
            self.manager.stop(block=True, timeout=10)
        finally:
            self.manager.destroy()
