"""Turn traces and roofline estimates into tool-run cases (through mtap_schemas.toolrun).

The unit of work is one traced computation (:class:`Unit`: a shape and the selected cases that
read it); :func:`run_unit` traces it once and evaluates each of its cases on its hardware. It is
module-level and its arguments are picklable, so ``mtap_schemas.execute.run_cases`` can run units
in worker processes (``--jobs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from mtap_schemas import toolrun

from .cases import Case
from .roofline import Estimate, Hardware, estimate

TOOL = "analytical"
RUNNER = "analytical-runner"
#: The roofline method's version: tool.version. It changes when a number the method gives would
#: change (bytes model, peaks, summation), not when the runner's CLI does.
METHOD_VERSION = "1.0.0"
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
    """Versions of the packages the numbers come from (the runner's own is added by the builder)."""
    out = {}
    for name in ("torch", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _where(case: Case) -> dict[str, Any]:
    return {"workload": case.workload, "hardware": case.hardware, "key": case.key}


def ok_case(case: Case, est: Estimate, hw: Hardware, artifacts: list[dict[str, str]]) -> dict[str, Any]:
    """The case for one estimate; a value the metric cannot take makes it ``failed``/``invalid-value``."""
    params = case.parameters()
    params.update(
        {
            "bound": est.bound,
            "compute_bound_share": round(est.compute_bound_share, 4),
            "operators": est.operators,
            "peak_flops_per_s": est.peak_flops,
            "bandwidth_bytes_per_s": hw.bandwidth,
            "bytes_model": "operator-io-v1",
            "flop_counter": "torch.utils.flop_counter",
            "definition": DEFINITIONS[case.shape.model],
        }
    )
    if case.shape.model != "resnet50":
        params["attention"] = "fused: aten._scaled_dot_product_efficient_attention"
    timed = {"kind": "prediction", "timing": "simulated"}
    try:
        intensity = toolrun.ratio(est.flops, est.bytes, "arithmetic_intensity (FLOPs / bytes)")
        metrics = [
            toolrun.metric("latency", _sig(est.latency_s * 1e3), "ms", **timed),
            toolrun.metric("compute_time", _sig(est.compute_s * 1e3), "ms", **timed),
            toolrun.metric("memory_time", _sig(est.memory_s * 1e3), "ms", **timed),
            toolrun.metric("flops", est.flops, "FLOP", "prediction"),
            toolrun.metric("bytes", est.bytes, "B", "prediction"),
            toolrun.metric("arithmetic_intensity", _sig(intensity), "FLOP/B", "derived"),
        ]
    except toolrun.InvalidValue as exc:
        return toolrun.failed(case.id, kind="invalid-value", message=f"{case.key} on {hw.id}: {exc}",
                              parameters=params, **_where(case))
    return toolrun.ok(case.id, metrics=metrics, parameters=params, artifacts=artifacts, **_where(case))


def evaluate(case: Case, trace: Any, hw: Hardware, artifacts: list[dict[str, str]]) -> dict[str, Any]:
    """The case record: an estimate over the operators of ``trace`` that ran in the case's scope."""
    scoped = trace.of_module(case.layer) if case.layer else trace.ops
    if not scoped:
        return toolrun.unsupported(case.id, kind="no-operators", message=f"no operator ran inside module {case.layer!r}",
                                   parameters=case.parameters(), **_where(case))
    return ok_case(case, estimate(scoped, hw, case.precision), hw, artifacts)


@dataclass
class Unit:
    """One computation to trace and the selected cases (on any hardware) that read its operators."""

    ident: str
    shape: Any  # models.Shape
    cases: list[Case] = field(default_factory=list)
    hardware: dict[str, Hardware] = field(default_factory=dict)
    artifacts: list[dict[str, str]] = field(default_factory=list)


def run_unit(unit: Unit) -> list[dict[str, Any]]:
    """Trace ``unit.shape`` once; one case per ``unit.cases``, in their order (runs in a worker process)."""
    try:
        from .models import run_shape  # torch/transformers

        trace = run_shape(unit.shape)
    except ImportError as exc:
        return [toolrun.unavailable(c.id, kind="package-missing", parameters=c.parameters(), **_where(c),
                                    message=f"{exc}; install transformers==5.24.0 (pip install mtap-analytical-runner brings it)")
                for c in unit.cases]
    except Exception as exc:  # noqa: BLE001 - a model that does not trace is a failed case, named
        first = f"{exc}".splitlines()[0][:400] if str(exc) else ""
        message = f"tracing {unit.ident} raised {type(exc).__name__}: {first}"
        return [toolrun.failed(c.id, kind="tool-crashed", message=message, parameters=c.parameters(), **_where(c))
                for c in unit.cases]
    return [evaluate(c, trace, unit.hardware[c.hardware], unit.artifacts) for c in unit.cases]


def units_for(selected: list[Case], hardware: dict[str, Hardware], artifacts: list[dict[str, str]]) -> list[Unit]:
    """The computations the selected cases need, in order of first use (a shard traces only its own)."""
    from .cases import shape_id

    by_shape: dict[Any, Unit] = {}
    for c in selected:
        unit = by_shape.get(c.shape)
        if unit is None:
            unit = by_shape[c.shape] = Unit(shape_id(c.shape), c.shape, artifacts=artifacts)
        unit.cases.append(c)
        unit.hardware.setdefault(c.hardware, hardware[c.hardware])
    return list(by_shape.values())
