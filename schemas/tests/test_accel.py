"""The accelerator runners' spine (mtap_schemas.accel) with two fake adapters: one keeping its
figures in uJ under "stats" with every hook (as Timeloop's), one in pJ under "result" with none
(as ZigZag's). The runners run the same plan tests through their CLIs (mtap_schemas.accel_tests)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import mtap_schemas.toolrun as tr
from mtap_schemas import accel
from mtap_schemas.layers import select_tables
from mtap_schemas.toolrun import InvalidValue

DATA = Path(__file__).resolve().parents[2] / "data"
SPECS = {"a": {"hardware": "HW-A", "dtype": "int16"}, "b": {"hardware": "HW-B", "dtype": "int8"}}
ART = [{"path": "<external>/spec.yaml", "sha256": "0" * 64}]


@dataclass
class Cfg(accel.Config):
    archs: list[str] = field(default_factory=lambda: ["a", "b"])


CATALOG = accel.Catalog(SPECS, config_field="archs", param="arch", spec_params=lambda arch: {"spec": arch.upper()})


class MicroJoules(accel.Adapter):
    result_key = "stats"
    totals = ("cycles", "uj", "macs", "util")
    energy_unit = "uJ"

    def layer_metrics(self, f, clock_hz, instances):
        return [tr.metric("cycles", f["cycles"] * instances, "cycles", "prediction"),
                tr.metric("energy", f["uj"] * instances, "uJ", "prediction")]

    def ran_params(self, figures):
        return {"ran": figures is not None}

    def layer_params(self, case, figures):
        return {"tool_param": figures["cycles"]}

    def total_params(self, case):
        return {"total_param": case.key}

    def layer_artifacts(self, case):
        return [{"path": f"<external>/{case.layers[0].name}.txt", "sha256": "1" * 64}]


class PicoJoules(accel.Adapter):
    totals = ("cycles", "pj", "macs", "util")
    energy_unit = "pJ"

    def layer_metrics(self, f, clock_hz, instances):
        return [tr.metric("cycles", f["cycles"] * instances, "cycles", "prediction"),
                tr.metric("energy", f["pj"] * instances / 1e6, "uJ", "prediction")]


ADAPTERS = [MicroJoules(), PicoJoules()]


@pytest.fixture
def data_dir() -> Path:
    if not (DATA / "workloads" / "layers").is_dir():
        pytest.skip("the repository's data/ is not beside schemas/")
    return DATA


def plan(data_dir: Path, **cfg) -> list[accel.Case]:
    c = accel.config_from(Cfg, cfg)
    return accel.plan_cases(CATALOG, c, select_tables(data_dir, c.models, c.layers, None))


def figures(adapter: accel.Adapter, layer, cycles: float = 1000.0, energy_uj: float = 2.0, util: float = 0.5) -> dict:
    """A unit's figures for ``layer``: MACs its own, energy in the adapter's unit."""
    energy = energy_uj if adapter.energy_unit == "uJ" else energy_uj * 1e6
    return dict(zip(adapter.totals, (cycles, energy, layer.macs, util)))


def ran(adapter, layer, figs=None, error=None, name=None) -> dict:
    return {"layer": name or layer.name, adapter.result_key: figs, "error": error}


def test_config_from_sets_the_fields_the_document_gives():
    doc = {"archs": ["b"], "layers": ["fc"], "batch": 2}
    cfg = accel.config_from(Cfg, doc)
    assert (cfg.archs, cfg.layers, cfg.batch, cfg.models, cfg.seq_len) == (["b"], ["fc"], 2, ["resnet50", "bert-base"], None)
    assert cfg.archs is not doc["archs"]  # a copy: the plan never changes the document
    assert accel.config_from(Cfg, None) == Cfg()


def test_plan_order_keys_and_parameters(data_dir):
    cases = plan(data_dir, models=["resnet50", "alexnet"])
    assert len(cases) == 2 * (1 + 54 + 1 + 5 + 1)
    a = [c for c in cases if c.arch == "a"]
    assert cases[: len(a)] == a  # per architecture, then per model
    assert [c.kind for c in a[:2]] == ["w1", "layer"] and a[0].key == "resnet50.conv1.b1.int16" and a[0].workload == "W1"
    assert a[55].kind == "total" and a[55].key == "resnet50.model.b1.int16" and a[-1].key == "alexnet.conv-layers.b4.int16"
    assert a[1].id == "a/resnet50.layer.conv1.b1.int16" and a[1].hardware == "HW-A"
    assert a[1].parameters == {"arch": "a", "model": "resnet50", "layer": "conv1", "shape": a[1].layers[0].shape_text(),
                               "padding": 3, "macs": 118_013_952, "repeats": 1, "spec": "A"}
    assert a[55].parameters["macs"] == sum(la.case_macs * la.repeats for la in a[55].layers) and a[55].parameters["spec"] == "A"
    assert a[57].parameters["instances"] == 2  # alexnet conv2: two groups
    assert {c.dtype for c in cases if c.arch == "b"} == {"int8"}


def test_a_layer_selection_plans_no_totals(data_dir):
    cases = plan(data_dir, archs=["b"], models=["resnet50", "alexnet"], layers=["conv1"])
    assert [c.key for c in cases] == ["resnet50.conv1.b1.int8", "resnet50.layer.conv1.b1.int8", "alexnet.layer.conv1.b4.int8"]


def test_units_are_the_distinct_shapes_named_by_the_first_layer_of_the_plan(data_dir):
    cases = plan(data_dir, archs=["a"], models=["resnet50"])
    layers = cases[-1].layers
    shapes = [la.shape for la in layers]
    later = next(la for i, la in enumerate(layers) if la.shape in shapes[:i])  # a layer whose shape came before
    first = layers[shapes.index(later.shape)]
    (case,) = [c for c in cases if c.kind == "layer" and c.layers[0] == later]
    assert accel.unit_layers(cases, [case]) == [("a", first)]
    assert accel.unit_ident("a", first) == f"a/resnet50.{first.name}"
    units = accel.unit_layers(cases, cases[-1:])
    assert [la.shape for _, la in units] == list(dict.fromkeys(shapes)) and len(units) < len(layers)


def test_check_figures_names_the_first_bad_one():
    good = [("cycles", 10, "cycles"), ("energy", 1.0, "uJ"), ("macs", 100, "count"), ("utilization", 0.5, "1")]
    accel.check_figures(good, "layer")
    with pytest.raises(InvalidValue, match="metric energy: got inf"):
        accel.check_figures([good[0], ("energy", math.inf, "uJ"), ("macs", 0, "count")], "layer")
    with pytest.raises(InvalidValue, match="metric utilization: got 1.5, expected a fraction from 0 to 1"):
        accel.check_figures([*good[:3], ("utilization", 1.5, "1")], "layer")
    with pytest.raises(InvalidValue, match="metric macs: got 0, but every mapping takes at least one"):
        accel.check_figures([*good[:2], ("macs", 0, "count"), good[3]], "mapping")
    with pytest.raises(InvalidValue, match="metric cycles: got 0, but every layer"):
        accel.check_figures([("cycles", 0, "cycles"), *good[1:3], ("macs", 0, "count")], "layer")


@pytest.mark.parametrize("unit, scale", [("uJ", 1.0), ("pJ", 1e6)])
def test_total_metrics_sum_runs_in_either_energy_unit(unit, scale):
    parts = [((100, 2.0 * scale, 1000, 0.5), 2), ((300, 1.0 * scale, 3000, 1.0), 1)]
    m = {x["name"]: x for x in accel.total_metrics(parts, 1e8, unit)}
    assert {k: v["value"] for k, v in m.items()} == {"cycles": 500, "latency": 5e-6, "energy": 5.0, "energy_per_mac": 1000.0,
                                                     "utilization": 0.8, "macs": 5000}
    assert m["energy"]["unit"] == "uJ" and m["utilization"]["kind"] == "derived"
    assert "latency" not in {x["name"] for x in accel.total_metrics(parts, None, unit)}


@pytest.fixture
def alexnet(data_dir) -> list[accel.Case]:
    return plan(data_dir, archs=["a"], models=["alexnet"])  # 5 layers (conv2 two groups) + the total


@pytest.mark.parametrize("adapter", ADAPTERS, ids=["uJ", "pJ"])
def test_layer_case_ok(alexnet, adapter):
    case = alexnet[1]
    la = case.layers[0]
    doc = accel.build_case(case, {("a", la.shape): ran(adapter, la, figures(adapter, la))}, None, ART, adapter)
    assert doc["status"] == "ok" and doc["key"] == case.key and doc["hardware"] == "HW-A"
    assert {m["name"]: m["value"] for m in doc["metrics"]} == {"cycles": 2000.0, "energy": 4.0}  # 2 groups
    hooks = isinstance(adapter, MicroJoules)
    assert doc["parameters"] == {**case.parameters, **({"ran": True, "tool_param": 1000.0} if hooks else {})}
    assert doc["artifacts"] == ART + ([{"path": "<external>/conv2.txt", "sha256": "1" * 64}] if hooks else [])
    assert case.parameters.get("ran") is None  # the plan is not changed


@pytest.mark.parametrize("adapter", ADAPTERS, ids=["uJ", "pJ"])
def test_layer_case_of_a_failed_unit_and_of_a_shared_shape(alexnet, adapter):
    case = alexnet[0]
    la = case.layers[0]
    results = {("a", la.shape): ran(adapter, la, error=["timeout", "ran past 2 s"], name="other")}
    doc = accel.build_case(case, results, None, ART, adapter)
    assert doc["status"] == "failed" and doc["error"] == {"kind": "timeout", "message": "ran past 2 s"}
    extra = {"ran": False} if isinstance(adapter, MicroJoules) else {}
    assert doc["parameters"] == {**case.parameters, **extra, "same_problem_as": "other"} and doc["artifacts"] == ART


@pytest.mark.parametrize("adapter", ADAPTERS, ids=["uJ", "pJ"])
def test_a_missing_tool_makes_layer_and_total_unavailable(alexnet, adapter):
    results = {("a", la.shape): ran(adapter, la, figures(adapter, la)) for la in alexnet[-1].layers}
    la = alexnet[2].layers[0]
    results["a", la.shape] = ran(adapter, la, error=["binary-missing", "no timeloop-mapper"])
    for case in (alexnet[2], alexnet[-1]):
        doc = accel.build_case(case, results, None, ART, adapter)
        assert doc["status"] == "unavailable" and doc["error"]["kind"] == "binary-missing"
        assert doc["parameters"] == case.parameters


@pytest.mark.parametrize("adapter", ADAPTERS, ids=["uJ", "pJ"])
def test_a_value_no_metric_takes_is_invalid_value(alexnet, adapter):
    la = alexnet[0].layers[0]
    doc = accel.build_case(alexnet[0], {("a", la.shape): ran(adapter, la, figures(adapter, la, cycles=math.inf))}, None,
                           ART, adapter)
    assert doc["status"] == "failed" and doc["error"]["kind"] == "invalid-value" and "metric cycles: got inf" in doc["error"]["message"]
    zero = {("a", la.shape): ran(adapter, la, figures(adapter, la, cycles=0)) for la in alexnet[-1].layers}
    doc = accel.build_case(alexnet[-1], zero, None, ART, adapter)
    assert doc["error"] == {"kind": "invalid-value", "message": "utilization: cycles: divisor is 0"}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=["uJ", "pJ"])
def test_model_total(alexnet, adapter):
    total = alexnet[-1]
    results = {("a", la.shape): ran(adapter, la, figures(adapter, la)) for la in total.layers}
    doc = accel.build_case(total, results, 2e8, ART, adapter)
    m = {x["name"]: x["value"] for x in doc["metrics"]}
    runs = sum(la.repeats * la.instances for la in total.layers)  # conv2 and the grouped layers count twice
    assert doc["status"] == "ok" and m["macs"] == total.parameters["macs"] and m["cycles"] == 1000.0 * runs
    assert m["energy"] == 2.0 * runs and m["utilization"] == 0.5 and m["latency"] == 1000.0 * runs / 2e8
    assert doc["parameters"] == {**total.parameters, **({"total_param": total.key} if isinstance(adapter, MicroJoules) else {})}
    assert doc["artifacts"] == ART
    for name in ("conv4", "conv1"):
        la = next(la for la in total.layers if la.name == name)
        results["a", la.shape] = ran(adapter, la, error=["tool-crashed", "broke"])
    doc = accel.build_case(total, results, 2e8, ART, adapter)
    assert doc["status"] == "failed" and doc["error"] == {"kind": "incomplete", "message": "no result for layer(s) conv1, conv4"}


def test_config_help_names_the_schema_and_the_defaults():
    text = accel.config_help("x-runner", "archs", ["a", "b"], ', "timeout_s": 1')
    assert text.startswith("JSON narrowing the matrix (schemas/config/x-runner.v1.schema.json): ")
    assert text.endswith('{"archs": ["a", "b"], "models": ["resnet50", "bert-base"], "layers": [...], "batch": 1, '
                         '"seq_len": 128, "timeout_s": 1}.')
