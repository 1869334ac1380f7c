"""aggregate over small hand-made documents (synthetic tools tool-a/tool-b, not any real tool's output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import case, document, metric

import mtap_schemas as ms
from mtap_aggregate.cli import build, main

REPO = Path(__file__).resolve().parents[3]


def test_long_table_coverage_and_skips(tmp_path: Path, write_doc) -> None:
    write_doc("a/tool-a.tool-run.json", document("tool-a", [case("c1"), case("c2", status="failed"), case("c3", workload="W4", status="unavailable")]))
    write_doc("b/tool-b.tool-run.json", document("tool-b", [case("c1", workload="W10", metrics=[metric("x", 1, "1"), metric("y", 2, "1")])]))
    write_doc("b/broken.tool-run.json", "{")
    bad = document("tool-c", [case("c1")])
    bad["cases"][0]["workload"] = "W99"
    (tmp_path / "c").mkdir()
    (tmp_path / "c/bad.tool-run.json").write_text(json.dumps(bad))
    (tmp_path / "c/notes.json").write_text("ignored: not a tool-run file name")

    doc, markdown = build(tmp_path)
    ms.validate(doc, "aggregate", 2)
    assert [s["path"] for s in doc["sources"]] == ["a/tool-a.tool-run.json", "b/tool-b.tool-run.json"]
    assert [s["path"] for s in doc["skipped"]] == ["b/broken.tool-run.json", "c/bad.tool-run.json"]
    assert "not valid JSON" in doc["skipped"][0]["reason"]
    assert "field cases[0].workload" in doc["skipped"][1]["reason"]
    # 3 cases of tool-a (one metric or one null row each) + 2 metric rows of tool-b's one case.
    assert doc["table"]["columns"][:3] == ["tool", "backend", "source"]
    assert doc["table"]["rows"] == 5
    cov = {(c["tool"], c["workload"]): c for c in doc["coverage"]}
    assert cov[("tool-a", "W1")] == {"tool": "tool-a", "workload": "W1", "ok": 1, "failed": 1, "unsupported": 0, "unavailable": 0}
    assert cov[("tool-b", "W10")]["ok"] == 1  # two metrics, still one case
    assert [c["workload"] for c in doc["coverage"] if c["tool"] == "tool-a"] == ["W1", "W4"]
    assert "| tool-a | ok 1/2 · failed 1 | — | — | unavailable 1 |" in markdown
    assert "67% (2/3)" in markdown
    assert "c/bad.tool-run.json" in markdown


def test_errors_against_measurements_convert_time_units(tmp_path: Path, write_doc) -> None:
    key = "resnet50.conv1.b1.fp16"
    write_doc("p.tool-run.json", document("tool-a", [
        case("hit", key=key, metrics=[metric("latency", 120.0, "us"), metric("flops", 5.0, "FLOP")]),
        case("other-hw", key=key, hardware="A100-SXM4-80GB", metrics=[metric("latency", 1.0)]),
        case("no-key", metrics=[metric("latency", 1.0)]),
    ]))
    write_doc("m.tool-run.json", document("groundtruth", [
        case("m", key=key, metrics=[
            metric("latency", 0.1, "ms", "measurement", "device"),
            metric("latency", 0.15, "ms", "measurement", "eager-end-to-end"),
        ]),
    ], backend="measured"))
    # A third party's measurement (artifact backend) is never used as our ground truth.
    write_doc("x.tool-run.json", document("tool-b", [case("m", key=key, metrics=[metric("latency", 9.0, "ms", "measurement")])], backend="artifact"))

    doc, markdown = build(tmp_path)
    pairs = doc["errors_vs_measured"]
    assert [(p["measured_timing"], round(p["predicted"], 9), p["ape_percent"]) for p in pairs] == [
        ("device", 0.12, pytest.approx(20.0)),
        ("eager-end-to-end", 0.12, pytest.approx(20.0)),
    ]
    assert all(p["tool"] == "tool-a" and p["unit"] == "ms" for p in pairs)
    assert "| tool-a | W1 | H100-SXM5-80GB | layer | device | independent | 1 | 20.0% |" in markdown


def test_output_is_deterministic(tmp_path: Path, write_doc) -> None:
    write_doc("z.tool-run.json", document("tool-z", [case(f"c{i}", workload=f"W{1 + i % 10}") for i in range(30)]))
    write_doc("a.tool-run.json", document("tool-a", [case("c1")]))
    runner = CliRunner()
    outs = []
    for n in range(2):
        out = tmp_path.parent / f"run{n}" / "agg.json"  # same names: the document names its table file
        md = tmp_path.parent / f"run{n}" / "cov.md"
        result = runner.invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(out), "--coverage-md", str(md)])
        assert result.exit_code == 0, result.output
        outs.append((out.read_bytes(), md.read_bytes()))
    assert outs[0] == outs[1]


def test_cli_errors_are_one_line(tmp_path: Path, write_doc) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--evaluation-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "evaluation folder does not exist" in result.output
    bad = write_doc("bad.tool-run.json", '{"schema": "tool-run", "schema_version": "3.0.0"}')
    result = runner.invoke(main, ["check", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {bad}: field schema_version: got '3.0.0', this reader accepts tool-run v2.x only"]
    result = runner.invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--strict", "--output", str(tmp_path / "o.json"), "--coverage-md", str(tmp_path / "o.md")])
    assert result.exit_code == 1
    assert "skipped bad.tool-run.json" in result.output


def test_version_and_help() -> None:
    runner = CliRunner()
    assert "2.0.0" in runner.invoke(main, ["--version"]).output
    assert "coverage matrix" in runner.invoke(main, ["--help"]).output


def test_committed_evaluation_data_aggregates_cleanly() -> None:
    """Every document committed under data/evaluation/ must validate: none may be skipped."""
    evaluation = REPO / "data" / "evaluation"
    if not any(evaluation.rglob("*.tool-run.json")):
        pytest.skip("no committed tool-run documents yet")
    doc, _ = build(evaluation, hardware=ms.read(REPO / "data" / "hardware" / "hardware.json", "hardware"))
    assert doc["skipped"] == []
    ms.validate(doc, "aggregate", 2)


def test_duplicate_case_ids_keep_the_best_status(tmp_path: Path, write_doc) -> None:
    write_doc("t/real.tool-run.json", document("tool-a", [case("c1"), case("c2", status="failed")]))
    write_doc("t/t.unavailable.tool-run.json", document("tool-a", [case("c1", status="unavailable"), case("c2", status="unavailable"), case("c3", status="unavailable")]))
    doc, markdown = build(tmp_path)
    assert [(s["path"], s["cases"], s["superseded"]) for s in doc["sources"]] == [
        ("t/real.tool-run.json", 2, 0),
        ("t/t.unavailable.tool-run.json", 1, 2),
    ]
    assert doc["coverage"] == [{"tool": "tool-a", "workload": "W1", "ok": 1, "failed": 1, "unsupported": 0, "unavailable": 1}]
    assert "2 more superseded" in markdown


def _run(tmp_path: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path), "--output", str(tmp_path / "o.json"),
                                     "--coverage-md", str(tmp_path / "o.md"), "--tables-dir", str(tmp_path / "t"),
                                     "--extensibility", str(tmp_path / "none.json"), *extra])


def test_non_utf8_document_is_skipped_by_name_not_a_crash(tmp_path: Path, write_doc) -> None:
    write_doc("a/tool-a.tool-run.json", document("tool-a", [case("c1")]))
    bad = tmp_path / "b" / "bad.tool-run.json"
    bad.parent.mkdir()
    bad.write_bytes(b'{"schema": "tool-run", "note": "\xff"}')
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "skipped b/bad.tool-run.json: not UTF-8" in result.output
    written = ms.read(tmp_path / "o.json", "aggregate", 2)
    assert [s["path"] for s in written["skipped"]] == ["b/bad.tool-run.json"]
    check = CliRunner().invoke(main, ["check", str(bad)])
    assert check.exit_code == 2 and isinstance(check.exception, SystemExit)
    assert check.output.count("\n") == 1 and "not UTF-8" in check.output


def test_a_copied_document_does_not_double_rows_and_repeated_ids_pair_once(tmp_path: Path, write_doc) -> None:
    measured = document("gt", [case("m1", key="k.b1", metrics=[metric("latency", 2.0, kind="measurement", timing="device")])], backend="measured")
    predicted = document("tool-a", [case("p1", key="k.b1", metrics=[metric("latency", 1.0)]),
                                     case("p1", key="k.b1", metrics=[metric("latency", 1.0)])])
    write_doc("gt.tool-run.json", measured)
    write_doc("a/tool-a.tool-run.json", predicted)
    write_doc("copy/tool-a.tool-run.json", predicted)
    doc, _ = build(tmp_path)
    assert len(doc["errors_vs_measured"]) == 1 and doc["table"]["rows"] == 2
    reasons = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert reasons["copy/tool-a.tool-run.json"] == "identical to a/tool-a.tool-run.json"
    assert "1 repeated case id" in reasons["a/tool-a.tool-run.json"]


def test_measurement_under_another_gpus_hardware_id_is_refused(tmp_path: Path, write_doc) -> None:
    gt = document("groundtruth", [case("m1", hardware="HGX-H100x8", key="all-reduce.n2.1mib",
                                       metrics=[metric("latency", 2.0, kind="measurement", timing="device")])], backend="measured")
    gt["environment"]["gpu"] = {"name": "NVIDIA H200", "count": 2}
    write_doc("gt.tool-run.json", gt)
    write_doc("astra.tool-run.json", document("astra-sim", [case("p1", hardware="HGX-H100x8", key="all-reduce.n2.1mib")]))
    result = _run(tmp_path, "--hardware", str(REPO / "data" / "hardware" / "hardware.json"))
    assert result.exit_code == 0, result.output
    assert "skipped gt.tool-run.json: hardware mislabel" in result.output and "H200" in result.output
    assert ms.read(tmp_path / "o.json", "aggregate", 2)["errors_vs_measured"] == []
    gt["cases"][0]["hardware"] = "HGX-H200x8"  # the right GPU, but a two-GPU run under an eight-GPU node's id
    write_doc("gt.tool-run.json", gt)
    assert _run(tmp_path, "--hardware", str(REPO / "data" / "hardware" / "hardware.json")).exit_code == 0
    assert [s["path"] for s in ms.read(tmp_path / "o.json", "aggregate", 2)["skipped"]] == ["gt.tool-run.json"]
    gt["cases"][0]["hardware"] = "H200-SXM-141GB-x2-nvlink"  # the machine it ran on
    write_doc("gt.tool-run.json", gt)
    assert _run(tmp_path, "--hardware", str(REPO / "data" / "hardware" / "hardware.json")).exit_code == 0
    assert ms.read(tmp_path / "o.json", "aggregate", 2)["skipped"] == []


def test_a_huge_prediction_is_no_crash(tmp_path: Path, write_doc) -> None:
    write_doc("gt.tool-run.json", document("gt", [case("m1", key="k", metrics=[metric("latency", 1.0, "ms", kind="measurement", timing="device")])], backend="measured"))
    write_doc("a.tool-run.json", document("tool-a", [case("p1", key="k", metrics=[metric("latency", 1e308, "s")])]))
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    assert ms.read(tmp_path / "o.json", "aggregate", 2)["errors_vs_measured"] == []
    assert "1 pair(s) dropped: not finite" in result.output


def test_the_long_table_is_a_checked_parquet_file_beside_the_document(tmp_path: Path, write_doc) -> None:
    import hashlib

    import polars as pl

    write_doc("ev/a.tool-run.json", document("tool-a", [case(f"c{i}", metrics=[metric("latency", i + 0.5), metric("x", i, "1")]) for i in range(7)]))
    outs = []
    for n in range(2):
        out = tmp_path / f"o{n}"
        result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path / "ev"), "--output", str(out / "agg.json"),
                                           "--coverage-md", str(out / "c.md"), "--tables-dir", str(out / "t"),
                                           "--extensibility", str(tmp_path / "none.json")])
        assert result.exit_code == 0, result.output
        outs.append(out)
    doc = ms.read(outs[0] / "agg.json", "aggregate", 2)
    parquet = outs[0] / doc["table"]["file"]["path"]
    assert parquet.name == "agg.table.parquet"
    assert hashlib.sha256(parquet.read_bytes()).hexdigest() == doc["table"]["file"]["sha256"]
    frame = pl.read_parquet(parquet)
    assert frame.columns == doc["table"]["columns"] and frame.height == doc["table"]["rows"] == 14
    assert sorted(frame["value"].to_list()) == sorted([i + 0.5 for i in range(7)] + list(range(7)))
    assert parquet.read_bytes() == (outs[1] / "agg.table.parquet").read_bytes()  # deterministic
    assert (outs[0] / "agg.json").read_bytes() == (outs[1] / "agg.json").read_bytes()

def test_published_silicon_measurements_pair_with_derived_latencies(tmp_path: Path, write_doc) -> None:
    chip = document("published", [case("p", hardware="Eyeriss", key="alexnet.layer.conv1.b4.int16",
                                       metrics=[metric("latency", 16.5, "ms", kind="measurement", timing="reported")])], backend="artifact")
    model = document("zigzag", [case("z", hardware="Eyeriss", key="alexnet.layer.conv1.b4.int16",
                                     metrics=[metric("latency", 0.0198, "s", kind="derived", timing="simulated")])])
    other_artifact = document("neusight", [case("n", hardware="Eyeriss", key="alexnet.layer.conv1.b4.int16",
                                                 metrics=[metric("latency", 99.0, "ms", kind="measurement", timing="reported")])], backend="artifact")
    write_doc("published.tool-run.json", chip)
    write_doc("zigzag.tool-run.json", model)
    write_doc("neusight.tool-run.json", other_artifact)
    doc, _ = build(tmp_path)
    pairs = doc["errors_vs_measured"]
    assert [(p["tool"], p["measured"], p["measured_timing"]) for p in pairs] == [("zigzag", 16.5, "reported")]
    assert abs(pairs[0]["ape_percent"] - 20.0) < 1e-9


def test_each_pair_carries_the_measurements_own_spread(tmp_path: Path, write_doc) -> None:
    gt = document("gt", [case("m", key="k", metrics=[metric("latency", 2.0, kind="measurement", timing="device"),
                                                      metric("latency_spread", 0.05, "1", kind="derived", timing="device"),
                                                      metric("latency", 3.0, kind="measurement", timing="eager-end-to-end")])],
                  backend="measured")
    write_doc("gt.tool-run.json", gt)
    write_doc("a.tool-run.json", document("tool-a", [case("p", key="k", metrics=[metric("latency", 1.0)])]))
    doc, _ = build(tmp_path)
    spread = {p["measured_timing"]: p["measured_spread"] for p in doc["errors_vs_measured"]}
    assert spread == {"device": 0.05, "eager-end-to-end": None}
    ms.validate(doc, "aggregate", 2)


def test_the_readme_d1_block_is_generated_from_the_committed_data(tmp_path: Path) -> None:
    from mtap_aggregate.report import README_BEGIN, README_END, readme_summary

    evaluation = REPO / "data" / "evaluation"
    claims = ms.read(REPO / "data" / "claims" / "self-reported.json", "claims", 2)["claims"]
    doc, _ = build(evaluation, claims=claims, hardware=ms.read(REPO / "data" / "hardware" / "hardware.json", "hardware"))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(README_BEGIN):readme.index(README_END) + len(README_END)]
    assert block == readme_summary(doc["d1_rows"], doc["claims_vs_measured"]), "README.md's D1 block is stale: run nox -s aggregate"
    # and the committed aggregate is this data's
    committed = ms.read(evaluation / "mtap-aggregate-results.json", "aggregate", 2)
    assert committed["d1_rows"] == doc["d1_rows"] and committed["claims_vs_measured"] == doc["claims_vs_measured"]


def test_readme_block_without_markers_is_one_line_and_nothing_written(tmp_path: Path, write_doc) -> None:
    write_doc("e/a.tool-run.json", document("tool-a", [case("c")]))
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    result = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path / "e"), "--output", str(tmp_path / "o.json"),
                                       "--readme", str(readme), "--claims", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "no generated D1 block" in result.output
    assert not (tmp_path / "o.json").exists() and readme.read_text() == "# no block here\n"


def test_worker_processes_give_the_same_aggregate(tmp_path: Path, write_doc, monkeypatch) -> None:
    """A large folder is read by worker processes (issue 32's scale path); the aggregate, skipped list
    and long table are those of the one-process read, row for row."""
    from mtap_aggregate import collect as collect_module
    from mtap_schemas import consume

    for t in range(5):
        write_doc(f"t{t}/tool-{t}.tool-run.json", document(f"tool-{t % 3}", [
            case(f"c{i}", key=f"k{i}", status="ok" if (i + t) % 4 else "failed",
                 metrics=[metric("latency", 1.0 + i + t), metric("cycles", 10 * i, "cycles")]) for i in range(20)]))
    write_doc("t0/copy.tool-run.json", (tmp_path / "t0/tool-0.tool-run.json").read_text())
    write_doc("t9/broken.tool-run.json", "{")
    write_doc("z/m.tool-run.json", document("groundtruth", [case(f"m{i}", key=f"k{i}", metrics=[metric("latency", 2.0 + i, kind="measurement", timing="device")])
                                                            for i in range(20)], backend="measured"))
    one = collect_module.collect(tmp_path, jobs=1)
    monkeypatch.setattr(consume, "PARALLEL_MIN_BYTES", 0)
    two = collect_module.collect(tmp_path, jobs=2)
    assert one.rows.equals(two.rows) and one.skipped == two.skipped
    assert [vars(s) for s in one.sources] == [vars(s) for s in two.sources]
    assert [s.path for s in two.skipped] == ["t0/tool-0.tool-run.json", "t9/broken.tool-run.json"]
    assert two.skipped[0].reason == "identical to t0/copy.tool-run.json"
    assert sum(s.superseded for s in two.sources) > 0  # t3 re-runs tool-0's case ids: de-duplicated alike


def test_the_table_file_does_not_depend_on_how_the_frame_is_chunked(tmp_path: Path) -> None:
    """The long table is built one chunk per document (issue 32's scale path); the Parquet file's bytes,
    whose sha256 the document records, are those of the same rows in one chunk."""
    import polars as pl

    from mtap_aggregate.table import ROW_SCHEMA
    from mtap_aggregate.write import table_path, write_aggregate

    n, per_doc = 100_000, 2_000  # polars writes chunks this size as pages of their own (fewer rows: not)
    whole = pl.DataFrame({c: (pl.Series([float(i) for i in range(n)]) if c == "value" else [f"{c}{i % 7}" for i in range(n)])
                          for c in ROW_SCHEMA}, schema=ROW_SCHEMA)
    chunked = pl.concat([whole[i:i + per_doc] for i in range(0, n, per_doc)], rechunk=False)
    assert chunked.n_chunks() == 50 and chunked.equals(whole)
    doc, _ = build(tmp_path / "empty")
    files = []
    for name, frame in (("one", whole), ("many", chunked)):
        doc["table"]["rows"] = frame.height
        files.append(table_path(write_aggregate(tmp_path / name / "agg.json", doc, frame)).read_bytes())
    assert files[0] == files[1]


def test_weights_trained_short_of_the_recipe_are_said_next_to_d1() -> None:
    """A tool scored with weights we trained with fewer epochs than its authors configured, or whose loss
    diverged, gets a D1 note naming the gap and the training document; a tool at the recipe gets none."""
    from mtap_aggregate.collect import Source
    from mtap_aggregate.tables import recipe_gaps

    def predictor(name, sha, used, nan=None):
        return {"name": name, "epochs_used": used, "epochs_configured": 100, "diverged_at_epoch": nan, "weights": {"sha256": sha}}

    trainings = [("cpu.json", {"predictors": [predictor("BMM", "a", 15), predictor("LINEAR", "b", 100, nan=2)]}),
                 ("gpu.json", {"predictors": [predictor("VEC", "c", 100)]})]
    sources = [Source("x", "0", {"name": "short", "backend": "native"}, {}, [{"id": "1", "status": "ok", "trained_weights": ["a", "b"]}]),
               Source("y", "0", {"name": "full", "backend": "native"}, {}, [{"id": "1", "status": "ok", "trained_weights": ["c"]}]),
               Source("z", "0", {"name": "untrained", "backend": "native"}, {}, [{"id": "1", "status": "ok"}])]
    gaps = recipe_gaps(sources, trainings)
    assert gaps == {"short": "epochs used/configured BMM 15/100; loss NaN: LINEAR from epoch 2 (cpu.json)"}
