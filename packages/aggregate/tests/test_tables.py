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


CLAIM = {"id": "tool-a.conv1", "tool": "tool-a", "statement": "within 5%", "metric": "mape", "value": 5.0, "subset": "conv1 on H100",
         "citation": "a paper", "match": {"hardware": ["H100-SXM5-80GB"]}, "nearest": None, "why_none": "not measured"}


def test_tables(tmp_path: Path, write_doc) -> None:
    make(write_doc)
    tables: list[Table] = []
    gone = dict(CLAIM, id="tool-a.a100", match={"hardware": ["A100-SXM4-80GB"]},
                nearest={"hardware": ["H100-SXM5-80GB"], "why": "another GPU"})
    none = dict(CLAIM, id="tool-b.none", tool="tool-b", match={"hardware": ["A100-SXM4-80GB"]})
    doc, _ = build(tmp_path, claims=[CLAIM, gone, none], tables_out=tables)
    by_name = {t.name: t for t in tables}
    assert sorted(by_name) == ["d1-claims", "d1-fidelity", "d1-fidelity-other", "d3-coverage", "d3-sensitivity", "d4-deployment",
                               "w5-cross-tool", "w5-cross-tool-cases"]
    assert by_name["d1-fidelity"].rows == []  # one pair per tool: n = 1 < 5, so no headline row
    other = by_name["d1-fidelity-other"].rows
    # tool, workload, models, hardware, scope, timing, reference, n, MAPE, CI, median, max, within, spread, why
    assert other[0][:9] == ["tool-a", "W1", "resnet50", "H100-SXM5-80GB", "layer", "device", "independent", "1", "10.0%"]
    assert other[0][9] == "—" and other[0][12] == "100.0%"  # no interval from one pair; within ±10 %: APE 10 % counts
    assert other[0][-1] == "n = 1 < 5"
    assert other[1][:9] == ["tool-b", "W1", "resnet50", "H100-SXM5-80GB", "layer", "device", "independent", "1", "900.0%"]
    claims = {c["claim"]: c for c in doc["claims_vs_measured"]}
    assert claims["tool-a.conv1"]["match"] == "matching" and claims["tool-a.conv1"]["ours"] == pytest.approx(10.0)
    assert claims["tool-a.a100"]["match"] == "nearest" and claims["tool-a.a100"]["why"] == "another GPU"
    assert claims["tool-b.none"]["match"] == "none" and claims["tool-b.none"]["ours"] is None and claims["tool-b.none"]["why"] == "not measured"
    assert [r[6] for r in by_name["d1-claims"].rows] == ["10.0%", "10.0%", "no matching measurement here"]
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
        "d1-claims.md", "d1-claims.tex", "d1-fidelity-other.md", "d1-fidelity-other.tex",
        "d1-fidelity.md", "d1-fidelity.tex", "d3-coverage.md", "d3-coverage.tex",
        "d3-sensitivity.md", "d3-sensitivity.tex", "d4-deployment.md", "d4-deployment.tex",
        "w5-cross-tool-cases.md", "w5-cross-tool-cases.tex", "w5-cross-tool.md", "w5-cross-tool.tex",
    ]
    assert "none.json not found" in result.output
    bad = tmp_path / "claims.json"
    bad.write_text('{"schema": "claims", "schema_version": "2.0.0", "claims": [{"tool": "x"}]}')
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(out / "b.json"), "--claims", str(bad)])
    assert result.exit_code == 2
    assert f"Error: {bad}: field claims[0]:" in result.output
    assert not (out / "b.json").exists()
    old = tmp_path / "claims-v1.json"  # a claims v1 file (value_percent, no metric or subset) is refused by name, not misread
    old.write_text('{"schema": "claims", "schema_version": "1.0.0", "claims": []}')
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(out / "b.json"), "--claims", str(old)])
    assert result.exit_code == 2 and str(old) in result.output and "Traceback" not in result.output


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


