"""The schemas themselves, the catalogs in data/, and the read/write helpers."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import mtap_schemas as ms

SCHEMAS = Path(__file__).resolve().parents[1]
ROOT = SCHEMAS.parent
SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))


def minimal_tool_run() -> dict:
    return {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "test-runner", "version": "0.0.1"},
        "tool": {"name": "analytical", "version": "1.0", "backend": "native"},
        "environment": ms.environment(),
        "invocation": {"command": ["test-runner", "run"], "config": None},
        "wall_clock": {"started_at": "2026-11-26T00:00:00Z", "setup_seconds": 0.0, "run_seconds": 1.5},
        "cases": [
            {
                "id": "conv1-b1",
                "key": "resnet50.conv1.b1.fp16",
                "workload": "W1",
                "hardware": "H100-SXM5-80GB",
                "parameters": {"batch": 1, "dtype": "fp16"},
                "status": "ok",
                "error": None,
                "metrics": [{"name": "latency", "value": 0.01, "unit": "ms", "kind": "prediction"}],
                "artifacts": [],
            },
            {
                "id": "conv1-b32",
                "workload": "W1",
                "hardware": "H100-SXM5-80GB",
                "parameters": {},
                "status": "unavailable",
                "error": {"kind": "binary-missing", "message": "no binary: pass --tool-path"},
                "metrics": [],
                "artifacts": [],
            },
        ],
    }


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert re.fullmatch(r"\d+\.\d+\.\d+", schema["x-mtap-version"])
    name, major = re.fullmatch(r"(.+)\.v(\d+)\.schema\.json", path.name).groups()
    assert schema["x-mtap-version"].split(".")[0] == major
    assert schema["properties"]["schema"] == {"const": name}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_objects_are_strict(path: Path) -> None:
    """Every object with declared properties forbids undeclared ones."""
    loose = []

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                loose.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(json.loads(path.read_text()), "#")
    # if/then/else branches only narrow existing properties.
    assert [w for w in loose if "/then" not in w and "/if" not in w and "/else" not in w] == []


def test_every_schema_file_ships_in_the_wheel() -> None:
    pyproject = (SCHEMAS / "pyproject.toml").read_text()
    for path in SCHEMA_FILES:
        assert f'"{path.name}" = "mtap_schemas/schemas/{path.name}"' in pyproject, path.name


def test_installed_schemas_match_files() -> None:
    for path in SCHEMA_FILES:
        name, major = re.fullmatch(r"(.+)\.v(\d+)\.schema\.json", path.name).groups()
        assert ms.load_schema(name, int(major)) == json.loads(path.read_text())


def test_catalogs_validate_and_agree() -> None:
    hardware = ms.read(ROOT / "data/hardware/hardware.json", "hardware")
    workloads = ms.read(ROOT / "data/workloads/workloads.json", "workloads")
    hw_ids = [h["id"] for h in hardware["hardware"]]
    assert len(hw_ids) == len(set(hw_ids))
    wl_ids = [w["id"] for w in workloads["workloads"]]
    assert wl_ids == [f"W{i}" for i in range(1, 11)]
    for w in workloads["workloads"]:
        assert set(w["hardware"]) <= set(hw_ids), w["id"]
    for h in hardware["hardware"]:
        if "device" in h:
            assert h["device"] in hw_ids


def test_h100_datasheet_figures() -> None:
    hardware = {h["id"]: h for h in ms.read(ROOT / "data/hardware/hardware.json", "hardware")["hardware"]}
    h100 = hardware["H100-SXM5-80GB"]
    assert h100["peak_flops"]["fp16"] == pytest.approx(989.4e12)
    assert h100["memory"]["bandwidth_bytes_per_s"] == pytest.approx(3.35e12)
    assert hardware["A100-SXM4-80GB"]["peak_flops"]["fp16"] == pytest.approx(312e12)


def test_valid_document_passes() -> None:
    ms.validate(minimal_tool_run(), "tool-run")


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda d: d["cases"][0].update(workload="W11"), "cases[0].workload", "does not match"),
        (lambda d: d["cases"][0].update(status="done"), "cases[0].status", "expected one of"),
        (lambda d: d["tool"].update(backend="cloud"), "tool.backend", "expected one of"),
        (lambda d: d["cases"][0]["metrics"][0].update(value="1.0"), "cases[0].metrics[0].value", "expected number"),
        (lambda d: d["cases"][0].update(colour="red"), "cases[0]", "colour"),
        (lambda d: d["cases"][1].update(error=None), "cases[1].error", ""),
        (lambda d: d.pop("environment"), "(document)", "'environment' is a required property"),
    ],
)
def test_invalid_document_names_the_field(mutate, field, expected) -> None:
    doc = minimal_tool_run()
    mutate(doc)
    with pytest.raises(ms.SchemaError) as err:
        ms.validate(doc, "tool-run", source="x.json")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"x.json: field {field}:"), message
    assert expected in message


def test_ok_case_needs_metrics() -> None:
    doc = minimal_tool_run()
    doc["cases"][0]["metrics"] = []
    with pytest.raises(ms.SchemaError, match=r"cases\[0\]\.metrics"):
        ms.validate(doc, "tool-run")


def test_reader_refuses_other_major_version(tmp_path: Path) -> None:
    doc = minimal_tool_run()
    doc["schema_version"] = "2.0.0"
    path = tmp_path / "future.tool-run.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ms.SchemaError) as err:
        ms.read(path, "tool-run")
    assert str(err.value) == f"{path}: field schema_version: got '2.0.0', this reader accepts tool-run v1.x only"


def test_reader_accepts_newer_minor(tmp_path: Path) -> None:
    doc = minimal_tool_run()
    doc["schema_version"] = "1.7.0"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    assert ms.read(path, "tool-run")["schema_version"] == "1.7.0"


def test_reader_names_bad_json_and_wrong_schema(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ms.SchemaError, match=r"bad.json: not valid JSON: .* line 1 column 2"):
        ms.read(bad, "tool-run")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "hardware", "schema_version": "1.0.0", "hardware": []}))
    with pytest.raises(ms.SchemaError, match="field schema: got 'hardware', expected 'tool-run'"):
        ms.read(other, "tool-run")
    with pytest.raises(ms.SchemaError, match="cannot read"):
        ms.read(tmp_path / "missing.json", "tool-run")


def test_write_is_atomic_and_refuses_invalid(tmp_path: Path) -> None:
    path = tmp_path / "out" / "t.tool-run.json"
    ms.write(path, minimal_tool_run(), "tool-run")
    before = path.read_bytes()
    bad = minimal_tool_run()
    bad["cases"][0]["status"] = "nope"
    with pytest.raises(ms.SchemaError):
        ms.write(path, bad, "tool-run")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.tool-run.json"]


def test_output_is_deterministic_apart_from_wall_clock(tmp_path: Path) -> None:
    a, b = minimal_tool_run(), copy.deepcopy(minimal_tool_run())
    b["wall_clock"]["run_seconds"] = 99.0
    b["cases"][0]["parameters"] = dict(reversed(list(b["cases"][0]["parameters"].items())))
    assert ms.canonical(a) == ms.canonical(b)
    assert ms.dumps(ms.canonical(a)) == ms.dumps(ms.canonical(b))
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    ms.write(pa, a, "tool-run")
    ms.write(pb, a, "tool-run")
    assert pa.read_bytes() == pb.read_bytes()


def test_unknown_schema_is_a_clear_error() -> None:
    with pytest.raises(ms.SchemaError, match="no schema 'nope' v1"):
        ms.load_schema("nope", 1)


def test_lines_style_is_the_same_json() -> None:
    doc = minimal_tool_run()
    text = ms.dumps(doc, "lines")
    assert json.loads(text) == json.loads(ms.dumps(doc))
    assert ms.dumps(copy.deepcopy(doc), "lines") == text
    # one line per case
    assert sum(1 for line in text.splitlines() if line.startswith('    {"artifacts"')) == len(doc["cases"])
    with pytest.raises(ValueError):
        ms.dumps({"x": float("nan")}, "lines")


def test_auto_style_is_pretty_until_the_size_limit(monkeypatch) -> None:
    doc = minimal_tool_run()
    assert ms.dumps(doc, "auto") == ms.dumps(doc, "pretty")
    monkeypatch.setattr(ms, "LINES_ABOVE_BYTES", len(ms.dumps(doc, "pretty")) - 1)
    assert ms.dumps(doc, "auto") == ms.dumps(doc, "lines")


def test_lines_style_item_boundaries_inside_strings_are_safe() -> None:
    tricky = {"rows": [["a],[b", 1], ["c", 2]], "objs": [{"x": "},{"}, {"x": "y"}], "mixed": [{"a": [1, 2]}, {"a": [3]}]}
    text = ms.dumps(tricky, "lines")
    assert json.loads(text) == tricky
    assert '    ["a],[b",1],\n    ["c",2]' in text
    fast = {"rows": [["a", 1], ["b", None]]}
    assert ms.dumps(fast, "lines") == '{\n  "rows": [\n    ["a",1],\n    ["b",null]\n  ]\n}\n'
