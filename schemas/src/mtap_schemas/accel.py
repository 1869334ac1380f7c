"""The spine of the accelerator-model runners (timeloop-runner, zigzag-runner): the case matrix
(the layer tables on each architecture, with join keys and parameters), the units a run needs
(one tool run per distinct layer shape on an architecture), the checks of a unit's figures, and
a layer case or a model total built from the units' results.

Both runners write documents that ``aggregate`` joins by key, so the matrix is planned in one
place and their keys, parameters and failure rules cannot drift apart. What each tool does its
own way stays in its runner, as an adapter: its architecture table (:class:`Catalog`), how a
unit runs and how its output is read, and how a unit's figures become metrics (:class:`Adapter`).

    CATALOG = Catalog(ARCHITECTURES, config_field="architectures", param="architecture")
    planned, hardware = load_plan(opts, CATALOG, cfg)
    units = [Unit(unit_ident(arch, la), arch, la, ...) for arch, la in unit_layers(planned, selected)]
    cases = [build_case(c, by_shape(units, results), clock_hz, artifacts, adapter) for c in selected]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from . import read
from . import toolrun as tr
from .cli import RunOptions, UserError
from .layers import Layer, LayerTable, LayerTableError, key_tail, model_total, select_tables
from .toolrun import InvalidValue

#: The models a config that names none runs.
DEFAULT_MODELS = ("resnet50", "bert-base")
#: Error kinds of a tool that is not there at all: its cases are ``unavailable``, not failed.
UNAVAILABLE = ("binary-missing", "docker-missing", "docker-unavailable", "image-missing")


@dataclass
class Config:
    """The ``--config`` fields both runners take; each runner's subclass adds the field listing
    its architectures (and any of its own). Read and validated by the kit against the runner's
    schema (schemas/config/<runner>.v1.schema.json) before :func:`config_from` sees it."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    layers: list[str] | None = None  # layer names to keep (None: all)
    batch: int | None = None  # None: each layer table's own batch (1; AlexNet 4, VGG-16 3 as Eyeriss measured)
    seq_len: int | None = None  # None: the table's (BERT-base 128)


ConfigT = TypeVar("ConfigT", bound=Config)


def config_from(cls: type[ConfigT], doc: dict | None) -> ConfigT:
    """A ``cls`` with the fields the (validated) config document sets."""
    cfg = cls()
    for key, value in (doc or {}).items():
        setattr(cfg, key, list(value) if isinstance(value, list) else value)
    return cfg


def config_help(prog: str, field: str, defaults: Sequence[str], extra: str = "") -> str:
    """The --config help of an accelerator runner: its schema and a config of every field (the
    architectures ``field`` with its ``defaults``, the shared fields, then ``extra``)."""
    archs = ", ".join(f'"{a}"' for a in defaults)
    return (f"JSON narrowing the matrix (schemas/config/{prog}.v1.schema.json): {{\"{field}\": [{archs}], "
            f'"models": ["resnet50", "bert-base"], "layers": [...], "batch": 1, "seq_len": 128{extra}}}.')


def _no_params(_arch: str) -> dict:
    return {}


def _no_check(_data_dir: Path, _arch: str) -> None:
    return None


@dataclass(frozen=True)
class Catalog:
    """A runner's architectures: ``specs`` maps each name to its hardware id in hardware.json
    (``"hardware"``) and the data type of its datapath (``"dtype"``, the keys' dtype), beside
    whatever else the runner keeps there."""

    specs: Mapping[str, Mapping[str, Any]]
    config_field: str  # the config field listing the architectures to run
    param: str  # the case parameter naming the architecture
    #: the parameters every case of an architecture carries beside the layer's (e.g. its spec files)
    spec_params: Callable[[str], dict] = _no_params
    #: raises UserError for an architecture whose inputs under the data folder are missing
    check: Callable[[Path, str], None] = _no_check
    #: why a hardware id is needed, in the error naming it missing
    needed: str = "needed by the {arch} spec"

    def chosen(self, cfg: Config) -> list[str]:
        return list(getattr(cfg, self.config_field))


