"""Figures from small hand-made documents (synthetic tools; not any real tool's output)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import mtap_schemas as ms
from mtap_figures import plots
from mtap_figures.cli import main


def aggregate_doc():
    return {
        "schema": "aggregate", "schema_version": "2.0.0", "sources": [], "skipped": [],
        "table": {"columns": ["tool", "backend", "source", "workload", "hardware", "case", "key", "status", "error_kind", "metric", "value", "unit", "kind", "timing"], "rows": 0},
        "coverage": [
            {"tool": "tool-a", "workload": "W1", "ok": 2, "failed": 1, "unsupported": 0, "unavailable": 0},
            {"tool": "tool-b", "workload": "W6", "ok": 0, "failed": 0, "unsupported": 0, "unavailable": 3},
        ],
        "errors_vs_measured": [
            {"tool": "tool-a", "workload": "W1", "hardware": "H100-SXM5-80GB", "key": "k1", "metric": "latency", "unit": "ms", "predicted": 0.2, "measured": 0.1, "measured_timing": "device", "ape_percent": 100.0},
            {"tool": "tool-a", "workload": "W1", "hardware": "H100-SXM5-80GB", "key": "k2", "metric": "latency", "unit": "ms", "predicted": 5.0, "measured": 4.0, "measured_timing": "device", "ape_percent": 25.0},
        ],
    }


def tool_doc(tool, cases):
    return {"schema": "tool-run", "schema_version": "2.0.0", "runner": {"name": "t", "version": "0"}, "tool": {"name": tool, "version": "1", "backend": "native"},
            "environment": {"python": "3", "platform": "x", "cpu": "y"}, "invocation": {"command": ["t"], "config": None},
            "wall_clock": {"started_at": "2026-11-26T00:00:00Z", "setup_seconds": 0, "run_seconds": 0}, "cases": cases}


def ok(cid, key, params, metrics, workload="W6", hardware="HGX-H100x8"):
    return {"id": cid, "key": key, "workload": workload, "hardware": hardware, "parameters": params, "status": "ok", "error": None, "metrics": metrics, "artifacts": []}


def test_all_figures_render_and_repeat(tmp_path: Path) -> None:
    ev = tmp_path / "evaluation"
    ms.write(ev / "mtap-aggregate-results.json", aggregate_doc(), "aggregate", 2)
    ms.write(ev / "compositional-fidelity.json", {"schema": "compositional", "schema_version": "1.0.0", "sources": [], "compute_to_system": [], "layer_to_model": [
        {"tool": "tool-a", "hardware": "H100-SXM5-80GB", "model": "resnet50", "config": "b1.fp32", "layers": 3, "layers_measured": 3, "sum_layers_predicted_ms": 1.0, "model_predicted_ms": None,
         "measured_model_ms": 2.0, "sum_layers_measured_ms": 1.5, "measured_timing": "device", "mean_layer_ape_percent": 20.0, "composed_ape_percent": 50.0, "model_ape_percent": None, "amplification": 2.5}]}, "compositional")
    astra = [ok(f"{c}{n}", f"{c}.n{n}.1mib", {"binary": "congestion-aware"}, [{"name": "latency", "value": 1000.0 * n, "unit": "ns", "kind": "prediction"}]) for c in ("all-reduce", "all-gather") for n in (2, 4, 8)]
    ms.write(ev / "astra-sim/astra-sim.tool-run.json", tool_doc("astra-sim", astra), "tool-run", 2)
    vidur = [ok(f"{s}{q}", None, {"scheduler": s, "qps": q}, [{"name": f"e2e_latency_p{p}", "value": p * q / 10, "unit": "s", "kind": "prediction"} for p in (50, 90, 99)], workload="W5", hardware="H100-SXM5-80GB")
             for s in ("vllm", "orca") for q in (1.0, 2.0)]
    ms.write(ev / "vidur/vidur.tool-run.json", tool_doc("vidur", vidur), "tool-run", 2)
    cdf = [{"name": f"{stem}_cdf_p{p:03d}", "value": (p + 1) * f / 1000, "unit": "s", "kind": kind, "timing": timing}
           for stem in ("ttft", "e2e_latency") for p in range(0, 101, 5)
           for kind, timing, f in (("measurement", "device", 0.9), ("prediction", "simulated", 1.0))]
    replayed = [ok(f"W5/H200-SXM-141GB/{s}/{rate}", None, {"scheduler": s}, cdf, workload="W5", hardware="H200-SXM-141GB")
                for s in ("vllm", "orca") for rate in ("qps=8", "static", "qps=1")]
    doc = tool_doc("vidur-replay", replayed) | {"tool": {"name": "vidur-replay", "version": "1", "backend": "replayed"}, "schema_version": "2.1.0"}
    ms.write(ev / "vidur/vidur-replay.tool-run.json", doc, "tool-run", 2)

    outs = []
    for n in range(2):
        out = tmp_path / f"fig{n}"
        res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(ev), "--output", str(out)])
        assert res.exit_code == 0, res.output
        assert "6 of 6 figures" in res.output
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(outs[0]) == sorted([f"{n}.{e}" for n in ("coverage-heatmap", "predicted-vs-measured", "astra-collective-scaling", "vidur-latency-cdf", "vidur-replay-cdf", "error-amplification") for e in ("png", "pdf")] + ["sources.md"])
    assert all(outs[0][k][:4] in (b"\x89PNG", b"%PDF") for k in outs[0] if k != "sources.md")
    assert outs[0] == outs[1], "figures must be byte-identical for the same data"


def test_missing_data_is_skipped_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(tmp_path / "ev"), "--output", str(tmp_path / "f")])
    assert res.exit_code == 0
    assert "skipped coverage-heatmap: run `nox -s aggregate` first" in res.output
    assert "0 of 6 figures" in res.output
    assert plots.predicted_vs_measured(aggregate_doc(), timing="eager-end-to-end") is None


def test_bad_aggregate_is_one_line(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "mtap-aggregate-results.json").write_text('{"schema": "aggregate", "schema_version": "9.0.0"}')
    res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(ev), "--output", str(tmp_path / "f")])
    assert res.exit_code == 2
    assert "this reader accepts aggregate v2.x only" in res.output


def test_vidur_cdf_uses_request_metrics_only_when_the_hash_matches(tmp_path: Path) -> None:
    csv = tmp_path / "out" / "request_metrics.csv"
    csv.parent.mkdir()
    csv.write_text("Request Id,request_e2e_time\n" + "".join(f"{i},{0.05 + i / 1000}\n" for i in range(100)))
    good = {"path": "out/request_metrics.csv", "sha256": ms.sha256_file(csv)}
    case = ok("v", None, {"scheduler": "vllm", "qps": 1.0}, [{"name": "e2e_latency_p50", "value": 0.1, "unit": "s", "kind": "prediction"}], workload="W5", hardware="H100-SXM5-80GB")
    doc_path = tmp_path / "vidur.tool-run.json"
    fig = plots.vidur_latency([(doc_path, tool_doc("vidur", [dict(case, artifacts=[good])]))])
    assert fig.axes[0].get_ylabel() == "fraction of requests"
    assert len(fig.axes[0].lines[0].get_xdata()) == 100  # every request
    bad = dict(good, sha256="0" * 64)
    fig = plots.vidur_latency([(doc_path, tool_doc("vidur", [dict(case, artifacts=[bad])]))])
    assert fig.axes[0].get_ylabel() == "fraction of requests (at reported percentiles)"


def test_artifact_paths_outside_the_evaluation_folder_are_not_read(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    outside = tmp_path / "secret" / "request_metrics.csv"
    outside.parent.mkdir()
    outside.write_text("Request Id,request_e2e_time\n" + "".join(f"{i},{0.05 + i / 1000}\n" for i in range(100)))
    case = ok("v", None, {"scheduler": "vllm", "qps": 1.0}, [{"name": "e2e_latency_p50", "value": 0.1, "unit": "s", "kind": "prediction"}],
              workload="W5", hardware="H100-SXM5-80GB")
    for path in ("../secret/request_metrics.csv", str(outside)):
        art = {"path": path, "sha256": ms.sha256_file(outside)}
        fig = plots.vidur_latency([(ev / "vidur.tool-run.json", tool_doc("vidur", [dict(case, artifacts=[art])]))], roots=[ev], confine=ev)
        assert fig.axes[0].get_ylabel() == "fraction of requests (at reported percentiles)", path  # the outside file was not used


def test_decompression_is_bounded(tmp_path: Path, monkeypatch) -> None:
    import lzma

    csv = "Request Id,request_e2e_time\n" + "".join(f"{i},{0.05 + i / 1000}\n" for i in range(20000))
    xz = tmp_path / "request_metrics.csv.xz"
    xz.write_bytes(lzma.compress(csv.encode()))
    case = ok("v", None, {"scheduler": "vllm", "qps": 1.0}, [{"name": "e2e_latency_p50", "value": 0.1, "unit": "s", "kind": "prediction"}],
              workload="W5", hardware="H100-SXM5-80GB")
    art = {"path": "request_metrics.csv.xz", "sha256": ms.sha256_file(xz)}
    doc = tool_doc("vidur", [dict(case, artifacts=[art])])
    assert len(plots.vidur_latency([(tmp_path / "v.tool-run.json", doc)], roots=[tmp_path]).axes[0].lines[0].get_xdata()) == 20000
    monkeypatch.setattr(plots, "MAX_ARTIFACT_BYTES", 1000)
    fig = plots.vidur_latency([(tmp_path / "v.tool-run.json", doc)], roots=[tmp_path])
    assert fig.axes[0].get_ylabel() == "fraction of requests (at reported percentiles)"


def test_sources_lists_read_and_skipped_documents(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    ms.write(ev / "a.tool-run.json", tool_doc("vidur", []), "tool-run", 2)
    (ev / "bad.tool-run.json").write_bytes(b'{"x": "\xff"}')
    res = CliRunner().invoke(main, ["run", "--evaluation-dir", str(ev), "--output", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "f" / "sources.md").read_text()
    assert "`a.tool-run.json`" in text and "`bad.tool-run.json`: not UTF-8" in text


def test_predicted_vs_measured_names_each_points_gpu() -> None:
    pairs = [{"tool": "astra-sim", "workload": "W6", "hardware": hw, "key": "k", "metric": "latency", "unit": "ms",
              "predicted": 1.0, "measured": 2.0, "measured_timing": "device", "ape_percent": 50.0}
             for hw in ("HGX-H100x8", "HGX-H200x8")]
    fig = plots.predicted_vs_measured({"errors_vs_measured": pairs})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("HGX-H200x8" in t for t in labels) and any("HGX-H100x8" in t for t in labels)
    assert "H100" not in fig.axes[0].get_xlabel()


def test_replay_cdf_takes_one_qps_and_the_static_workload() -> None:
    cdf = [{"name": f"ttft_cdf_p{p:03d}", "value": 0.01, "unit": "s", "kind": "measurement", "timing": "device"} for p in range(0, 101, 5)]
    cases = [ok(f"W5/H200-SXM-141GB/vllm/{rate}", None, {"scheduler": "vllm"}, cdf, workload="W5", hardware="H200-SXM-141GB")
             for rate in ("qps=1", "qps=8", "static", "qps=1/len=2048-4096")]
    fig = plots.vidur_replay_cdf([tool_doc("vidur-replay", cases)])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["vllm, qps 8", "vllm, static (t=0)"]
    assert plots.vidur_replay_cdf([tool_doc("vidur-replay", cases[:1])]) is None
