"""Run one case: generate its inputs, run ASTRA-sim, parse, and return a tool-run case.

:func:`run_unit` is what the kit's process pool runs (module level, one picklable :class:`Unit`
per case); :func:`derived_case` computes a ratio between two finished cases in the parent.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mtap_schemas.toolrun as tr
from mtap_schemas.kinds import OK, UNAVAILABLE

from . import inputs, parse, traces
from .cases import Case, unsupported_reason
from .compute import LayerTimes
from .tool import Tool

if TYPE_CHECKING:
    from .calibration import Calibration


@dataclass(frozen=True)
class Unit:
    """Everything one case needs in a worker process."""

    case: Case
    hardware: dict[str, Any]
    tool: Tool
    layer_times: LayerTimes | None
    timeout: float
    keep_raw: str | None  #: absolute folder for --keep-raw, or None
    #: the network calibration the case runs with (run --calibration), or None: its cases declare it
    calibration: Calibration | None = None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _common(case: Case, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"workload": case.workload, "hardware": case.hardware, "key": case.key,
            "parameters": dict(sorted((params if params is not None else case.params).items()))}


def network_of(case: Case, hardware: dict[str, Any]) -> tuple[str, float, float]:
    """(topology, link bandwidth GB/s, latency ns) for a case."""
    p = case.params
    topo = p["topology"]
    if "bandwidth_gbps" in p:  # the reference example states its own network
        return topo, float(p["bandwidth_gbps"]), float(p["latency_ns"])
    ic = hardware["interconnect"]
    bw = inputs.link_bandwidth_gbps(topo, p["npus"], float(ic["bandwidth_bytes_per_s"]))
    return topo, bw, float(ic["latency_ns"])


def local_mem_bw(case: Case, hardware: dict[str, Any]) -> float:
    if "local_mem_bw_gbps" in case.params:
        return float(case.params["local_mem_bw_gbps"])
    return float(hardware["memory"]["bandwidth_bytes_per_s"]) / 1e9


def prepare(case: Case, hardware: dict[str, Any], workdir: Path, layer_times: LayerTimes | None) -> tuple[list[str], dict[str, Any], dict[str, str]]:
    """Write the case's inputs into ``workdir``: (binary args, extra parameters, text files by name)."""
    p = case.params
    n = p["npus"]
    topo, bw, lat = network_of(case, hardware)
    files = {
        "network.yml": inputs.network_yaml(topo, n, bw, lat),
        "system.json": inputs.system_json(p["algorithm"], local_mem_bw(case, hardware)),
        "memory.json": inputs.memory_json(),
    }
    for name, text in files.items():
        (workdir / name).write_text(text)
    extra: dict[str, Any] = {"link_bandwidth_gbps": round(bw, 6), "link_latency_ns": lat}
    et_dir = workdir / "et"
    if p["kind"] == "collective":
        comm_size = traces.collective_size_bytes(p["collective"], p["size_bytes"], n)
        paths = traces.write_collective(et_dir, "trace", p["collective"], comm_size, n)
        extra["comm_size_bytes"] = comm_size
    else:
        assert layer_times is not None
        step = layer_times.step_layers(p["batch_per_gpu"])
        paths = traces.write_ddp_step(et_dir, "trace", n, step)
        extra.update(
            compute_source=layer_times.source,
            compute_detail=layer_times.detail,
            **({"compute_source_sha256": layer_times.sha256} if layer_times.sha256 else {}),
            layers=len(step),
            forward_compute_us=sum(s[1] for s in step),
            backward_compute_us=sum(s[2] for s in step),
            gradient_bytes=sum(s[3] for s in step),
        )
    extra["et_sha256"] = traces.digest(paths)
    args = [
        f"--workload-configuration={et_dir / 'trace'}",
        f"--system-configuration={workdir / 'system.json'}",
        f"--remote-memory-configuration={workdir / 'memory.json'}",
        f"--network-configuration={workdir / 'network.yml'}",
    ]
    return args, extra, files


def _keep(unit: Unit, files: dict[str, str], log: str) -> list[dict[str, str]]:
    """--keep-raw: the generated configs and the tool's output, as the case's artifacts."""
    if unit.keep_raw is None:
        return []
    folder = Path(unit.keep_raw)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(unit.case.id)
    out = []
    for name, text in [*files.items(), ("log", log)]:
        path = folder / f"{stem}.{name}"
        path.write_text(text)
        out.append(tr.artifact(path))
    return out