@dataclass
class Case:
    """One planned case: a single layer (``layers`` has one entry) or a model total."""

    id: str
    key: str
    workload: str
    hardware: str
    arch: str
    dtype: str
    kind: str  # "w1" (ResNet-50 conv1 as W1), "layer", "total"
    layers: list[Layer]
    parameters: dict

    def plan(self) -> dict:
        return {"id": self.id, "key": self.key, "workload": self.workload, "hardware": self.hardware,
                "parameters": self.parameters}


def layer_params(catalog: Catalog, arch: str, layer: Layer) -> dict:
    """A layer case's parameters: the architecture, the layer and its shape, then the spec's."""
    p = {catalog.param: arch, "model": layer.model, "layer": layer.name, "shape": layer.shape_text(),
         "padding": layer.padding, "macs": layer.case_macs, "repeats": layer.repeats}
    if layer.instances > 1:
        p["instances"] = layer.instances
    if layer.note:
        p["note"] = layer.note
    return {**p, **catalog.spec_params(arch)}


def _model_cases(catalog: Catalog, arch: str, cfg: Config, model: str, table: LayerTable) -> list[Case]:
    """One model's cases on ``arch``: W1 conv1 (ResNet-50), the chosen layers, then the total
    (planned only when every layer is chosen)."""
    hw, dtype = catalog.specs[arch]["hardware"], catalog.specs[arch]["dtype"]
    b = cfg.batch or table.default_batch
    s = (cfg.seq_len or table.parameters["seq_len"]) if table.has_seq_len else None
    tail = key_tail(table, b, s, dtype)
    layers = table.layers(b, s)
    chosen = [la for la in layers if cfg.layers is None or la.name in cfg.layers]
    out: list[Case] = []
    if model == "resnet50" and any(la.name == "conv1" for la in chosen):
        conv1 = chosen[0]
        key = f"resnet50.conv1.{tail}"
        out.append(Case(f"{arch}/{key}", key, "W1", hw, arch, dtype, "w1", [conv1], layer_params(catalog, arch, conv1)))
    for la in chosen:
        key = f"{model}.layer.{la.name}.{tail}"
        out.append(Case(f"{arch}/{key}", key, la.workload, hw, arch, dtype, "layer", [la], layer_params(catalog, arch, la)))
    if chosen and len(chosen) == len(layers):
        key, scope = model_total(table, layers, tail)
        macs = sum(la.case_macs * la.repeats for la in layers)
        params = {catalog.param: arch, "model": model, "layers": len(layers), "macs": macs, "scope": scope,
                  **catalog.spec_params(arch)}
        out.append(Case(f"{arch}/{key}", key, table.workload, hw, arch, dtype, "total", layers, params))
    return out


def plan_cases(catalog: Catalog, cfg: Config, tables: dict[str, LayerTable]) -> list[Case]:
    """Every case in a stable order: per architecture and model, W1 conv1 (ResNet-50), the
    layers, then their total."""
    return [case for arch in catalog.chosen(cfg) for model in cfg.models
            for case in _model_cases(catalog, arch, cfg, model, tables[model])]


def load_plan(opts: RunOptions, catalog: Catalog, cfg: Config) -> tuple[list[Case], dict[str, dict]]:
    """Every planned case (before --shard/--limit) and the hardware catalog by id, checked: each
    chosen architecture's hardware id is in the catalog and its inputs are there, and the layer
    tables read (a one-line :class:`UserError` otherwise)."""
    hw_path = opts.data_dir / "hardware" / "hardware.json"
    hardware = {h["id"]: h for h in read(hw_path, "hardware")["hardware"]}
    for arch in catalog.chosen(cfg):
        hw = catalog.specs[arch]["hardware"]
        if hw not in hardware:
            raise UserError(f"{hw_path}: field hardware: no id {hw!r} ({catalog.needed.format(arch=arch)})")
        catalog.check(opts.data_dir, arch)
    try:
        tables = select_tables(opts.data_dir, cfg.models, cfg.layers, opts.config)
    except LayerTableError as exc:
        raise UserError(str(exc)) from None
    return plan_cases(catalog, cfg, tables), hardware


