"""Run the mapper once per distinct (architecture spec, layer shape) and build every case from
those runs: a layer case from its shape's run, a model total from the runs of all its layers.

:func:`run_unit` is what a worker process runs (``mtap_schemas.execute.run_cases``); it returns
plain JSON (checkpointed for ``--resume``), with the stats already checked, so composing the
cases afterwards never meets a value a metric cannot take.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mtap_schemas.toolrun as tr
from mtap_schemas.layers import Layer
from mtap_schemas.toolrun import InvalidValue

from .cases import MAPPER_FILE, SPEC_FILES, Case
from .parse import Stats, StatsParseError, parse_stats
from .problem import problem_yaml
from .tool import Tool

STATS_FILE = "timeloop-mapper.stats.txt"
MAP_FILE = "timeloop-mapper.map.txt"


def spec_paths(data_dir: Path, arch: str) -> list[Path]:
    base = data_dir / "timeloop"
    return [base / arch / name for name in SPEC_FILES] + [base / MAPPER_FILE]


@dataclass(frozen=True)
class Unit:
    """One mapper run: a layer shape on an architecture spec (the first layer of the plan with it)."""

    ident: str
    arch: str
    layer: Layer
    specs: tuple[str, ...]
    tool: Tool
    timeout: float
    keep_raw: str | None = None


def check_stats(stats: Stats) -> None:
    """Raise :class:`InvalidValue` for a stats value no mapping can have."""
    tr.metric("cycles", stats.cycles, "cycles", "prediction")
    tr.metric("energy", stats.energy_uj, "uJ", "prediction")
    tr.metric("macs", stats.computes, "count", "prediction")
    tr.metric("energy_per_mac", stats.fj_per_compute, "pJ/MAC", "prediction")
    u = tr.metric("utilization", stats.utilization, "1", "prediction")["value"]
    if not 0 <= u <= 1:
        raise InvalidValue(f"metric utilization: got {u!r}, expected a fraction from 0 to 1")
    if stats.area_mm2 is not None:
        tr.metric("area", stats.area_mm2, "mm^2", "prediction")
    for name, value in (("cycles", stats.cycles), ("macs", stats.computes)):
        if value == 0:
            raise InvalidValue(f"metric {name}: got 0, but every mapping takes at least one")


def _keep(work: Path, keep_raw: str | None, ident: str) -> None:
    if keep_raw is None:
        return
    dest = Path(keep_raw) / ident
    dest.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        if f.is_file():
            shutil.copyfile(f, dest / f.name)


def run_unit(unit: Unit) -> dict[str, Any]:
    """Run timeloop-mapper on one layer: ``{"layer", "stats", "error": [kind, message], "map"}``."""
    layer = unit.layer
    out: dict[str, Any] = {"layer": layer.name, "stats": None, "error": None, "map": None}
    if unit.tool.missing is not None:
        out["error"] = list(unit.tool.missing)
        return out
    with tempfile.TemporaryDirectory(prefix="mtap-timeloop-") as tmp:
        work = Path(tmp)
        inputs = []
        for spec in map(Path, unit.specs):
            dest = work / (spec.parent.name + "-" + spec.name if spec.name != MAPPER_FILE else spec.name)
            shutil.copyfile(spec, dest)
            inputs.append(dest.name)
        (work / "problem.yaml").write_text(problem_yaml(layer), encoding="utf-8")
        inputs.append("problem.yaml")
        result = unit.tool.run(work, inputs, unit.timeout)
        (work / "timeloop-mapper.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        _keep(work, unit.keep_raw, unit.ident)
        stats_path = work / STATS_FILE
        if result.outcome == "exit" and "no valid mappings found" in result.stdout + result.stderr:
            out["error"] = ["no-mapping", f"timeloop-mapper found no valid mapping for {layer.name} "
                                          f"({layer.shape_text()}) within the fixed search settings"]
            return out
        if not result.ok or not stats_path.is_file():
            kind, message = result.error(unit.timeout) if not result.ok else (
                "tool-crashed", f"timeloop-mapper exited 0 without writing {STATS_FILE}")
            out["error"] = [kind, f"{message} ({layer.name})"]
            return out
        try:
            stats = parse_stats(stats_path.read_text(encoding="utf-8", errors="replace"))
            check_stats(stats)
        except StatsParseError as exc:
            out["error"] = ["parse-failed", f"{STATS_FILE} of {layer.name}: {exc}"]
            return out
        except InvalidValue as exc:
            out["error"] = ["invalid-value", f"{STATS_FILE} of {layer.name}: {exc}"]
            return out
        map_path = work / MAP_FILE
        out["stats"] = asdict(stats)
        out["map"] = map_path.read_text(encoding="utf-8", errors="replace") if map_path.is_file() else None
        return out


def layer_metrics(s: dict, clock_hz: float | None, instances: int = 1) -> list[dict]:
    """One run's metrics; a case of several independent runs (attention heads) scales the
    extensive ones (cycles, energy, MACs) by their number."""
    k = instances
    m = [tr.metric("cycles", s["cycles"] * k, "cycles", "prediction", timing="simulated"),
         *tr.latency_from_cycles(s["cycles"] * k, clock_hz),
         tr.metric("energy", round(s["energy_uj"] * k, 6), "uJ", "prediction"),
         tr.metric("energy_per_mac", round(s["fj_per_compute"] / 1000.0, 6), "pJ/MAC", "prediction"),
         tr.metric("utilization", s["utilization"], "1", "prediction"),
         tr.metric("macs", s["computes"] * k, "count", "prediction")]
    if s["area_mm2"]:
        m.append(tr.metric("area", s["area_mm2"], "mm^2", "prediction"))
    return m


def total_metrics(parts: list[tuple[dict, int]], clock_hz: float | None) -> list[dict]:
    """Sum over the model: each part is (one run's stats, runs of it in the model)."""
    cycles = sum(s["cycles"] * r for s, r in parts)
    energy = sum(s["energy_uj"] * r for s, r in parts)
    macs = sum(s["computes"] * r for s, r in parts)
    busy = sum(s["utilization"] * s["cycles"] * r for s, r in parts)
    return [tr.metric("cycles", cycles, "cycles", "prediction", timing="simulated"),
            *tr.latency_from_cycles(cycles, clock_hz),
            tr.metric("energy", round(energy, 6), "uJ", "prediction"),
            tr.metric("energy_per_mac", round(tr.ratio(energy * 1e6, macs, "energy_per_mac: MACs"), 6), "pJ/MAC", "derived"),
            tr.metric("utilization", round(tr.ratio(busy, cycles, "utilization: cycles"), 6), "1", "derived"),
            tr.metric("macs", macs, "count", "prediction")]


def build_case(case: Case, results: dict[tuple, dict], clock_hz: float | None, artifacts: list[dict],
               energy_model: str | None, maps: dict[tuple, dict]) -> dict:
    """The case from the runs of its shapes: ``results`` maps (arch, shape) to :func:`run_unit`'s result."""
    common: dict[str, Any] = {"workload": case.workload, "hardware": case.hardware, "key": case.key}
    params = dict(case.parameters)
    if case.kind == "total":
        parts, missing = [], []
        for la in case.layers:
            r = results[case.arch, la.shape]
            if r["stats"] is None:
                if r["error"][0] in ("binary-missing", "docker-missing", "docker-unavailable", "image-missing"):
                    return tr.from_error(case.id, kind=r["error"][0], message=r["error"][1], parameters=params,
                                         artifacts=artifacts, **common)
                missing.append(la.name)
            else:
                parts.append((r["stats"], la.repeats * la.instances))
        if missing:
            return tr.failed(case.id, kind="incomplete", message=f"no result for layer(s) {', '.join(missing)}",
                             parameters=params, artifacts=artifacts, **common)
        try:
            metrics = total_metrics(parts, clock_hz)
        except InvalidValue as exc:
            return tr.failed(case.id, kind="invalid-value", message=str(exc), parameters=params, artifacts=artifacts, **common)
        params["energy_model"] = energy_model
        return tr.ok(case.id, metrics=metrics, parameters=params, artifacts=artifacts, **common)
    layer = case.layers[0]
    r = results[case.arch, layer.shape]
    if r["stats"] is None and r["error"][0] in ("binary-missing", "docker-missing", "docker-unavailable", "image-missing"):
        return tr.from_error(case.id, kind=r["error"][0], message=r["error"][1], parameters=params, artifacts=artifacts,
                             **common)
    params["mapping_found"] = r["stats"] is not None
    if r["layer"] != layer.name:
        params["same_problem_as"] = r["layer"]
    if r["stats"] is None:
        kind, message = r["error"]
        return tr.failed(case.id, kind=kind, message=message, parameters=params, artifacts=artifacts, **common)
    try:
        metrics = layer_metrics(r["stats"], clock_hz, layer.instances)
    except InvalidValue as exc:
        return tr.failed(case.id, kind="invalid-value", message=str(exc), parameters=params, artifacts=artifacts, **common)
    params["energy_model"] = energy_model
    extra = [maps[case.arch, layer.shape]] if (case.arch, layer.shape) in maps else []
    return tr.ok(case.id, metrics=metrics, parameters=params, artifacts=[*artifacts, *extra], **common)