def run_unit(unit: Unit) -> dict[str, Any]:
    """One case, start to end, in its own temporary work folder."""
    case = unit.case
    reason = unsupported_reason(case)
    if reason:
        return tr.unsupported(case.id, kind="unsupported-algorithm", message=reason, **_common(case))
    if case.binary in unit.tool.missing:
        kind, message = unit.tool.missing[case.binary]
        return tr.from_error(case.id, kind=kind, message=message, **_common(case))
    with tempfile.TemporaryDirectory(prefix="astra-runner-") as tmp:
        workdir = Path(tmp)
        try:
            args, extra, files = prepare(case, unit.hardware, workdir, unit.layer_times)
        except traces.ChakraMissing as exc:
            return tr.unavailable(case.id, kind="chakra-missing", message=str(exc), **_common(case))
        params = dict(case.params, **extra)
        for name, text in files.items():
            params[f"{name.split('.')[0]}_config_sha256"] = _sha(text)
        result = unit.tool.run(case.binary, workdir, args, unit.timeout)
        # the work folder's path varies between runs: output and messages keep it as <workdir>
        output = "\n".join(t for t in (result.stdout, result.stderr) if t).replace(str(workdir), "<workdir>")
        artifacts = _keep(unit, files, output)
    common = {**_common(case, params), "artifacts": artifacts}
    if not result.ok:
        kind, message = result.error(unit.timeout)
        if kind in ("tool-crashed", "killed-by-signal"):
            head = replace(result, stdout="", stderr="").error(unit.timeout)[1]
            message = f"{head}: {parse.failure_message(output)}"
        elif kind == "binary-missing":  # the file is there but cannot be started (not a program, wrong architecture)
            kind = "tool-crashed"
        return tr.from_error(case.id, kind=kind, message=message.replace(str(Path(tmp)), "<workdir>"), **common)
    try:
        results = parse.parse(output, case.params["npus"])
        metrics = parse.metrics(results)
    except parse.ParseError as exc:
        return tr.failed(case.id, kind="parse-failed", message=str(exc), **common)
    except tr.InvalidValue as exc:
        return tr.failed(case.id, kind="invalid-value", message=str(exc), **common)
    crit = parse.critical(results)
    params["critical_npu"] = crit.npu
    if "expected_cycles" in params:
        params["reproduces_expected"] = crit.cycles == params["expected_cycles"]
    # a step whose compute is the simulated GPU's own measurement says so (tool-run 2.2 case.independence)
    dep = unit.layer_times.independence() if case.params.get("kind") == "ddp" and unit.layer_times is not None else None
    # a network fitted to measurements of this machine (run --calibration): calibrated-separately, with both inputs
    if unit.calibration is not None and case.hardware == unit.calibration.hardware:
        dep = unit.calibration.independence(dep)
    return tr.ok(case.id, metrics=metrics, independence=dep, **{**common, **_common(case, params)})


def derived_case(case: Case, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratio of one metric between two finished cases (communication scaling 2 -> 8 NPUs)."""
    metric = case.params["metric"]
    hi, lo = (done.get(i) for i in case.inputs)
    params = dict(case.params, numerator_case=case.inputs[0], denominator_case=case.inputs[1])
    common = _common(case, params)
    bad = [(i, c) for i, c in zip(case.inputs, (hi, lo)) if c is None or c["status"] != OK]
    if bad:
        names = ", ".join(f"{i} ({c['status'] if c else 'not run'})" for i, c in bad)
        if all(c is not None and c["status"] == UNAVAILABLE for _, c in bad):  # the same reason as its inputs
            first = bad[0][1]["error"]
            return tr.unavailable(case.id, kind=first["kind"], message=f"needs both input cases ok: {names}; {first['message']}",
                                  **common)
        return tr.failed(case.id, kind="incomplete", message=f"needs both input cases ok: {names}", **common)
    vals = []
    for c in (hi, lo):
        found = [m["value"] for m in c["metrics"] if m["name"] == metric]
        if not found:
            return tr.failed(case.id, kind="parse-failed", message=f"{c['id']} has no metric {metric}", **common)
        vals.append(found[0])
    name = f"{metric}_scaling_n{case.params['from_npus']}_to_n{case.params['to_npus']}"
    try:
        value = round(tr.ratio(vals[0], vals[1], f"{name}: {metric} of {lo['id']}"), 6)
    except tr.InvalidValue as exc:
        return tr.failed(case.id, kind="invalid-value", message=str(exc), **common)
    return tr.ok(case.id, metrics=[tr.metric(name, value, "1", "derived", timing="simulated")], **common)


def safe_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case_id)