def echo_plan(opts: RunOptions, planned: Sequence[Case]) -> None:
    """The ``cases`` verb: the selected cases as JSON lines."""
    for case in opts.select(planned):
        click.echo(json.dumps(case.plan(), sort_keys=True))


def unit_layers(planned: Sequence[Case], selected: Sequence[Case]) -> list[tuple[str, Layer]]:
    """The units the selected cases need, as (architecture, layer): one per distinct layer shape
    on an architecture, in plan order, named by the first layer of the whole plan with that shape
    (so a shard or a --limit names a unit as the full run does)."""
    first: dict[tuple, Layer] = {}
    for c in planned:
        for la in c.layers:
            first.setdefault((c.arch, la.shape), la)
    wanted = {(c.arch, la.shape) for c in selected for la in c.layers}
    return [(arch, la) for (arch, shape), la in first.items() if (arch, shape) in wanted]


def unit_ident(arch: str, layer: Layer) -> str:
    """A unit's name in progress lines, the checkpoint and --keep-raw folders."""
    return f"{arch}/{layer.model}.{layer.name}"


def by_shape(units: Sequence[Any], results: Sequence[dict]) -> dict[tuple, dict]:
    """Each unit's result under (architecture, layer shape), what :func:`build_case` looks up."""
    return {(u.arch, u.layer.shape): r for u, r in zip(units, results)}


def check_figures(figures: Iterable[tuple[str, Any, str]], noun: str) -> None:
    """Raise :class:`InvalidValue` for a figure of one tool run that no run can have: each
    (name, value, unit) must be a valid metric value (finite, not negative), ``utilization`` a
    fraction from 0 to 1, ``cycles`` and ``macs`` not 0 (every ``noun`` takes at least one).
    Checked in the order given, so the first bad figure names the error."""
    values: dict[str, Any] = {}
    for name, value, unit in figures:
        checked = tr.metric(name, value, unit, "prediction")["value"]
        if name == "utilization" and not 0 <= checked <= 1:
            raise InvalidValue(f"metric utilization: got {checked!r}, expected a fraction from 0 to 1")
        values[name] = value
    for name in ("cycles", "macs"):
        if values.get(name) == 0:
            raise InvalidValue(f"metric {name}: got 0, but every {noun} takes at least one")


def total_metrics(parts: Sequence[tuple[Sequence[float], int]], clock_hz: float | None, energy_unit: str) -> list[dict]:
    """A model total's metrics: each part is one unit's (cycles, energy, MACs, utilization) and its
    runs in the model; energy in ``energy_unit`` ("uJ" or "pJ"), utilization weighted by cycles."""
    cycles = sum(c * n for (c, _e, _m, _u), n in parts)
    energy = sum(e * n for (_c, e, _m, _u), n in parts)
    macs = sum(m * n for (_c, _e, m, _u), n in parts)
    busy = sum(u * c * n for (c, _e, _m, u), n in parts)
    uj, pj = (energy, energy * 1e6) if energy_unit == "uJ" else (energy / 1e6, energy)
    return [tr.metric("cycles", cycles, "cycles", "prediction", timing="simulated"),
            *tr.latency_from_cycles(cycles, clock_hz),
            tr.metric("energy", round(uj, 6), "uJ", "prediction"),
            tr.metric("energy_per_mac", round(tr.ratio(pj, macs, "energy_per_mac: MACs"), 6), "pJ/MAC", "derived"),
            tr.metric("utilization", round(tr.ratio(busy, cycles, "utilization: cycles"), 6), "1", "derived"),
            tr.metric("macs", macs, "count", "prediction")]


