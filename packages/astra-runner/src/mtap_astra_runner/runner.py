"""Run one case: generate its inputs, run ASTRA-sim, parse, and return a tool-run case."""

from __future__ import annotations

import hashlib
import re
import signal
from pathlib import Path
from typing import Any

from . import inputs, parse, traces
from .cases import Case, unsupported_reason
from .compute import LayerTimes
from .tool import Tool, Unavailable

BINARY_ARG_ORDER = ("workload", "system", "remote-memory", "network")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _case(case: Case, status: str, error: dict | None = None, metrics: list | None = None, params: dict | None = None,
          artifacts: list | None = None) -> dict[str, Any]:
    return {
        "id": case.id,
        "key": case.key,
        "workload": case.workload,
        "hardware": case.hardware,
        "parameters": dict(sorted((params or case.params).items())),
        "status": status,
        "error": error,
        "metrics": metrics or [],
        "artifacts": artifacts or [],
    }


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


def run_case(case: Case, hardware: dict[str, Any], tool: Tool, workdir: Path, layer_times: LayerTimes | None,
             timeout: float, log_dir: Path | None = None, log_rel: str | None = None) -> tuple[dict[str, Any], str | None]:
    """(tool-run case, raw output or None)."""
    reason = unsupported_reason(case)
    if reason:
        return _case(case, "unsupported", {"kind": "unsupported-algorithm", "message": reason}), None
    try:
        tool.check(case.binary)
    except Unavailable as u:
        return _case(case, "unavailable", {"kind": u.kind, "message": u.message}), None
    try:
        args, extra, files = prepare(case, hardware, workdir, layer_times)
    except traces.ChakraMissing as exc:
        return _case(case, "unavailable", {"kind": "chakra-missing", "message": str(exc)}), None
    params = dict(case.params, **extra)
    for name, text in files.items():
        params[f"{name.split('.')[0]}_config_sha256"] = _sha(text)
    result = tool.run(case.binary, workdir, args, timeout)
    artifacts = []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = safe_name(case.id)
        for name, text in files.items():
            (log_dir / f"{stem}.{name}").write_text(text)
        # the workdir path varies between runs: logs keep it as <workdir>
        (log_dir / f"{stem}.log").write_text(result.output.replace(str(workdir), "<workdir>"))
        for name in [*files, "log"]:
            fname = f"{stem}.{name}"
            artifacts.append({"path": f"{log_rel}/{fname}", "sha256": _sha((log_dir / fname).read_text())})
    if result.returncode is None:
        return _case(case, "failed", {"kind": "timeout", "message": f"ASTRA-sim ran past {timeout:g} s"}, params=params, artifacts=artifacts), result.output
    if result.returncode != 0:
        msg = parse.failure_message(result.output)
        rc = result.returncode
        how = f"killed by signal {-rc} ({_signame(-rc)})" if rc < 0 else f"exit status {rc}"
        return _case(case, "failed", {"kind": "tool-crashed", "message": f"{how}: {msg}"}, params=params, artifacts=artifacts), result.output
    try:
        results = parse.parse(result.output, case.params["npus"])
    except parse.ParseError as exc:
        return _case(case, "failed", {"kind": "parse-failed", "message": str(exc)}, params=params, artifacts=artifacts), result.output
    params["critical_npu"] = parse.critical(results).npu
    if "expected_cycles" in params:
        params["reproduces_expected"] = parse.critical(results).cycles == params["expected_cycles"]
    return _case(case, "ok", None, parse.metrics(results), params=params, artifacts=artifacts), result.output


def derived_case(case: Case, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratio of one metric between two finished cases (communication scaling 2 -> 8 NPUs)."""
    metric = case.params["metric"]
    hi, lo = (done.get(i) for i in case.inputs)
    params = dict(case.params, numerator_case=case.inputs[0], denominator_case=case.inputs[1])
    bad = [c for c in (hi, lo) if c is None or c["status"] != "ok"]
    if bad:
        statuses = {c["status"] for c in bad if c is not None}
        status = "unavailable" if statuses <= {"unavailable"} else "failed"
        names = ", ".join(f"{c['id']} ({c['status']})" if c else "not run" for c in (hi, lo) if c is None or c["status"] != "ok")
        return _case(case, status, {"kind": "input-" + status, "message": f"needs both input cases ok: {names}"}, params=params)
    vals = []
    for c in (hi, lo):
        found = [m["value"] for m in c["metrics"] if m["name"] == metric]
        if not found or found[0] <= 0:
            return _case(case, "failed", {"kind": "parse-failed", "message": f"{c['id']} has no positive {metric}"}, params=params)
        vals.append(found[0])
    ratio = vals[0] / vals[1]
    name = f"{metric}_scaling_n{case.params['from_npus']}_to_n{case.params['to_npus']}"
    return _case(case, "ok", None, [{"name": name, "value": round(ratio, 6), "unit": "1", "kind": "derived", "timing": "simulated"}], params=params)


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return "unknown signal"


def safe_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case_id)
