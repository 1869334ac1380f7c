"""Run the planned cases through timeloop-mapper and turn its stats into tool-run v1 cases."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cases import MAPPER_FILE, SPEC_FILES, Case
from .parse import Stats, StatsParseError, parse_stats
from .problem import problem_yaml
from .tool import DockerTool, NativeTool, Result, Unavailable

STATS_FILE = "timeloop-mapper.stats.txt"
MAP_FILE = "timeloop-mapper.map.txt"


@dataclass
class Outcome:
    """What one mapper run gave: stats, or an error (kind, message)."""

    stats: Stats | None
    error: tuple[str, str] | None
    first_layer: str  # the layer whose run this is (others with the same shape share it)
    map_text: str | None = None


def spec_paths(data_dir: Path, arch: str) -> list[Path]:
    base = data_dir / "timeloop"
    return [base / arch / name for name in SPEC_FILES] + [base / MAPPER_FILE]


def _tail(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:400]


def run_one(tool: NativeTool | DockerTool, specs: list[Path], case: Case, timeout: float) -> Outcome:
    layer = case.layers[0]
    with tempfile.TemporaryDirectory(prefix="mtap-timeloop-") as tmp:
        work = Path(tmp)
        inputs = []
        for spec in specs:
            dest = work / (spec.parent.name + "-" + spec.name if spec.name != MAPPER_FILE else spec.name)
            shutil.copyfile(spec, dest)
            inputs.append(dest.name)
        (work / "problem.yaml").write_text(problem_yaml(layer), encoding="utf-8")
        inputs.append("problem.yaml")
        result: Result = tool.run(work, inputs, timeout)
        if result.timed_out:
            return Outcome(None, ("timeout", f"timeloop-mapper ran past {timeout:g} s on {layer.name}"), layer.name)
        stats_path = work / STATS_FILE
        if "no valid mappings found" in result.output:
            return Outcome(None, ("no-mapping", f"timeloop-mapper found no valid mapping for {layer.name} "
                                  f"({layer.shape_text()}) within the fixed search settings"), layer.name)
        if result.returncode != 0 or not stats_path.is_file():
            return Outcome(None, ("tool-crashed", f"timeloop-mapper exited {result.returncode} on {layer.name}"
                                  f"{'' if stats_path.is_file() else ' without writing ' + STATS_FILE}: {_tail(result.output)}"),
                           layer.name)
        text = stats_path.read_text(encoding="utf-8", errors="replace")
        try:
            stats = parse_stats(text)
        except StatsParseError as exc:
            return Outcome(None, ("parse-failed", f"{STATS_FILE} of {layer.name}: {exc}"), layer.name)
        map_path = work / MAP_FILE
        map_text = map_path.read_text(encoding="utf-8", errors="replace") if map_path.is_file() else None
        return Outcome(stats, None, layer.name, map_text)


def _metrics(stats: Stats, clock_hz: float | None, instances: int = 1) -> list[dict]:
    """One run's metrics; a case of several independent runs (attention heads) scales the
    extensive ones (cycles, energy, MACs) by their number."""
    k = instances
    m = [
        {"name": "cycles", "value": stats.cycles * k, "unit": "cycles", "kind": "prediction", "timing": "simulated"},
        {"name": "energy", "value": round(stats.energy_uj * k, 6), "unit": "uJ", "kind": "prediction"},
        {"name": "energy_per_mac", "value": round(stats.fj_per_compute / 1000.0, 6), "unit": "pJ/MAC", "kind": "prediction"},
        {"name": "utilization", "value": stats.utilization, "unit": "1", "kind": "prediction"},
        {"name": "macs", "value": stats.computes * k, "unit": "count", "kind": "prediction"},
    ]
    if clock_hz:
        m.insert(1, {"name": "latency", "value": stats.cycles * k / clock_hz, "unit": "s", "kind": "derived",
                     "timing": "simulated", "source": f"cycles / clock_hz of the hardware catalog ({clock_hz:g} Hz)"})
    if stats.area_mm2:
        m.append({"name": "area", "value": stats.area_mm2, "unit": "mm^2", "kind": "prediction"})
    return m


def _total_metrics(parts: list[tuple[Stats, int]], clock_hz: float | None) -> list[dict]:
    """Sum over the model: each part is (one run's stats, runs of it in the model)."""
    cycles = sum(s.cycles * r for s, r in parts)
    energy = sum(s.energy_uj * r for s, r in parts)
    macs = sum(s.computes * r for s, r in parts)
    busy = sum(s.utilization * s.cycles * r for s, r in parts)
    m = [
        {"name": "cycles", "value": cycles, "unit": "cycles", "kind": "prediction", "timing": "simulated"},
        {"name": "energy", "value": round(energy, 6), "unit": "uJ", "kind": "prediction"},
        {"name": "energy_per_mac", "value": round(energy * 1e6 / macs, 6), "unit": "pJ/MAC", "kind": "derived"},
        {"name": "utilization", "value": round(busy / cycles, 6), "unit": "1", "kind": "derived"},
        {"name": "macs", "value": macs, "unit": "count", "kind": "prediction"},
    ]
    if clock_hz:
        m.insert(1, {"name": "latency", "value": cycles / clock_hz, "unit": "s", "kind": "derived",
                     "timing": "simulated", "source": f"cycles / clock_hz of the hardware catalog ({clock_hz:g} Hz)"})
    return m


def execute(
    cases: list[Case],
    tool: NativeTool | DockerTool | Unavailable,
    data_dir: Path,
    artifacts: dict[str, list[dict]],
    clocks: dict[str, float | None],
    timeout: float,
    progress: Callable[[Case], None] | None = None,
    maps: dict[str, str] | None = None,
) -> list[dict]:
    """Run each distinct (architecture, layer shape) once and build every case from the runs."""
    outcomes: dict[tuple, Outcome] = {}
    if not isinstance(tool, Unavailable):
        for case in cases:
            if case.kind == "total":
                continue
            ident = (case.arch, case.layers[0].shape)
            if ident not in outcomes:
                outcomes[ident] = run_one(tool, spec_paths(data_dir, case.arch), case, timeout)
                if maps is not None and outcomes[ident].map_text:
                    maps[f"{case.arch}/{case.layers[0].name}"] = outcomes[ident].map_text
            if progress:
                progress(case)

    docs = []
    for case in cases:
        doc = {"id": case.id, "key": case.key, "workload": case.workload, "hardware": case.hardware,
               "parameters": dict(case.parameters), "status": "ok", "error": None, "metrics": [],
               "artifacts": artifacts[case.arch]}
        if isinstance(tool, Unavailable):
            doc.update(status="unavailable", error={"kind": tool.kind, "message": tool.message})
        elif case.kind == "total":
            parts, failed = [], []
            for la in case.layers:
                out = outcomes.get((case.arch, la.shape))
                if out is None or out.stats is None:
                    failed.append(la.name)
                else:
                    parts.append((out.stats, la.repeats * la.instances))
            if failed:
                doc.update(status="failed", error={"kind": "incomplete", "message": f"no result for layer(s) {', '.join(failed)}"})
            else:
                doc["metrics"] = _total_metrics(parts, clocks.get(case.hardware))
        else:
            out = outcomes[(case.arch, case.layers[0].shape)]
            doc["parameters"]["mapping_found"] = out.stats is not None
            if out.first_layer != case.layers[0].name:
                doc["parameters"]["same_problem_as"] = out.first_layer
            if out.stats is None:
                kind, message = out.error  # type: ignore[misc]
                doc.update(status="failed", error={"kind": kind, "message": message})
            else:
                doc["metrics"] = _metrics(out.stats, clocks.get(case.hardware), case.layers[0].instances)
        docs.append(doc)
    return docs
