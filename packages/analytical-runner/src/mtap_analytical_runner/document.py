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
from .roofline import Estimate, Floor, Hardware, estimate

TOOL = "analytical"
RUNNER = "analytical-runner"
#: The roofline method's version: tool.version. It changes when a number the method gives would
#: change (bytes model, peaks, summation), not when the runner's CLI does.
METHOD_VERSION = "1.0.0"
LOCATION = "mtap_analytical_runner: roofline over torch.utils.flop_counter counts on the meta device"
#: The second baseline: roofline + per-kernel floor (its own tool name, so aggregate reports it as its own row).
TOOL_FLOOR = "analytical-floor"
FLOOR_METHOD_VERSION = "1.0.0"
LOCATION_FLOOR = ("mtap_analytical_runner: per operator max(roofline, measured per-kernel floor) over "
                  "torch.utils.flop_counter counts on the meta device")
FLOOR_KEYS = {"gemm": "floor.mm-16.graph", "other": "floor.add-1.graph"}

DEFINITIONS = {
    "resnet50": "plain-torch copy of torchvision.models.resnet50 (25,557,032 parameters)",
    "mobilenet-v2": "plain-torch copy of torchvision.models.mobilenet_v2 (3,504,872 parameters)",
    "vgg16": "plain-torch copy of torchvision.models.vgg16 (138,357,544 parameters)",
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
    if case.shape.model not in ("resnet50", "mobilenet-v2", "vgg16"):
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


def floor_independence(floor: Floor) -> dict[str, Any]:
    """The floor is a microbenchmark of the scored GPU (never of another, never fitted to the scored cases):
    the case is calibrated separately (mtap_schemas.kinds.REFERENCE_CLASSES)."""
    document = floor.gemm_source.split("#", 1)[0]
    return toolrun.independence("calibrated-separately", f"per-kernel launch floor measured on this GPU by an empty-kernel "
                                                         f"microbenchmark ({document}), never fitted to the scored cases")


def floor_case(case: Case, est: Estimate, hw: Hardware, floor: Floor, artifacts: list[dict[str, str]]) -> dict[str, Any]:
    """The roofline + per-kernel floor case: latency = sum over operators of max(roofline, floor)."""
    assert est.floor_latency_s is not None
    params = case.parameters()
    params.update(
        {
            "operators": est.operators,
            "floored_operators": est.floored,
            "floor_combine": "max(roofline, floor) per operator",
            "floor_gemm_s": floor.gemm_s,
            "floor_other_s": floor.other_s,
            "floor_gemm_source": floor.gemm_source,
            "floor_other_source": floor.other_source,
            "peak_flops_per_s": est.peak_flops,
            "bandwidth_bytes_per_s": hw.bandwidth,
            "bytes_model": "operator-io-v1",
            "flop_counter": "torch.utils.flop_counter",
            "definition": DEFINITIONS[case.shape.model],
        }
    )
    timed = {"kind": "prediction", "timing": "simulated"}
    source = f"roofline + per-kernel floor: {floor.gemm_source}; {floor.other_source}"
    try:
        metrics = [
            toolrun.metric("latency", _sig(est.floor_latency_s * 1e3), "ms", **timed, source=source),
            toolrun.metric("roofline_latency", _sig(est.latency_s * 1e3), "ms", **timed),
            toolrun.metric("flops", est.flops, "FLOP", "prediction"),
            toolrun.metric("bytes", est.bytes, "B", "prediction"),
        ]
    except toolrun.InvalidValue as exc:
        return toolrun.failed(case.id, kind="invalid-value", message=f"{case.key} on {hw.id}: {exc}",
                              parameters=params, **_where(case))
    return toolrun.ok(case.id, metrics=metrics, parameters=params, artifacts=artifacts, **_where(case),
                      independence=floor_independence(floor))


def evaluate(case: Case, trace: Any, hw: Hardware, artifacts: list[dict[str, str]],
             floors: dict[str, Floor | str] | None = None) -> dict[str, Any]:
    """The case record: an estimate over the operators of ``trace`` that ran in the case's scope.
    With ``floors`` (hardware id -> its Floor, or the message why there is none) the floor variant."""
    scoped = trace.of_module(case.layer) if case.layer else trace.ops
    if not scoped:
        return toolrun.unsupported(case.id, kind="no-operators", message=f"no operator ran inside module {case.layer!r}",
                                   parameters=case.parameters(), **_where(case))
    if floors is None:
        return ok_case(case, estimate(scoped, hw, case.precision), hw, artifacts)
    floor = floors.get(case.hardware)
    if not isinstance(floor, Floor):
        return toolrun.unavailable(case.id, kind="profile-missing", parameters=case.parameters(), **_where(case),
                                   message=floor or f"no per-kernel floor for {case.hardware}")
    return floor_case(case, estimate(scoped, hw, case.precision, floor), hw, floor, artifacts)


@dataclass
class Unit:
    """One computation to trace and the selected cases (on any hardware) that read its operators."""

    ident: str
    shape: Any  # models.Shape
    cases: list[Case] = field(default_factory=list)
    hardware: dict[str, Hardware] = field(default_factory=dict)
    artifacts: list[dict[str, str]] = field(default_factory=list)
    floors: dict[str, Any] | None = None  # the floor variant: hardware id -> Floor or why there is none


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
    return [evaluate(c, trace, unit.hardware[c.hardware], unit.artifacts, unit.floors) for c in unit.cases]


def units_for(selected: list[Case], hardware: dict[str, Hardware], artifacts: list[dict[str, str]],
              floors: dict[str, Any] | None = None) -> list[Unit]:
    """The computations the selected cases need, in order of first use (a shard traces only its own)."""
    from .cases import shape_id

    by_shape: dict[Any, Unit] = {}
    for c in selected:
        unit = by_shape.get(c.shape)
        if unit is None:
            unit = by_shape[c.shape] = Unit(shape_id(c.shape), c.shape, artifacts=artifacts, floors=floors)
        unit.cases.append(c)
        unit.hardware.setdefault(c.hardware, hardware[c.hardware])
    return list(by_shape.values())


def read_floors(path: Any, hardware: list[str]) -> dict[str, Floor | str]:
    """Per hardware id, its :class:`Floor` from a groundtruth ``--suite floor`` document (tool-run v2),
    or the message saying why there is none: a floor is never borrowed from another GPU.
    A document that is not a valid measurement of the floor raises ``ValueError`` (one line)."""
    import mtap_schemas as ms
    from mtap_schemas.paths import relative_to_repo

    doc = ms.read_tool_run(path)
    where = relative_to_repo(path)
    if doc["tool"]["backend"] != "measured":
        raise ValueError(f"{path}: field tool.backend: {doc['tool']['backend']!r}, a floor must be measured ('measured')")
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    found: dict[tuple[str, str], tuple[float, str]] = {}
    for c in doc["cases"]:
        if c.get("key") not in FLOOR_KEYS.values() or c["status"] != "ok":
            continue
        m = {x["name"]: x for x in c["metrics"]}
        lat = m.get("latency")
        if lat is None or lat["unit"] not in scale or lat.get("timing") != "device" or not lat["value"] > 0:
            raise ValueError(f"{path}: case {c['id']}: field metrics.latency: expected a positive device-time latency in s/ms/us/ns")
        spread = ""
        if "latency_p10" in m and "latency_p90" in m:
            spread = f" [p10 {m['latency_p10']['value']}, p90 {m['latency_p90']['value']}]"
        value = lat["value"] * scale[lat["unit"]]
        found[(c["hardware"], c["key"])] = (value, f"{where}#{c['id']} = {lat['value']} {lat['unit']} median{spread}")
    out: dict[str, Floor | str] = {}
    for hid in hardware:
        g, o = found.get((hid, FLOOR_KEYS["gemm"])), found.get((hid, FLOOR_KEYS["other"]))
        if g is None or o is None:
            missing = ", ".join(k for k, v in ((FLOOR_KEYS["gemm"], g), (FLOOR_KEYS["other"], o)) if v is None)
            out[hid] = (f"no per-kernel floor measured on {hid} in {where} (missing ok case {missing}); measure it on that GPU "
                        f"with `groundtruth run --suite floor` (a floor is never taken from another GPU)")
        else:
            out[hid] = Floor(gemm_s=g[0], other_s=o[0], gemm_source=g[1], other_source=o[1])
    return out