def _pairs_doc(write_doc, n: int, tool: str = "tool-a", independence=None, ref_independence=None, scale: float = 1.1) -> None:
    """n layer cases of one tool, predicted at ``scale`` × the measurement, and their measurements."""
    keys = [f"resnet50.layer.l{i}.b1.fp16" for i in range(n)]
    cases = [case(f"c{i}", key=k, metrics=[metric("latency", scale * (1 + i))]) for i, k in enumerate(keys)]
    for c in cases:
        if independence:
            c["independence"] = independence
    write_doc(f"{tool}.tool-run.json", document(tool, cases))
    refs = [case(f"m{i}", key=k, metrics=[metric("latency", 1.0 + i, "ms", "measurement", "device")]) for i, k in enumerate(keys)]
    for c in refs:
        if ref_independence:
            c["independence"] = ref_independence
    write_doc(f"gt-{tool}.tool-run.json", document("groundtruth", refs, backend="measured"))


def test_reference_classes_decide_the_headline(tmp_path: Path, write_doc) -> None:
    shared = {"class": "shared-operators", "what": "a replay of tool-a's operators", "tools": ["tool-a"]}
    _pairs_doc(write_doc, 6, ref_independence=shared)
    doc, _ = build(tmp_path)
    (row,) = doc["d1_rows"]
    assert row["reference_class"] == "shared-operators" and not row["headline"]
    assert row["why_not_headline"] == "reference shared-operators: a replay of tool-a's operators"
    assert {p["reference_class"] for p in doc["errors_vs_measured"]} == {"shared-operators"}
    # the note is listed once and each pair names it by index (aggregate 2.3), never repeated per pair
    assert doc["reference_notes"] == ["a replay of tool-a's operators"]
    assert {p["reference_note_index"] for p in doc["errors_vs_measured"]} == {0}
    assert not any("reference_note" in p for p in doc["errors_vs_measured"])


def test_a_calibrated_prediction_is_a_headline_row_that_says_what_it_used(tmp_path: Path, write_doc) -> None:
    _pairs_doc(write_doc, 6, independence={"class": "calibrated-separately", "what": "a profile of this GPU"})
    tables: list[Table] = []
    doc, _ = build(tmp_path, tables_out=tables)
    (row,) = doc["d1_rows"]
    assert row["headline"] and row["reference_class"] == "calibrated-separately" and row["pairs"] == 6
    assert row["mape"] == pytest.approx(10.0) and row["models"] == ["resnet50"] and row["scope"] == "layer"
    lo, hi = row["mape_ci95"]
    assert lo == pytest.approx(10.0) and hi == pytest.approx(10.0)  # every APE is 10 %: a zero-width interval
    headline = {t.name: t for t in tables}["d1-fidelity"]
    assert len(headline.rows) == 1 and any("a profile of this GPU" in n for n in headline.notes)


def test_layers_and_model_totals_are_separate_rows_and_an_alias_is_paired_once(tmp_path: Path, write_doc) -> None:
    keys = ["resnet50.conv1.b1.fp16", "resnet50.layer.conv1.b1.fp16", "resnet50.model.b1.fp16"]
    write_doc("p.tool-run.json", document("tool-a", [case(f"c{i}", key=k, metrics=[metric("latency", 2.0)]) for i, k in enumerate(keys)]))
    write_doc("m.tool-run.json", document("groundtruth", [case(f"m{i}", key=k, metrics=[metric("latency", 1.0, "ms", "measurement", "device")])
                                                          for i, k in enumerate(keys)], backend="measured"))
    doc, _ = build(tmp_path)
    assert sorted(p["key"] for p in doc["errors_vs_measured"]) == ["resnet50.layer.conv1.b1.fp16", "resnet50.model.b1.fp16"]
    assert sorted((r["scope"], r["pairs"]) for r in doc["d1_rows"]) == [("layer", 1), ("model", 1)]


def test_a_serving_runs_percentiles_are_one_pair(tmp_path: Path, write_doc) -> None:
    names = ["ttft_p50", "ttft_p90", "e2e_latency_p50", "makespan"]
    key = "llama2-7b.serving.vllm.qps1.n500.fp16"
    write_doc("p.tool-run.json", document("tool-a", [case("run", key=key, workload="W5", metrics=[metric(n, 1.2 + i, "s") for i, n in enumerate(names)])]))
    write_doc("m.tool-run.json", document("groundtruth", [case("m", key=key, workload="W5", metrics=[
        metric(n, 1.0 + i, "s", "measurement", "device") for i, n in enumerate(names)])], backend="measured"))
    doc, _ = build(tmp_path)
    assert len(doc["errors_vs_measured"]) == 4
    (row,) = doc["d1_rows"]
    assert row["scope"] == "request" and row["pairs"] == 1 and row["metrics"] == 4
    apes = [p["ape_percent"] for p in doc["errors_vs_measured"]]
    assert row["mape"] == pytest.approx(sum(apes) / 4)


