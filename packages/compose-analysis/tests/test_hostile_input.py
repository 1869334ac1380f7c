"""Hostile inputs (issue 32): each builds the bad input in tmp_path and checks the exit code and the one line."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from test_compose import case, doc, m

import mtap_schemas as ms
from mtap_compose.cli import analyse, main


def _run(folder: Path):
    return CliRunner().invoke(
        main,
        [
            "run",
            "--evaluation-dir",
            str(folder),
            "--output",
            str(folder / "out" / "c.json"),
            "--report",
            str(folder / "out" / "c.md"),
            "--hardware",
            str(folder / "none.json"),
        ],
    )


def _errors(res) -> list[str]:
    return [x for x in res.output.splitlines() if x.startswith("Error:")]


def test_a_model_name_with_dots_in_a_ddp_step_key(tmp_path: Path) -> None:
    ms.write(
        tmp_path / "astra.tool-run.json",
        doc(
            "tool-b",
            [
                case(
                    "s2",
                    "llama-3.1-8b.ddp-step.n2.b1.fp16",
                    [m("latency", 2.0, "ms"), m("compute_time", 1.5, "ms")],
                    hardware="HGX-H100x8",
                    workload="W3",
                ),
            ],
        ),
        "tool-run",
        2,
    )
    res = _run(tmp_path)
    assert res.exit_code == 0, res.output
    rows = ms.read(tmp_path / "out" / "c.json", "compositional")["compute_to_system"]
    assert [(r["key"], r["npus"]) for r in rows] == [("llama-3.1-8b.ddp-step.n2.b1.fp16", 2)]


def test_a_model_name_with_dots_in_layer_and_model_keys_stays_whole(tmp_path: Path) -> None:
    ms.write(
        tmp_path / "a.tool-run.json",
        doc(
            "tool-a",
            [
                case("l1", "llama-3.1-8b.layer.attn.b1.fp16", [m("latency", 1.0)]),
                case("mod", "llama-3.1-8b.model.b1.fp16", [m("latency", 2.0)]),
            ],
        ),
        "tool-run",
        2,
    )
    ms.write(
        tmp_path / "m.tool-run.json",
        doc(
            "groundtruth",
            [
                case("mod", "llama-3.1-8b.model.b1.fp16", [m("latency", 2.5, kind="measurement", timing="device")]),
            ],
            backend="measured",
        ),
        "tool-run",
        2,
    )
    rows = analyse(tmp_path)["layer_to_model"]
    assert [(r["model"], r["config"], r["measured_model_ms"]) for r in rows] == [("llama-3.1-8b", "b1.fp16", 2.5)]


def test_a_non_finite_derived_value_names_the_input_document_and_case(tmp_path: Path) -> None:
    ms.write(
        tmp_path / "a.tool-run.json",
        doc(
            "tool-a",
            [
                case("l1", "resnet50.layer.conv1.b1.fp32", [m("latency", 1.0)]),
                case("mod", "resnet50.model.b1.fp32", [m("latency", 1e300)]),
            ],
        ),
        "tool-run",
        2,
    )
    ms.write(
        tmp_path / "m.tool-run.json",
        doc(
            "groundtruth",
            [
                case("mod", "resnet50.model.b1.fp32", [m("latency", 1e-10, kind="measurement", timing="device")]),
            ],
            backend="measured",
        ),
        "tool-run",
        2,
    )
    res = _run(tmp_path)
    assert res.exit_code == 2, res.output
    errors = _errors(res)
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    assert re.match(
        r"Error: a\.tool-run\.json: case mod: latency 1e\+300 ms makes layer_to_model model_ape_percent is not finite", errors[0]
    ), errors[0]
    assert "c.json" not in errors[0] and not (tmp_path / "out").exists()


def test_a_time_that_overflows_in_ms_names_the_document_and_case(tmp_path: Path) -> None:
    ms.write(
        tmp_path / "sub" / "a.tool-run.json",
        doc("tool-a", [case("big", "resnet50.model.b1.fp32", [m("latency", 1e306, "s")])]),
        "tool-run",
        2,
    )
    res = _run(tmp_path)
    assert res.exit_code == 2, res.output
    assert _errors(res) == ["Error: sub/a.tool-run.json: case big: metric latency 1e+306 s is not finite in ms"]


def test_hostile_names_do_not_inject_rows_into_the_report(tmp_path: Path) -> None:
    evil = "H100|x\n| evil | row |"
    ms.write(
        tmp_path / "a.tool-run.json",
        doc(
            "tool-a",
            [
                case("l1", "resnet50.layer.conv1.b1.fp32", [m("latency", 1.0)], hardware=evil),
                case("mod", "resnet50.model.b1.fp32", [m("latency", 2.0)], hardware=evil),
            ],
        ),
        "tool-run",
        2,
    )
    (tmp_path / "bad|name\n- injected.tool-run.json").write_text("not json")
    res = _run(tmp_path)
    assert res.exit_code == 0, res.output
    report = (tmp_path / "out" / "c.md").read_text()
    lines = report.splitlines()
    assert not any(line.startswith(("| evil", "- injected")) for line in lines)
    row = next(line for line in lines if line.startswith("| tool-a"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 14, row  # 13 columns
    assert "- `bad|name - injected.tool-run.json`: not valid JSON" in report
