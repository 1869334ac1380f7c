"""The D1/D3/D4 tables and their Markdown/LaTeX rendering (synthetic tools tool-a, tool-b)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import case, document, metric

from mtap_aggregate.cli import build, main
from mtap_aggregate.tables import Table

KEY = "resnet50.conv1.b1.fp16"


def make(write_doc) -> None:
    a = document("tool-a", [
        case("ring", key="all-reduce.n8.1mib", workload="W6", hardware="HGX-H100x8", metrics=[metric("latency", 50.0, "us")]),
        case("switch", workload="W6", hardware="HGX-H100x8", metrics=[metric("latency", 40.0, "us")]),
        case("other-size", workload="W6", hardware="HGX-H100x8", metrics=[metric("latency", 400.0, "us")]),
        case("conv1", key=KEY, metrics=[metric("latency", 0.09, "ms")]),
        case("x", status="failed"),
    ])
    for c, topo, size in zip(a["cases"][:3], ["ring", "switch", "switch"], [1, 1, 64]):
        c["parameters"] = {"topology": topo, "size_mib": size}
    a["cases"][3]["deterministic"] = True
    a["wall_clock"]["setup_seconds"] = 12.5
    write_doc("a.tool-run.json", a)
    write_doc("b.tool-run.json", document("tool-b", [case("conv1", key=KEY, metrics=[metric("latency", 1.0, "ms")])]))
    write_doc("m.tool-run.json", document("groundtruth", [case("m", key=KEY, metrics=[metric("latency", 0.1, "ms", "measurement", "device")])], backend="measured"))


def test_tables(tmp_path: Path, write_doc) -> None:
    make(write_doc)
    tables: list[Table] = []
    build(tmp_path, claims=[{"tool": "tool-a", "statement": "within 5%"}], tables_out=tables)
    by_name = {t.name: t for t in tables}
    assert sorted(by_name) == ["d1-fidelity", "d3-coverage", "d3-sensitivity", "d4-deployment"]
    d1 = by_name["d1-fidelity"].rows
    assert d1[0][:6] == ["tool-a", "W1", "H100-SXM5-80GB", "device", "1", "10.0%"]
    assert d1[0][8] == "100.0%"  # within ±10 %: APE 10 % counts
    assert d1[0][-1] == "within 5%"
    assert d1[1][:6] == ["tool-b", "W1", "H100-SXM5-80GB", "device", "1", "900.0%"] and d1[1][8] == "0.0%"
    cov = {r[0]: r for r in by_name["d3-coverage"].rows}
    assert cov["tool-a"][1:3] == ["2/2", "5"] and cov["tool-a"][-1] == "20.0%"
    sens = by_name["d3-sensitivity"].rows
    assert sens == [["tool-a", "W6", "size_mib=1", "latency", "topology", "2", "40 us", "50 us", "25.0%"]]
    d4 = {r[0]: r for r in by_name["d4-deployment"].rows}
    assert d4["tool-a"][3] == "12.5" and d4["tool-a"][5:] == ["4/5", "1/1 identical", "—", "—"]
    assert "groundtruth" not in d4  # our measurements are a reference, not a tool under study


def test_latex_is_escaped_booktabs() -> None:
    t = Table("x", "50% of a_b & c", ["a_b", "MAPE"], [["tool_x", "10.0%"]], [])
    tex = t.latex()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"50\% of a\_b \& c" in tex and r"tool\_x & 10.0\% \\" in tex


def test_cli_writes_tables(tmp_path: Path, write_doc) -> None:
    make(write_doc)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(out / "a.json"), "--coverage-md", str(out / "c.md"), "--tables-dir", str(out / "tables"), "--claims", str(tmp_path / "none.json"), "--extensibility", str(tmp_path / "none-ext.json")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "tables").iterdir()) == [
        "d1-fidelity.md", "d1-fidelity.tex", "d3-coverage.md", "d3-coverage.tex",
        "d3-sensitivity.md", "d3-sensitivity.tex", "d4-deployment.md", "d4-deployment.tex",
    ]
    assert "none.json not found" in result.output
    bad = tmp_path / "claims.json"
    bad.write_text('{"schema": "claims", "schema_version": "1.0.0", "claims": [{"tool": "x"}]}')
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(out / "b.json"), "--claims", str(bad)])
    assert result.exit_code == 2
    assert f"Error: {bad}: field claims[0]:" in result.output
    assert not (out / "b.json").exists()


def test_d5_counts_lines_from_the_repository(tmp_path: Path, monkeypatch) -> None:
    import json

    from mtap_aggregate.tables import d5_extensibility

    (tmp_path / "pkg.py").write_text("import os\n\n\n@decorator\ndef add_model(x):\n    # comment\n    y = x\n\n    return y\n\nclass Other:\n    pass\n")
    (tmp_path / "hw.json").write_text(json.dumps({"hardware": [{"id": "a", "peak": {"fp16": 1}}]}))
    (tmp_path / "spec.yaml").write_text("# header\narch:\n  pe: 168\n\n")
    decl = {"schema": "extensibility", "schema_version": "1.0.0", "tools": [{
        "tool": "tool-a", "interface": "Python API",
        "add_workload": [{"what": "model function", "path": "pkg.py", "symbol": "add_model"}],
        "add_hardware": [{"what": "catalog entry", "path": "hw.json", "json_pointer": "/hardware/0"},
                         {"what": "arch spec", "path": "spec.yaml"}, {"what": "profile", "effort": "a profiling run on the GPU"}],
    }]}
    table = d5_extensibility(tmp_path, decl)
    # decorator + def + 2 body lines (comment and blank skipped) = 4; entry = 6 lines pretty-printed; spec = 2
    assert table.rows == [["tool-a", "Python API", "4", "8 + a profiling run on the GPU", "model function (4)", "catalog entry (6); arch spec (2)"]]
    decl["tools"][0]["add_workload"][0]["symbol"] = "missing"
    monkeypatch.chdir(tmp_path)
    ms_path = tmp_path / "ext.json"
    import mtap_schemas as ms
    ms.write(ms_path, decl, "extensibility")
    (tmp_path / "ev").mkdir()
    res = CliRunner().invoke(main, ["run", "--evaluation-dir", "ev", "--extensibility", str(ms_path)])
    assert res.exit_code == 2
    assert "no function or class 'missing'" in res.output


def test_d5_declaration_cannot_point_outside_the_repository(tmp_path: Path) -> None:
    import json

    decl = {"schema": "extensibility", "schema_version": "1.0.0", "tools": [{"tool": "x", "interface": "file",
            "add_workload": [{"what": "escape", "path": "../../../../etc/passwd"}], "add_hardware": []}]}
    path = tmp_path / "ext.json"
    path.write_text(json.dumps(decl))
    ev = tmp_path / "ev"
    ev.mkdir()
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(ev), "--output", str(tmp_path / "o.json"),
                                       "--coverage-md", str(tmp_path / "o.md"), "--tables-dir", str(tmp_path / "t"),
                                       "--extensibility", str(path)])
    assert result.exit_code == 2, result.output
    assert "leaves" in result.output and "passwd" in result.output
    assert not (tmp_path / "t" / "d5-extensibility.md").exists()


def test_d5_new_hardware_from_the_committed_declaration() -> None:
    import mtap_schemas as ms
    from mtap_aggregate.tables import d5_new_hardware

    repo = Path(__file__).resolve().parents[3]
    table = d5_new_hardware(ms.read(repo / "data" / "extensibility" / "extension-points.json", "extensibility"))
    assert table is not None
    rows = {r[0]: r for r in table.rows}
    assert {"analytical", "astra-sim", "neusight", "vidur"} <= set(rows)
    assert rows["astra-sim"][1] == "HGX-H200x8" and rows["astra-sim"][4].startswith("+")
    assert int(rows["vidur"][5]) == 5


TRAINING = Path(__file__).resolve().parents[3] / "data" / "evaluation" / "neusight" / "neusight-training.json"


@pytest.mark.skipif(not TRAINING.is_file(), reason="the committed NeuSight training document is absent")
def test_d4_links_a_tool_to_the_training_runs_whose_weights_it_used(tmp_path: Path, write_doc) -> None:
    import copy
    import json

    real = json.loads(TRAINING.read_text())  # a real training v1 document (neusight-runner train)
    weights = [p["weights"]["sha256"] for p in real["predictors"]]
    art = [{"path": f"trained-weights:w{i}/model.pth", "sha256": w} for i, w in enumerate(weights)]
    c = case("c1", key=KEY, metrics=[metric("latency", 0.09, "ms")])
    c["artifacts"] = art
    write_doc("t.tool-run.json", document("tool-t", [c]))
    write_doc("u.tool-run.json", document("tool-u", [case("c1", key=KEY, metrics=[metric("latency", 0.2, "ms")])]))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.json").write_text(json.dumps(real, indent=2, sort_keys=True))
    second = copy.deepcopy(real)
    second["totals"]["cpu_s"] = 600.0
    second["predictors"][0]["weights"]["sha256"] = "0" * 64  # one predictor came out different
    (tmp_path / "train" / "b.json").write_text(json.dumps(second, indent=2, sort_keys=True))
    (tmp_path / "train" / "c.json").write_text('{"schema": "training", "schema_version": "1.0.0"}')  # invalid: skipped
    skipped: list = []
    tables: list[Table] = []
    build(tmp_path, on_skip=lambda path, reason: skipped.append(path), tables_out=tables)
    d4 = {r[0]: r for r in next(t for t in tables if t.name == "d4-deployment").rows}
    n = len(weights)
    assert d4["tool-t"][7:] == [f"600–{real['totals']['cpu_s']:.0f} CPU-s (cpu), 2 runs", f"{n - 1}/{n} weights identical in 2 full runs"]
    assert d4["tool-u"][7:] == ["—", "—"]
    assert "train/c.json" in skipped
