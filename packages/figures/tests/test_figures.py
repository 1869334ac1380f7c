"""Figures from small hand-made documents (synthetic tools, see conftest.py; not any real tool's output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CLAIMS, aggregate_doc, astra_cases, claim, compositional_doc, ok, pair, replay_cases, tool_doc, vidur_cases
from matplotlib.collections import PathCollection

import mtap_schemas as ms
from mtap_figures import plots
from mtap_figures.cli import main

ALL = ("claimed-vs-measured", "predicted-vs-measured", "coverage-heatmap", "error-amplification", "astra-collective-scaling",
       "vidur-latency-cdf", "vidur-replay-cdf")


def small_aggregate(**kw) -> dict:
    """An aggregate whose figures render fast: two tools' coverage, nothing else to draw."""
    doc = aggregate_doc(**kw)
    doc["coverage"] = doc["coverage"][:4]
    doc.pop("claims_vs_measured", None)
    doc["errors_vs_measured"] = []
    return doc


def evaluation(tmp_path: Path, aggregate: dict | None = None, only_aggregate: bool = False) -> Path:
    ev = tmp_path / "evaluation"
    ms.write(ev / "mtap-aggregate-results.json", aggregate or aggregate_doc(), "aggregate", 2)
    if only_aggregate:
        ev.joinpath("vidur").mkdir(parents=True, exist_ok=True)
        return ev
    ms.write(ev / "compositional-fidelity.json", compositional_doc(), "compositional")
    ms.write(ev / "astra-sim/astra-sim.tool-run.json", tool_doc("astra-sim", astra_cases()), "tool-run", 2)
    ms.write(ev / "vidur/vidur.tool-run.json", tool_doc("vidur", vidur_cases()), "tool-run", 2)
    doc = tool_doc("vidur-replay", replay_cases(), backend="replayed") | {"schema_version": "2.1.0"}
    ms.write(ev / "vidur/vidur-replay.tool-run.json", doc, "tool-run", 2)
    gt = [ok("g1", "k", {}, [{"name": "latency", "value": 1.0, "unit": "ms", "kind": "measurement", "timing": "device"}], workload="W1", hardware="H100-SXM5-80GB")]
    ms.write(ev / "groundtruth/gt.tool-run.json", tool_doc("groundtruth", gt, backend="measured"), "tool-run", 2)
    pub = [ok("p1", "k", {}, [{"name": "latency", "value": 1.0, "unit": "ms", "kind": "measurement", "timing": "reported"}], workload="W1", hardware="Eyeriss")]
    ms.write(ev / "published/pub.tool-run.json", tool_doc("published", pub, backend="artifact"), "tool-run", 2)
    return ev


