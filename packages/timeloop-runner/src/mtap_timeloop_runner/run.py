"""Run the mapper once per distinct (architecture spec, layer shape), and Timeloop's part of
building the cases from those runs (the building itself: :func:`mtap_schemas.accel.build_case`).

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
from mtap_schemas import accel
from mtap_schemas.accel import Case
from mtap_schemas.layers import Layer
from mtap_schemas.toolrun import InvalidValue

from .cases import MAPPER_FILE
from .parse import Stats, StatsParseError, parse_stats
from .problem import problem_yaml
from .tool import Tool

STATS_FILE = "timeloop-mapper.stats.txt"
MAP_FILE = "timeloop-mapper.map.txt"


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
    area = [("area", stats.area_mm2, "mm^2")] if stats.area_mm2 is not None else []
    accel.check_figures([("cycles", stats.cycles, "cycles"), ("energy", stats.energy_uj, "uJ"),
                         ("macs", stats.computes, "count"), ("energy_per_mac", stats.fj_per_compute, "pJ/MAC"),
                         ("utilization", stats.utilization, "1"), *area], "mapping")


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


class TimeloopResults(accel.Adapter):
    """How a mapper run's stats become a case (:func:`mtap_schemas.accel.build_case`): every
    layer case says whether a mapping was found, an ok one names the energy model and its best
    mapping's file (``maps``: (spec, shape) -> artifact, when --save-maps wrote it)."""

    result_key = "stats"
    totals = ("cycles", "energy_uj", "computes", "utilization")
    energy_unit = "uJ"

    def __init__(self, energy_model: str | None, maps: dict[tuple, dict]) -> None:
        self.energy_model = energy_model
        self.maps = maps

    def layer_metrics(self, s: dict, clock_hz: float | None, instances: int) -> list[dict]:
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

    def ran_params(self, figures: dict | None) -> dict:
        return {"mapping_found": figures is not None}

    def layer_params(self, case: Case, figures: dict) -> dict:
        return {"energy_model": self.energy_model}

    def total_params(self, case: Case) -> dict:
        return {"energy_model": self.energy_model}

    def layer_artifacts(self, case: Case) -> list[dict]:
        where = (case.arch, case.layers[0].shape)
        return [self.maps[where]] if where in self.maps else []