class Adapter:
    """How one tool's unit results become cases. A unit result is a dict with ``"layer"`` (the
    layer it ran), ``"error"`` ([kind, message] when it failed) and, under :attr:`result_key`,
    the tool's figures (None when it failed). A runner subclasses this: where the figures are,
    their names and energy unit, its layer metrics, and the parameters and artifacts it adds."""

    #: the unit result's entry holding the tool's figures
    result_key = "result"
    #: the figures' names of cycles, energy, MACs and utilization (what a model total sums)
    totals = ("cycles", "energy", "macs", "utilization")
    #: the unit of the energy figure: "uJ" or "pJ"
    energy_unit = "uJ"

    def layer_metrics(self, figures: dict, clock_hz: float | None, instances: int) -> list[dict]:
        """One unit's metrics for a layer case of ``instances`` independent runs (attention heads)."""
        raise NotImplementedError

    def ran_params(self, figures: dict | None) -> dict:
        """Parameters of a layer case whose unit ran, ok or failed."""
        return {}

    def layer_params(self, case: Case, figures: dict) -> dict:
        """Parameters of an ok layer case."""
        return {}

    def total_params(self, case: Case) -> dict:
        """Parameters of an ok model total."""
        return {}

    def layer_artifacts(self, case: Case) -> list[dict]:
        """Artifacts of an ok layer case beside its architecture's."""
        return []


def _total_case(case: Case, results: Mapping[tuple, dict], clock_hz: float | None, common: dict,
                adapter: Adapter) -> dict:
    parts, missing = [], []
    for la in case.layers:
        r = results[case.arch, la.shape]
        figures = r[adapter.result_key]
        if figures is None:
            if r["error"][0] in UNAVAILABLE:
                return tr.from_error(case.id, kind=r["error"][0], message=r["error"][1], **common)
            missing.append(la.name)
        else:
            parts.append((tuple(figures[name] for name in adapter.totals), la.repeats * la.instances))
    if missing:
        return tr.failed(case.id, kind="incomplete", message=f"no result for layer(s) {', '.join(missing)}", **common)
    try:
        metrics = total_metrics(parts, clock_hz, adapter.energy_unit)
    except InvalidValue as exc:
        return tr.failed(case.id, kind="invalid-value", message=str(exc), **common)
    common["parameters"].update(adapter.total_params(case))
    return tr.ok(case.id, metrics=metrics, **common)


def _layer_case(case: Case, results: Mapping[tuple, dict], clock_hz: float | None, common: dict,
                adapter: Adapter) -> dict:
    layer = case.layers[0]
    r = results[case.arch, layer.shape]
    figures = r[adapter.result_key]
    if figures is None and r["error"][0] in UNAVAILABLE:
        return tr.from_error(case.id, kind=r["error"][0], message=r["error"][1], **common)
    params = common["parameters"]
    params.update(adapter.ran_params(figures))
    if r["layer"] != layer.name:
        params["same_problem_as"] = r["layer"]
    if figures is None:
        kind, message = r["error"]
        return tr.failed(case.id, kind=kind, message=message, **common)
    try:
        metrics = adapter.layer_metrics(figures, clock_hz, layer.instances)
    except InvalidValue as exc:
        return tr.failed(case.id, kind="invalid-value", message=str(exc), **common)
    params.update(adapter.layer_params(case, figures))
    common["artifacts"] = [*common["artifacts"], *adapter.layer_artifacts(case)]
    return tr.ok(case.id, metrics=metrics, **common)


def build_case(case: Case, results: Mapping[tuple, dict], clock_hz: float | None, artifacts: list[dict],
               adapter: Adapter) -> dict:
    """The case from the results of its units (``results`` maps (architecture, layer shape) to a
    unit result, :func:`by_shape`). A tool that is not there makes the case ``unavailable``; a
    failed unit fails its layer case with the unit's error and its model total as ``incomplete``
    (naming the layers without a result); a value no metric can take is ``invalid-value``."""
    common: dict[str, Any] = {"workload": case.workload, "hardware": case.hardware, "key": case.key,
                              "parameters": dict(case.parameters), "artifacts": artifacts}
    build = _total_case if case.kind == "total" else _layer_case
    return build(case, results, clock_hz, common, adapter)