def test_intervals_are_seeded_and_cover_the_mape(tmp_path: Path, write_doc) -> None:
    import numpy as np

    from mtap_aggregate.fidelity import interval

    values = np.array([1.0, 5.0, 9.0, 20.0, 3.0, 7.0, 40.0])
    a = interval(values, "mape", 42)
    assert a == interval(values, "mape", 42) and a != interval(values, "mape", 43)
    assert a[0] < values.mean() < a[1]
    assert interval(values, "max-error", 1) is None and interval(values[:1], "mape", 1) is None
    geo = interval(values, "geomean-error", 7)
    assert geo[0] < float(np.exp(np.log(values).mean())) < geo[1]


def test_committed_claims_are_valid_and_distinct() -> None:
    import mtap_schemas as ms

    repo = Path(__file__).resolve().parents[3]
    claims = ms.read(repo / "data" / "claims" / "self-reported.json", "claims", 2)["claims"]
    assert len({c["id"] for c in claims}) == len(claims)
    by_id = {c["id"]: c for c in claims}
    # the figures, in their own metric
    assert [by_id[f"astra-sim.hgx-h100.all-reduce.n{n}"]["value"] for n in (2, 4, 8)] == [20.63, 12.01, 9.69]
    assert by_id["nn-meter.mobile-cpu"]["metric"] == "share-within-10pct"
    assert by_id["timeloop.none-published"]["metric"] == "none" and by_id["timeloop.none-published"]["value"] is None
    assert all(c["nearest"] is None or c["nearest"].get("why") for c in claims)


def test_stale_provenance_is_listed(tmp_path: Path, write_doc) -> None:
    (tmp_path / "inputs").mkdir()
    catalog = tmp_path / "inputs" / "catalog.json"
    catalog.write_text("{}")
    c = case("c", key=KEY)
    c["artifacts"] = [{"path": "inputs/catalog.json", "sha256": "0" * 64}, {"path": "not/here.json", "sha256": "0" * 64}]
    write_doc("e/a.tool-run.json", document("tool-a", [c]))
    doc, markdown = build(tmp_path / "e", root=tmp_path)
    assert doc["sources"][0]["stale_inputs"] == ["inputs/catalog.json"]  # a file that is not here is not judged
    assert "**stale provenance**: inputs/catalog.json" in markdown
    doc, _ = build(tmp_path / "e")  # no repository root: nothing is checked
    assert "stale_inputs" not in doc["sources"][0]


def test_a_tool_scored_short_of_its_recipe_says_so_in_the_row_and_leaves_the_headline(tmp_path: Path, write_doc, monkeypatch) -> None:
    """The gap is data (``recipe`` in the D1 row, aggregate 2.4), not only a note: the row leaves the headline."""
    from mtap_aggregate import cli as cli_module

    _pairs_doc(write_doc, 6, independence={"class": "calibrated-separately", "what": "a profile of this GPU"})
    tool = build(tmp_path)[0]["d1_rows"][0]["tool"]
    monkeypatch.setattr(cli_module, "recipe_gaps", lambda sources, trainings: {tool: "epochs used/configured BMM 15/100 (t.json)"})
    tables: list[Table] = []
    doc, _ = build(tmp_path, tables_out=tables)
    (row,) = doc["d1_rows"]
    assert row["recipe"] == "epochs used/configured BMM 15/100 (t.json)" and not row["headline"]
    assert row["why_not_headline"] == "weights trained here short of the authors' recipe"
    by_name = {t.name: t for t in tables}
    assert by_name["d1-fidelity"].rows == [] and len(by_name["d1-fidelity-other"].rows) == 1
    assert any("SHORT of the authors' recipe — epochs used/configured BMM 15/100" in n for n in by_name["d1-fidelity"].notes)
