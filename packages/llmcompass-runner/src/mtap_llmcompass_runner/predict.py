"""One case: LLMCompass run on a copy of its checkout (``driver.py`` in a subprocess of its own, so
``--timeout`` kills it), its JSON parsed, the whole model composed as LLMCompass's blocks allow.

The mapping of our models onto LLMCompass's transformer blocks (software_model/transformer.py):

* LLMCompass's blocks are GPT-style: Q/K/V/O projections d x d, multi-head attention (no
  grouped-query), LayerNorm after the attention output and after the MLP, and an MLP of two
  matrices d -> 4d -> d with GELU. Llama-2-7B's layer (d 4096, 32 heads) has an MLP of three
  matrices d -> 11008 (gate, up), SiLU x up, 11008 -> d, RMSNorm before attention/MLP, and rotary
  embeddings: the block cannot express SwiGLU, RMSNorm or RoPE. It is scored as the block
  expresses it (d 4096, 32 heads, MLP 4 x 4096 = 16384 wide, two matrices): 2 x 4096 x 16384 =
  134.2 M MLP MACs per token against Llama's 3 x 4096 x 11008 = 135.3 M (0.78 % fewer), recorded
  per case. GPT-2 (W7) and BERT-base (W4) layers are what the block is (d 768, 12 heads, 4d MLP,
  GELU, LayerNorm; BERT's post-LN order is the block's).
* Whole model = layers x one block + the head GEMM the measured model runs, as an LLMCompass
  ``Matmul`` (the operator its docs say to build a model from): Llama's LM head on the last token
  of each sequence (4096 x 32000; the measurement's ``logits: last-token``), GPT-2's LM head on
  every token (768 x 50257), BERT's pooler on the first token (768 x 768; its tanh not modeled).
  Embedding lookups, the final norm and rotary embeddings are not modeled (LLMCompass has no
  operator for them).
* Decode: ``TransformerBlockAutoRegressionTP(x=[b, 1, d], seq_len=kv)``: the KV cache of kv
  tokens concatenated with the new token's K/V, so attention reads kv+1 entries (as measured).
* Compile mode "heuristic-GPU" (the authors' mode for GPUs in ae/figure5, figure10, figure11);
  ``template_to_system`` gives every device the A100's per-operator overheads (matmul 21 us,
  softmax 12 us, layernorm and gelu 45 us): the tool's own choice, recorded per case.
* fp32 cases: the descriptions (GA100 template) have fp16 systolic arrays only; the measured FP32
  runs (tf32 off) use the FP32 CUDA cores, a datapath the template does not describe: unsupported.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtap_schemas import toolrun
from mtap_schemas.llmpeer import invalid_value, sig, unsupported
from mtap_schemas.proc import run_tool

from .cases import MODELS, Case

COMPILE_MODE = "heuristic-GPU"
DRIVER = Path(__file__).resolve().parent / "driver.py"
#: the block's operators, in the order of its ``simluate_log`` (software_model/transformer.py)
BREAKDOWN = (
    "qkv",
    "q_mul_k",
    "a_mul_v",
    "h_matmul0",
    "h1_matmul1",
    "h2_matmul2",
    "softmax",
    "layernorm0",
    "layernorm1",
    "gelu",
    "allreduce_mha",
    "allreduce_ffn",
)
#: per block: 8 matmul launches (3 for Q/K/V), one softmax, two layernorms, one gelu
OVERHEAD_COUNTS = {"matmul": 8, "softmax": 1, "layernorm": 2, "gelu": 1}

FP32_REASON = (
    "the LLMCompass descriptions (its GA100 template with our datasheet figures) have fp16 systolic arrays "
    "only; this case was measured in true FP32 (tf32 false: the FP32 CUDA cores), a datapath the template "
    "does not describe, so the runner does not predict it"
)
IGNORE = shutil.ignore_patterns(".git", "*.pdf", "ae", "__pycache__", "temp")


@dataclass(frozen=True)
class Request:
    block: str  # prefill | decode
    d_model: int
    n_heads: int
    batch: int
    seq: int
    layers: int
    head: tuple[int, int, int] | None  # (M, K, N)
    head_name: str

    def json(self, arch_file: str) -> dict[str, Any]:
        return {
            "arch_file": arch_file,
            "compile_mode": COMPILE_MODE,
            "data_type": "fp16",
            "block": self.block,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "batch": self.batch,
            "seq": self.seq,
            "head": None if self.head is None else dict(zip(("M", "K", "N"), self.head)),
        }


def request(case: Case) -> Request:
    m = MODELS[case.model]
    d, h, L = m["hidden"], m["heads"], m["layers"]
    if case.model == "llama2-7b":
        block = "decode" if case.scope == "decode" else "prefill"
        seq = case.kv if case.scope == "decode" else case.tokens
        return Request(block, d, h, case.batch, int(seq), L, (case.batch, d, m["vocab"]), "lm_head (last token)")
    if case.model == "gpt2":
        return Request("prefill", d, h, case.batch, int(case.seq), L, (case.batch * int(case.seq), d, m["vocab"]), "lm_head (every token)")
    return Request("prefill", d, h, case.batch, int(case.seq), L, (case.batch, d, d), "pooler (first token)")


def mapping_parameters(case: Case, req: Request) -> dict[str, Any]:
    m = MODELS[case.model]
    d = m["hidden"]
    block_mlp_macs = 2 * d * 4 * d
    model_mlp_macs = (3 if case.model == "llama2-7b" else 2) * d * m["ffn"]
    p: dict[str, Any] = {
        "llmcompass_block": "TransformerBlockAutoRegressionTP" if req.block == "decode" else "TransformerBlockInitComputationTP",
        "llmcompass_compile_mode": COMPILE_MODE,
        "llmcompass_data_type": "fp16",
        "llmcompass_d_model": d,
        "llmcompass_n_heads": m["heads"],
        "llmcompass_device_count": 1,
        "llmcompass_input": f"[{req.batch}, 1, {d}], seq_len {req.seq}" if req.block == "decode" else f"[{req.batch}, {req.seq}, {d}]",
        "block_mlp": f"2 matrices {d}->{4 * d}->{d}, GELU, LayerNorm (LLMCompass's block)",
        "model_mlp": (
            f"3 matrices {d}->{m['ffn']} (gate, up), SiLU*up, {m['ffn']}->{d}, RMSNorm, RoPE"
            if case.model == "llama2-7b"
            else f"2 matrices {d}->{m['ffn']}->{d}, GELU, LayerNorm"
        ),
        "block_expresses_model_exactly": case.model != "llama2-7b",
        "block_mlp_macs_per_token": block_mlp_macs,
        "model_mlp_macs_per_token": model_mlp_macs,
        "layers": req.layers,
        "composition": f"{req.layers} x block + {req.head_name} Matmul" if req.head else f"{req.layers} x block",
        "not_modeled": "embedding lookup, final norm"
        + (", rotary embeddings, causal mask" if case.model == "llama2-7b" else ", attention mask"),
    }
    if req.head is not None:
        p["head_gemm"] = f"{req.head[0]}x{req.head[1]} * {req.head[1]}x{req.head[2]}"
    return p


@dataclass(frozen=True)
class Unit:
    case: Case
    checkout: str
    spec_json: str  # the LLMCompass architecture description (JSON text)
    hw_parameters: tuple[tuple[str, Any], ...]
    artifacts: tuple[dict[str, str], ...]
    timeout: float | None
    keep_raw: str | None

    @property
    def ident(self) -> str:
        return self.case.id


def raw_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", case_id) + ".json"


def run_driver(checkout: Path, spec_json: str, req: Request, timeout: float | None):
    """Copy the checkout, write the description, run driver.py there; (ToolResult, parsed JSON or None)."""
    with tempfile.TemporaryDirectory(prefix="mtap-llmcompass-") as tmp:
        work = Path(tmp) / "llmcompass"
        shutil.copytree(checkout, work, ignore=IGNORE)
        (work / "systolic_array_model" / "temp").mkdir(parents=True, exist_ok=True)
        (work / "mtap-arch.json").write_text(spec_json)
        env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        res = run_tool([sys.executable, str(DRIVER)], timeout=timeout, cwd=work, env=env, stdin=json.dumps(req.json("mtap-arch.json")))
    parsed = None
    if res.ok:
        lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
        try:
            parsed = json.loads(lines[-1]) if lines else None
        except ValueError:
            parsed = None
    return res, parsed


def predict(unit: Unit) -> dict[str, Any]:
    case = unit.case
    params = case.parameters()
    if case.dtype == "fp32":
        return unsupported(case, FP32_REASON, params)
    req = request(case)
    params.update(mapping_parameters(case, req))
    params.update(dict(unit.hw_parameters))
    res, out = run_driver(Path(unit.checkout), unit.spec_json, req, unit.timeout)
    if unit.keep_raw:
        keep = Path(unit.keep_raw)
        keep.mkdir(parents=True, exist_ok=True)
        (keep / raw_name(case.id)).write_text(
            json.dumps(
                {
                    "case": case.id,
                    "request": req.json("mtap-arch.json"),
                    "architecture": json.loads(unit.spec_json),
                    "outcome": res.outcome,
                    "returncode": res.returncode,
                    "wall_seconds": round(res.seconds, 1),
                    "output": out,
                    "stderr_tail": res.stderr[-2000:],
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
    if not res.ok:
        kind, message = res.error(unit.timeout)
        return toolrun.failed(case.id, kind=kind, message=f"LLMCompass ({req.block} block): {message}", parameters=params, **case.where())
    return compose(case, req, out, params, unit.artifacts, res.last_line())


def compose(
    case: Case, req: Request, out: Any, params: dict[str, Any], artifacts: tuple[dict[str, str], ...] = (), last_line: str = ""
) -> dict[str, Any]:
    """The tool-run case from the driver's parsed output (``params``: the case's, mapping and hardware parameters)."""
    params = dict(params)
    if not isinstance(out, dict) or "block_latency_s" not in out:
        return toolrun.failed(
            case.id,
            kind="parse-failed",
            message="driver.py printed no JSON line with block_latency_s: " + (last_line or "(no output)"),
            parameters=params,
            **case.where(),
        )
    try:
        block = float(out["block_latency_s"])
        head = float(out.get("head_latency_s") or 0.0)
        parts = [float(x) for x in str(out["block_log"]).split(",")]
        ovh = out["system"]["overhead_s"]
        per_block_overhead = sum(OVERHEAD_COUNTS[k] * float(ovh[k]) for k in OVERHEAD_COUNTS)
    except (KeyError, TypeError, ValueError) as exc:
        return toolrun.failed(case.id, kind="parse-failed", message=f"driver.py output: {exc}", parameters=params, **case.where())
    total = req.layers * block + head
    overhead = req.layers * per_block_overhead + (float(ovh["matmul"]) if req.head else 0.0)
    params.update({f"block_{n}_s": sig(v) for n, v in zip(BREAKDOWN, parts)})
    params.update({f"llmcompass_overhead_{k}_s": float(v) for k, v in sorted(ovh.items())})
    timed = {"kind": "prediction", "timing": "simulated"}
    try:
        for name, v in (("latency", total), ("layer_latency", block), ("head_latency", head)):
            if not math.isfinite(v) or v < 0:
                raise toolrun.InvalidValue(f"metric {name}: got {v!r}, expected a finite number >= 0")
        metrics = [
            toolrun.metric("latency", sig(total * 1e3), "ms", **timed),
            toolrun.metric("layer_latency", sig(block * 1e3), "ms", **timed),
            toolrun.metric("head_latency", sig(head * 1e3), "ms", **timed),
            toolrun.metric("fixed_overhead_latency", sig(overhead * 1e3), "ms", "derived", timing="simulated"),
        ]
    except toolrun.InvalidValue as exc:
        return invalid_value(case, exc, params)
    return toolrun.ok(case.id, metrics=metrics, parameters=params, artifacts=list(artifacts), **case.where())