def run_cli(ev: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--evaluation-dir", str(ev), "--output", str(out), "--hardware", str(ev / "no-catalog.json"), *extra])


def test_every_figure_renders_repeats_byte_for_byte_and_is_shown_in_the_readme(tmp_path: Path) -> None:
    ev = evaluation(tmp_path)
    outs = []
    for n in range(2):
        out = tmp_path / f"fig{n}"
        res = run_cli(ev, out)
        assert res.exit_code == 0, res.output
        assert "7 of 7 figures" in res.output
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(outs[0]) == sorted([f"{n}.{e}" for n in ALL for e in ("png", "pdf")] + ["sources.md", "README.md"])
    assert all(outs[0][k][:4] in (b"\x89PNG", b"%PDF") for k in outs[0] if not k.endswith(".md"))
    assert outs[0] == outs[1], "figures must be byte-identical for the same data"
    for blob in (v for k, v in outs[0].items() if k.endswith(".pdf")):
        assert b"CreationDate" not in blob and b"/Producer" not in blob and b"matplotlib" not in blob.lower()
    assert all(b"Software" not in v and b"matplotlib" not in v for k, v in outs[0].items() if k.endswith(".png"))
    readme = outs[0]["README.md"].decode()
    for name in ALL:
        assert f"![{name}]({name}.png)" in readme and plots.CAPTIONS[name] in readme
    sources = outs[0]["sources.md"].decode()
    line = next(x for x in sources.splitlines() if x.startswith("- `coverage-heatmap`"))
    assert "mtap-aggregate-results.json" in line and "groundtruth/gt.tool-run.json" in line and "published/pub.tool-run.json" in line
    line = next(x for x in sources.splitlines() if x.startswith("- `astra-collective-scaling`"))
    assert "astra-sim/astra-sim.tool-run.json" in line and "aggregate" not in line


RENDER_SCRIPT = """
import json, sys
from pathlib import Path
from mtap_figures import plots, style
docs = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[2])
figs = {
    "claimed": plots.claimed_vs_measured(docs["aggregate"]), "pvm": plots.predicted_vs_measured(docs["aggregate"]),
    "coverage": plots.coverage_heatmap(docs["aggregate"], references=set(docs["references"])),
}
for name, fig in figs.items():
    style.write(out, name, style.render(fig))
"""


def test_a_fresh_process_with_another_hash_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    """Set/dict order, font caches and the PDF font subset must not depend on the process: two
    interpreters with different PYTHONHASHSEED render the same files."""
    inputs = tmp_path / "docs.json"
    inputs.write_text(json.dumps({"aggregate": aggregate_doc(), "references": ["groundtruth", "onnxruntime"]}))
    blobs = []
    for seed in ("1", "4242"):
        out = tmp_path / f"out{seed}"
        env = dict(os.environ, PYTHONHASHSEED=seed, MPLCONFIGDIR=str(tmp_path / f"mpl{seed}"))
        subprocess.run([sys.executable, "-c", RENDER_SCRIPT, str(inputs), str(out)], check=True, env=env, timeout=300)
        blobs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert len(blobs[0]) == 6
    assert blobs[0] == blobs[1]


def test_pins_are_exact() -> None:
    """An unpinned matplotlib/fonttools/pillow renders other bytes on a fresh environment."""
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    from importlib.metadata import version
    for dist in ("matplotlib", "fonttools", "pillow"):
        assert f'"{dist}=={version(dist)}"' in text, dist


def test_one_column_option_renders_every_figure_35_inches_wide(tmp_path: Path) -> None:
    from PIL import Image
    ev = evaluation(tmp_path)
    out = tmp_path / "f"
    assert run_cli(ev, out, "--columns", "1").exit_code == 0
    for name in ALL:
        with Image.open(out / f"{name}.png") as im:
            assert im.size[0] == 3.5 * 300, name
    assert "(3.5 in)" in (out / "README.md").read_text()


def test_missing_data_is_skipped_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    res = run_cli(tmp_path / "ev", tmp_path / "f")
    assert res.exit_code == 0
    assert "skipped coverage-heatmap: run `nox -s aggregate` first" in res.output
    assert "0 of 7 figures" in res.output
    assert "## Not drawn" in (tmp_path / "f" / "README.md").read_text()


def test_an_aggregate_older_than_21_skips_the_claims_and_headline_figures(tmp_path: Path) -> None:
    old = aggregate_doc(version="2.0.0", claims=False, classes=False)
    old["coverage"] = old["coverage"][:4]
    ev = evaluation(tmp_path, old, only_aggregate=True)
    res = run_cli(ev, tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert "skipped claimed-vs-measured: needs the aggregate's claims_vs_measured" in res.output
    assert "skipped predicted-vs-measured: needs headline pairs" in res.output
    assert "1 of 7 figures" in res.output
    assert (tmp_path / "f" / "coverage-heatmap.png").is_file() and not (tmp_path / "f" / "claimed-vs-measured.png").exists()


def test_bad_aggregate_is_one_line(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "mtap-aggregate-results.json").write_text('{"schema": "aggregate", "schema_version": "9.0.0"}')
    res = run_cli(ev, tmp_path / "f")
    assert res.exit_code == 2
    assert "this reader accepts aggregate v2.x only" in res.output


# -- bad input: one line, exit 2, nothing written ------------------------------------------------------

def _vidur_with_csv(tmp_path: Path, content: bytes, params=None) -> Path:
    ev = evaluation(tmp_path, small_aggregate(), only_aggregate=True)  # coverage renders before the VIDUR figure fails
    csv = ev / "vidur" / "out" / "request_metrics.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_bytes(content)
    case = ok("v", None, params or {"scheduler": "vllm", "qps": 1.0}, [{"name": "e2e_latency_p50", "value": 0.1, "unit": "s", "kind": "prediction"}],
              workload="W5", hardware="H100-SXM5-80GB") | {"artifacts": [{"path": "out/request_metrics.csv", "sha256": ms.sha256_file(csv)}]}
    ms.write(ev / "vidur/vidur.tool-run.json", tool_doc("vidur", [case]), "tool-run", 2)
    return ev


@pytest.mark.parametrize(("content", "params", "expect"), [
    (b"Request Id,latency\n0,0.1\n", None, "request_metrics CSV has no column request_e2e_time (columns: Request Id, latency)"),
    (b"Request Id,request_e2e_time\n0,\xff\xfe\n", None, "request_metrics CSV is not UTF-8 text"),
    (b"Request Id,request_e2e_time\n0,fast\n", None, "column request_e2e_time: expected numbers (seconds)"),
    (b"Request Id,request_e2e_time\n0,-1\n", None, "expected non-negative numbers"),
    (b"Request Id,request_e2e_time\n0,0.1\n", {"scheduler": "vllm", "qps": "fast"}, "parameter qps: expected a number, got 'fast'"),
])
def test_bad_vidur_input_is_one_line_and_writes_nothing(tmp_path: Path, content: bytes, params, expect: str) -> None:
    ev = _vidur_with_csv(tmp_path, content, params)
    out = tmp_path / "f"
    res = run_cli(ev, out)
    assert res.exit_code == 2, res.output
    errors = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and expect in errors[0] and errors[0].startswith("Error: vidur-latency-cdf: "), res.output
    assert "Traceback" not in res.output
    assert not out.exists(), "no figure may be written when one of them fails"


def test_a_failing_figure_leaves_earlier_figures_on_disk_untouched(tmp_path: Path) -> None:
    good = evaluation(tmp_path / "good", small_aggregate(), only_aggregate=True)
    out = tmp_path / "f"
    assert run_cli(good, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = _vidur_with_csv(tmp_path / "bad", b"x,y\n1,2\n")
    assert run_cli(bad, out).exit_code == 2
    assert "coverage-heatmap.png" in before
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(("field", "value", "expect"), [
    ("claimed", "about 9", "field claimed: expected a number, got 'about 9'"),
    ("ours_ci95", [1.0], "field ours_ci95: expected [lo, hi] or null"),
    ("ours", float("nan"), "field ours: expected a number"),
])
def test_bad_claim_values_are_one_line(field: str, value, expect: str) -> None:
    agg = aggregate_doc()
    agg["claims_vs_measured"] = [dict(CLAIMS[0], **{field: value})]
    with pytest.raises(plots.DataError, match=r"claims_vs_measured\[0\] \(tool-sim, ring-allreduce-2gpu\): " + expect.replace("[", r"\[").replace("]", r"\]")):
        plots.claimed_vs_measured(agg)


def test_non_numeric_pair_values_are_one_line() -> None:
    agg = aggregate_doc()
    agg["errors_vs_measured"][3]["predicted"] = "0.2"
    with pytest.raises(plots.DataError, match=r"errors_vs_measured\[\d+\] .*field predicted: expected a number, got '0.2'"):
        plots.predicted_vs_measured(agg)


# -- what each figure shows -----------------------------------------------------------------------------

def test_claims_show_matching_nearest_and_missing_measurements_apart() -> None:
    fig = plots.claimed_vs_measured(aggregate_doc(), width=7.0)
    error_ax, share_ax = fig.axes[:2]
    labels = [t.get_text() for t in error_ax.get_yticklabels()]
    by_claim = {lab.split("\n")[0]: lab for lab in labels}
    assert by_claim["tool-sim: ring-allreduce-4gpu"].endswith("geomean · no matching measurement")
    assert by_claim["tool-sim: ring-allreduce-2gpu"].endswith("geomean · nearest subset, n=12")
    assert by_claim["tool-mapper: silicon-validation"].endswith("no published figure · n=5")
    assert by_claim["tool-serving: replayed-batches"].endswith("vs shared-operators: not shown")  # not a headline reference
    assert error_ax.get_xscale() == "log" and share_ax.get_xlim()[1] > 100
    # matching: filled blue dot with a solid bar; nearest: hollow orange dot with a dashed bar
    dots = {tuple(round(v, 3) for v in line.get_xydata()[0]): line for line in error_ax.lines if line.get_marker() == "o"}
    matching = dots[(16.0, labels.index(by_claim["tool-gpu: h100-inference-12-configs"]))]
    nearest = dots[(51.0, labels.index(by_claim["tool-sim: ring-allreduce-2gpu"]))]
    assert matching.get_markerfacecolor() != "white" and nearest.get_markerfacecolor() == "white"
    assert matching.get_color() != nearest.get_color()
    segments = [c for c in error_ax.collections if hasattr(c, "get_segments")]
    bars = {round(float(seg[0][1]), 3): (seg[0][0], seg[1][0], c.get_linestyle()) for c in segments for seg in c.get_segments()}
    lo, hi, style = bars[labels.index(by_claim["tool-sim: ring-allreduce-2gpu"])]
    assert (lo, hi) == (38.0, 64.0) and style[0][1] is not None  # the 95 % interval, dashed
    lo, hi, style = bars[labels.index(by_claim["tool-gpu: h100-inference-12-configs"])]
    assert (lo, hi) == (12.1, 20.4) and style[0][1] is None  # solid
    # the claimed figure is drawn where it is, even with no measurement
    diamonds = {round(line.get_xydata()[0][0], 2) for line in error_ax.lines if line.get_marker() == "D"}
    assert {20.63, 12.01, 9.69, 2.3, 6.1, 9.0} <= diamonds
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["tool's published claim", "ours, matching subset (95 % CI)", "ours, nearest subset only (95 % CI)"]
    share = [t.get_text() for t in share_ax.get_yticklabels()]
    assert any(s.endswith("accuracy · no matching measurement") for s in share)


def test_claims_with_only_errors_have_one_panel_and_none_is_skipped() -> None:
    agg = aggregate_doc()
    agg["claims_vs_measured"] = [claim("t", "c", "mape", 9.0, "matching", 7.0, [6.0, 8.0], 10)]
    fig = plots.claimed_vs_measured(agg)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    assert plots.claimed_vs_measured(aggregate_doc(claims=False)) is None
    assert plots.claimed_vs_measured({"claims_vs_measured": []}) is None


def test_predicted_vs_measured_holds_only_headline_pairs_one_panel_per_tool() -> None:
    pairs = [pair("tool-a", "H100-SXM5-80GB", f"k{i}", 1.0 + i, 2.0 + i, cls=cls) for i, cls in enumerate(
             ("independent", "calibrated-separately", "shared-operators", "tool-labels"))]
    pairs += [pair("tool-b", "HGX-H200x8", "k", 1.0, 2.0, timing="eager-end-to-end", cls="published-silicon"),
              pair("tool-c", "H200-SXM-141GB", "k", 1.0, 2.0, cls="shared-operators")]
    fig = plots.predicted_vs_measured({"errors_vs_measured": pairs})
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_xscale() == "log"]
    assert [ax.get_title().split("\n")[0] for ax in data_axes] == ["tool-a", "tool-b"]  # tool-c: no headline pair
    assert " ".join(data_axes[0].get_title().split("\n")[1:]) == "calibrated-separately + independent n=2"
    assert data_axes[1].get_title().split("\n")[1] == "published-silicon"
    assert sum(len(c.get_offsets()) for c in data_axes[0].collections if isinstance(c, PathCollection)) == 2
    texts = [t.get_text() for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()] for t in leg.get_texts()]
    assert {"H100-SXM5-80GB", "HGX-H200x8", "device", "eager-end-to-end"} <= set(texts)
    markers = {c.get_paths()[0].vertices.shape for ax in data_axes for c in ax.collections if isinstance(c, PathCollection)}
    assert len(markers) == 2  # device and eager points take different markers
    assert "H100" not in data_axes[0].get_xlabel()
    # without reference classes (an aggregate before 2.1) the figure is not drawn
    assert plots.predicted_vs_measured({"errors_vs_measured": [{k: v for k, v in p.items() if k != "reference_class"} for p in pairs]}) is None


def test_coverage_separates_references_taken_from_the_documents() -> None:
    docs = {
        "groundtruth": [tool_doc("groundtruth", [], backend="measured")],
        "vidur-replay": [tool_doc("vidur-replay", [ok("r", "k", {}, [{"name": "x", "value": 1.0, "unit": "ms", "kind": "prediction"}])], backend="replayed")],
        "published": [tool_doc("published", [ok("p", "k", {}, [{"name": "x", "value": 1.0, "unit": "ms", "kind": "measurement"}])], backend="artifact")],
        # an artifact holding both labels and predictions is a tool, not a reference
        "neusight": [tool_doc("neusight", [ok("n", "k", {}, [{"name": "x", "value": 1.0, "unit": "ms", "kind": k} for k in ("measurement", "prediction")])], backend="artifact")],
        "tool-empty": [tool_doc("tool-empty", [])],
    }
    refs = plots.references_from_docs(docs)
    assert refs == {"groundtruth", "vidur-replay", "published"}
    agg = {"coverage": [{"tool": t, "workload": "W1", "ok": 1, "failed": 0, "unsupported": 0, "unavailable": 0} for t in docs]}
    fig = plots.coverage_heatmap(agg, references=refs)
    tools_ax, refs_ax = (ax for ax in fig.axes if ax.images)
    assert tools_ax.get_title(loc="left") == "tools (predictions)" and refs_ax.get_title(loc="left") == "references (measurements)"
    assert [t.get_text() for t in tools_ax.get_yticklabels()] == ["neusight", "tool-empty"]
    assert [t.get_text() for t in refs_ax.get_yticklabels()] == ["groundtruth", "published", "vidur-replay"]
    # without the documents the aggregate's sources say which backends are references
    agg["sources"] = [{"path": "x", "sha256": "0" * 64, "tool": t, "backend": b, "cases": 1, "superseded": 0}
                      for t, b in (("groundtruth", "measured"), ("neusight", "artifact"))]
    fig = plots.coverage_heatmap(agg)
    refs_ax = [ax for ax in fig.axes if ax.images][1]
    assert [t.get_text() for t in refs_ax.get_yticklabels()] == ["groundtruth"]


def test_coverage_accepts_a_workload_outside_w1_w10() -> None:
    agg = {"coverage": [{"tool": "t", "workload": "W11", "ok": 1, "failed": 0, "unsupported": 0, "unavailable": 0}]}
    ax = plots.coverage_heatmap(agg, references=set()).axes[0]
    assert ax.get_xticklabels()[-1].get_text() == "W11"


def test_amplification_marks_a_missing_model_prediction_instead_of_a_zero_bar() -> None:
    fig = plots.amplification_bars(compositional_doc(), width=7.0)
    ax = fig.axes[0]
    assert "n/a" in [t.get_text() for t in ax.texts]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "resnet50 b1.fp16 · H100" and labels[1] == "resnet50 b1.fp32 · H200"  # one tool on two GPUs: named per row
    assert fig.axes[1].get_title() == "analytical-roofline-floor on H200-SXM-141GB"  # one GPU: named in the title
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()][-1] == "vgg16 b8.fp32"
    assert len([a for a in fig.axes if a.get_visible()]) == 2  # one panel per tool


