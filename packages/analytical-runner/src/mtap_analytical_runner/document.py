"""Turn traces and roofline estimates into tool-run v1 cases and the document around them."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from . import __version__
from .cases import Case
from .roofline import Estimate, Hardware, estimate
from .trace import BYTES_MODEL, Trace

TOOL = "analytical"
RUNNER = "analytical-runner"
LOCATION = "mtap_analytical_runner: roofline over torch.utils.flop_counter counts on the meta device"

DEFINITIONS = {
    "resnet50": "plain-torch copy of torchvision.models.resnet50 (25,557,032 parameters)",
    "bert-base": "transformers.BertModel(BertConfig()) with pooler",
    "gpt2": "transformers.GPT2LMHeadModel(GPT2Config())",
    "llama2-7b": "transformers.LlamaForCausalLM(Llama-2-7B config), StaticCache for decode",
}


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def packages() -> dict[str, str]:
    out = {"mtap-analytical-runner": __version__}
    for name in ("torch", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def ok_case(case: Case, est: Estimate, hw: Hardware, artifacts: list[dict[str, str]]) -> dict[str, Any]:
    params = case.parameters()
    params.update(
        {
            "bound": est.bound,
            "compute_bound_share": round(est.compute_bound_share, 4),
            "operators": est.operators,
            "peak_flops_per_s": est.peak_flops,
            "bandwidth_bytes_per_s": hw.bandwidth,
            "bytes_model": BYTES_MODEL,
            "flop_counter": "torch.utils.flop_counter",
            "definition": DEFINITIONS[case.shape.model],
        }
    )
    if case.shape.model != "resnet50":
        params["attention"] = "fused: aten._scaled_dot_product_efficient_attention"
    timed = {"kind": "prediction", "timing": "simulated"}
    metrics = [
        {"name": "latency", "value": _sig(est.latency_s * 1e3), "unit": "ms", **timed},
        {"name": "compute_time", "value": _sig(est.compute_s * 1e3), "unit": "ms", **timed},
        {"name": "memory_time", "value": _sig(est.memory_s * 1e3), "unit": "ms", **timed},
        {"name": "flops", "value": est.flops, "unit": "FLOP", "kind": "prediction"},
        {"name": "bytes", "value": est.bytes, "unit": "B", "kind": "prediction"},
        {"name": "arithmetic_intensity", "value": _sig(est.arithmetic_intensity), "unit": "FLOP/B", "kind": "derived"},
    ]
    return {
        "id": case.id,
        "key": case.key,
        "workload": case.workload,
        "hardware": case.hardware,
        "parameters": dict(sorted(params.items())),
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "artifacts": artifacts,
    }


def error_case(case: Case, status: str, kind: str, message: str) -> dict[str, Any]:
    return {
        "id": case.id,
        "key": case.key,
        "workload": case.workload,
        "hardware": case.hardware,
        "parameters": case.parameters(),
        "status": status,
        "error": {"kind": kind, "message": message},
        "metrics": [],
        "artifacts": [],
    }


def evaluate(case: Case, result: Trace | tuple[str, str, str], hw: Hardware, artifacts: list[dict[str, str]]) -> dict[str, Any]:
    """The case record: an estimate over the traced operators, or the trace's failure."""
    if isinstance(result, tuple):
        return error_case(case, *result)
    ops = result.of_module(case.layer) if case.layer else result.ops
    if not ops:
        return error_case(case, "failed", "no-operators", f"no operator ran inside module {case.layer!r}")
    return ok_case(case, estimate(ops, hw, case.precision), hw, artifacts)