def test_collective_lines_are_per_platform_not_mixed_across_hardware() -> None:
    fig = plots.collective_scaling([tool_doc("astra-sim", astra_cases())])
    ax = fig.axes[0]
    # 4 collectives x 2 platforms (HGX-H100x8 + x16 is one platform at two sizes)
    assert len(ax.lines) == 8 and all(list(line.get_xdata()) == [2, 4, 8, 16] for line in ax.lines)
    assert "HGX-H100x16, HGX-H100x8" in [t.get_text() for t in fig.legends[0].get_texts()]


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
    assert fig.axes[0].get_ylabel() == "fraction of requests\n(at reported percentiles)"


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
        assert fig.axes[0].get_ylabel() == "fraction of requests\n(at reported percentiles)", path  # the outside file was not used


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
    assert fig.axes[0].get_ylabel() == "fraction of requests\n(at reported percentiles)"


def test_sources_lists_read_and_skipped_documents(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    ms.write(ev / "a.tool-run.json", tool_doc("vidur", []), "tool-run", 2)
    (ev / "bad.tool-run.json").write_bytes(b'{"x": "\xff"}')
    res = run_cli(ev, tmp_path / "f")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "f" / "sources.md").read_text()
    assert "`a.tool-run.json`" in text and "`bad.tool-run.json`: not UTF-8" in text


def test_replay_cdf_takes_one_qps_and_the_static_workload() -> None:
    cdf = [{"name": f"ttft_cdf_p{p:03d}", "value": 0.01, "unit": "s", "kind": "measurement", "timing": "device"} for p in range(0, 101, 5)]
    cases = [ok(f"W5/H200-SXM-141GB/vllm/{rate}", None, {"scheduler": "vllm"}, cdf, workload="W5", hardware="H200-SXM-141GB")
             for rate in ("qps=1", "qps=8", "static", "qps=1/len=2048-4096")]
    fig = plots.vidur_replay_cdf([tool_doc("vidur-replay", cases)])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["vllm, qps 8", "vllm, static (t=0)"]
    assert plots.vidur_replay_cdf([tool_doc("vidur-replay", cases[:1])]) is None
