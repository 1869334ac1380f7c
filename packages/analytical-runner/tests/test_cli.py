"""The runner contract: cases, run, the document, bad input, the keep policy, --jobs and --shard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_analytical_runner import models
from mtap_analytical_runner.cases import plan
from mtap_analytical_runner.cli import main
from mtap_schemas.kinds import Exit

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "data" / "evaluation" / "analytical" / "analytical.tool-run.json"
SMALL = {"include": ["resnet50.conv1.b1.*", "resnet50.layer.fc.b32.fp16", "resnet50.model.b1.fp16"], "hardware": ["H100-SXM5-80GB"]}
SMALL_KEYS = ["resnet50.conv1.b1.fp32", "resnet50.conv1.b1.tf32", "resnet50.conv1.b1.fp16",
              "resnet50.model.b1.fp16", "resnet50.layer.fc.b32.fp16"]


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("Error")]


@pytest.fixture
def small_cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps(SMALL))
    return cfg


@pytest.fixture
def committed_copy(tmp_path: Path) -> Path:
    """A folder holding a copy of the committed document (766 ok cases), as --output."""
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED} not present")
    out = tmp_path / "committed"
    out.mkdir()
    shutil.copyfile(COMMITTED, out / "analytical.tool-run.json")
    return out


def test_plan_covers_the_groundtruth_grid():
    keys = {(c.hardware, c.key) for c in plan()}
    assert len(keys) == len(plan())  # ids are unique
    for hw in ("A100-SXM4-80GB", "H100-SXM5-80GB", "H200-SXM-141GB"):
        for key in (
            "resnet50.conv1.b1.fp16",
            "resnet50.conv1.b32.fp32",
            "resnet50.layer.layer1-0-conv1.b1.fp32",
            "resnet50.layer.layer4-2-conv3.b32.fp16",
            "resnet50.model.b32.fp32",
            "resnet50.model.b32.tf32",
            "bert-base.model.b8.s128.fp16",
            "gpt2.model.b1.s512.fp16",
            "llama2-7b.prefill.b1.t512.fp16",
            "llama2-7b.prefill.b1.t2048.fp16",
            "llama2-7b.decode.b8.kv1024.fp16",
            "llama2-7b.decode.b32.kv2048.fp16",
        ):
            assert (hw, key) in keys
    # W1, W4, W7, W5 as before; W8 MobileNet-V2 (53 layers) and W9 VGG-16 (16 layers): 4 batches + layers at b1, 3 dtypes
    assert len(plan()) == 3 * (6 + 6 + 12 + 12 + 5 + 18 + 54 * 2 * 3 + (4 + 53) * 3 + (4 + 16) * 3) == 1842
    by_hw: dict[str, set[str]] = {}
    for c in plan():
        by_hw.setdefault(c.hardware, set()).add(c.key)
    assert by_hw["H200-SXM-141GB"] == by_hw["H100-SXM5-80GB"] == by_hw["A100-SXM4-80GB"]  # every H100 case also for the H200


def test_cases_prints_json_lines(small_cfg, data_dir):
    res = invoke("cases", "--config", small_cfg, "--data-dir", data_dir)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["key"] for x in lines] == SMALL_KEYS
    assert lines[0]["id"] == "H100-SXM5-80GB:resnet50.conv1.b1.fp32" and lines[0]["workload"] == "W1"


def test_shards_partition_the_cases(data_dir):
    full = invoke("cases", "--data-dir", data_dir)
    assert full.exit_code == 0
    parts = []
    for k in (1, 2, 3):
        res = invoke("cases", "--data-dir", data_dir, "--shard", f"{k}/3")
        assert res.exit_code == 0, res.output
        parts.append(res.output.splitlines())
    assert sum(len(p) for p in parts) == len(full.output.splitlines()) == 1842
    assert sorted(sum(parts, [])) == sorted(full.output.splitlines())
    assert parts[1][0] == full.output.splitlines()[1]  # slice 2 of 3 starts at the plan's second case


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_dir):
    """The small config run twice with --jobs 1 and once with --jobs 2."""
    out = tmp_path_factory.mktemp("run")
    cfg = out / "c.json"
    cfg.write_text(json.dumps(SMALL))
    docs = {}
    for name, jobs in (("a", "1"), ("b", "1"), ("j2", "2")):
        res = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", out, "--name", name, "--jobs", jobs)
        assert res.exit_code == 0, res.output
        docs[name] = ms.read_tool_run(out / f"{name}.tool-run.json")
    return docs


def test_run_writes_a_valid_deterministic_document(small_run):
    a, b = small_run["a"], small_run["b"]
    assert ms.canonical(a)["cases"] == ms.canonical(b)["cases"]
    assert a["tool"] == b["tool"] and a["tool"]["name"] == "analytical" and a["tool"]["backend"] == "native"
    assert [c["key"] for c in a["cases"]] == SMALL_KEYS and [c["status"] for c in a["cases"]] == ["ok"] * 5
    assert a["runner"] == {"name": "analytical-runner", "version": "2.1.0"}
    assert a["wall_clock"]["started_at"].endswith("Z")
    assert a["invocation"]["config"]["path"] == "<external>/c.json"  # outside the repository: no machine path
    assert a["tool"]["version"] == "1.0.0"  # the roofline method's version, not the runner's


def test_jobs_2_gives_the_same_document_as_jobs_1(small_run):
    one, two = ms.canonical(small_run["a"]), ms.canonical(small_run["j2"])
    one.pop("invocation"), two.pop("invocation")
    assert one == two


def test_conv1_case_values(small_run):
    case = next(c for c in small_run["a"]["cases"] if c["key"] == "resnet50.conv1.b1.fp16")
    m = {x["name"]: x for x in case["metrics"]}
    flops, nbytes = 236_027_904, 2 * (3 * 224 * 224 + 64 * 3 * 49 + 64 * 112 * 112)
    assert m["flops"]["value"] == flops and m["flops"]["unit"] == "FLOP"
    assert m["bytes"]["value"] == nbytes and m["bytes"]["unit"] == "B"
    assert m["latency"]["unit"] == "ms" and m["latency"]["timing"] == "simulated" and m["latency"]["kind"] == "prediction"
    assert m["latency"]["value"] == pytest.approx(nbytes / 3.35e12 * 1e3, rel=1e-5)
    assert m["arithmetic_intensity"]["value"] == pytest.approx(flops / nbytes, rel=1e-5)
    assert case["parameters"]["bound"] == "memory" and case["parameters"]["layer"] == "conv1"
    assert case["artifacts"][0]["path"] == "data/hardware/hardware.json"


def test_small_run_equals_the_committed_cases(small_run):
    """The same cases in the committed full run (all 766 cases) carry the same numbers; only the
    catalog's sha256 may differ (hardware.json gained entries since, not the A100/H100 figures)."""
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED} not present")
    committed = {c["id"]: c for c in ms.read_tool_run(COMMITTED)["cases"]}
    for case in small_run["a"]["cases"]:
        old = committed[case["id"]]
        assert [a["path"] for a in case["artifacts"]] == [a["path"] for a in old["artifacts"]]
        assert {**case, "artifacts": None} == {**old, "artifacts": None}, case["id"]


def resnet50_macs_by_hand() -> int:
    """conv1, then per bottleneck 1x1 (at input resolution), 3x3 (strided), 1x1, downsample; fc."""
    macs = 112 * 112 * 64 * 3 * 7 * 7
    inplanes = 64
    for planes, blocks, stride, hw in ((64, 3, 1, 56), (128, 4, 2, 56), (256, 6, 2, 28), (512, 3, 2, 14)):
        for i in range(blocks):
            out = hw // (stride if i == 0 else 1)
            macs += hw * hw * inplanes * planes + out * out * planes * planes * 9 + out * out * planes * planes * 4
            if i == 0:
                macs += out * out * inplanes * planes * 4
            inplanes, hw = planes * 4, out
    return macs + 2048 * 1000


def test_model_is_the_sum_of_more_than_its_layers(small_run):
    assert resnet50_macs_by_hand() == 4_089_184_256
    cases = {c["key"]: c for c in small_run["a"]["cases"]}
    model = {x["name"]: x["value"] for x in cases["resnet50.model.b1.fp16"]["metrics"]}
    conv1 = {x["name"]: x["value"] for x in cases["resnet50.conv1.b1.fp16"]["metrics"]}
    assert model["flops"] == 2 * resnet50_macs_by_hand()
    assert model["latency"] > conv1["latency"]
    assert cases["resnet50.model.b1.fp16"]["parameters"]["operators"] > 100


def test_sharded_runs_merge_to_the_whole_run(small_run, small_cfg, tmp_path, data_dir):
    merged = []
    for k in (1, 2):
        res = invoke("run", "--config", small_cfg, "--data-dir", data_dir, "--output", tmp_path, "--shard", f"{k}/2", "--jobs", "1")
        assert res.exit_code == 0, res.output
        doc = ms.read_tool_run(tmp_path / f"analytical.shard-{k}-of-2.tool-run.json")
        assert doc["invocation"]["shard"] == {"index": k, "count": 2}
        merged += doc["cases"]
    assert sorted(merged, key=lambda c: c["id"]) == sorted(small_run["a"]["cases"], key=lambda c: c["id"])


@pytest.mark.parametrize(
    "config, message",
    [
        ({"includ": ["x"]}, "field (document): unexpected field(s): 'includ'"),
        ({"include": "resnet50.*"}, "field include: got str 'resnet50.*', expected array"),
        ({"hardware": [""]}, "field hardware[0]"),
        ({"hardware": ["TPU-v9"]}, "field hardware: no entry with id 'TPU-v9'"),
        ({"hardware": ["Eyeriss-like"]}, "the roofline needs peak_flops.fp32"),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, data_dir, config, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    res = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "out")
    assert res.exit_code == Exit.USER_ERROR, res.output
    assert message in res.output and str(cfg) in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize("probe", [["--limit", "0"], ["--config", "W99"], ["--shard", "4/3"]])
def test_probes_that_select_no_cases_leave_the_committed_document(committed_copy, tmp_path, data_dir, probe):
    """issue 15: `run --limit 0` and a config {"include": ["W99*"]} replaced 766 ok cases with 0."""
    if probe[0] == "--config":
        cfg = tmp_path / "w99.json"
        cfg.write_text(json.dumps({"include": ["W99*"]}))
        probe = ["--config", cfg]
    before = (committed_copy / "analytical.tool-run.json").read_bytes()
    res = invoke("run", "--data-dir", data_dir, "--output", committed_copy, *probe)
    assert res.exit_code == Exit.USER_ERROR, res.output
    assert len(error_lines(res.output)) == 1
    assert ("selects no cases" in res.output) if probe[0] == "--config" else (probe[0] in res.output)
    assert (committed_copy / "analytical.tool-run.json").read_bytes() == before
    assert sorted(p.name for p in committed_copy.iterdir()) == ["analytical.tool-run.json"]


def _crash(shape, model=None):
    raise RuntimeError(f"simulated tracer crash on {shape.model}")


def test_a_run_whose_every_case_fails_keeps_the_committed_document(committed_copy, small_cfg, tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(models, "run_shape", _crash)  # --jobs 1 runs the units in this process
    before = (committed_copy / "analytical.tool-run.json").read_bytes()
    res = invoke("run", "--config", small_cfg, "--data-dir", data_dir, "--output", committed_copy, "--jobs", "1")
    assert res.exit_code == Exit.KEPT_EXISTING, res.output
    assert (committed_copy / "analytical.tool-run.json").read_bytes() == before
    refused = ms.read_tool_run(committed_copy / "analytical.refused-fewer-ok.json")
    assert {c["status"] for c in refused["cases"]} == {"failed"}
    assert refused["cases"][0]["error"]["kind"] == "tool-crashed" and "simulated tracer crash" in refused["cases"][0]["error"]["message"]
    fresh = invoke("run", "--config", small_cfg, "--data-dir", data_dir, "--output", tmp_path / "fresh", "--jobs", "1")
    assert fresh.exit_code == Exit.ALL_FAILED, fresh.output


def test_unwritable_output_fails_before_the_first_case(tmp_path, small_cfg, data_dir, monkeypatch):
    traced = []
    monkeypatch.setattr(models, "run_shape", lambda shape, model=None: traced.append(shape))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = invoke("run", "--config", small_cfg, "--data-dir", data_dir, "--output", blocker / "out", "--jobs", "1")
    assert res.exit_code == Exit.USER_ERROR and len(error_lines(res.output)) == 1 and "output" in res.output
    assert traced == []


def test_non_utf8_config_and_catalogs_are_one_line(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_bytes(b'{"include": ["resnet50.\xff"]}')
    res = invoke("cases", "--config", cfg, "--data-dir", data_dir)
    assert res.exit_code == Exit.USER_ERROR and "not UTF-8" in res.output and len(res.output.strip().splitlines()) == 1
    for catalog in ("hardware/hardware.json", "workloads/workloads.json"):
        bad = tmp_path / f"data-{catalog.split('/')[0]}"
        shutil.copytree(data_dir / "hardware", bad / "hardware")
        shutil.copytree(data_dir / "workloads", bad / "workloads", ignore=shutil.ignore_patterns("layers"))
        text = (bad / catalog).read_bytes()
        (bad / catalog).write_bytes(text.replace(b'"H100-SXM5-80GB"', b'"H100-SXM5-80GB\xfe"', 1).replace(b'"W1"', b'"W1\xfe"', 1))
        res = invoke("run", "--data-dir", bad, "--output", tmp_path / "out")
        assert res.exit_code == Exit.USER_ERROR, res.output
        assert catalog.split("/")[1] in res.output and "not UTF-8" in res.output and len(res.output.strip().splitlines()) == 1


def test_missing_catalog_and_bad_json(tmp_path):
    res = invoke("cases", "--data-dir", tmp_path)
    assert res.exit_code == Exit.USER_ERROR and "hardware.json" in res.output and "cannot read" in res.output
    cfg = tmp_path / "c.json"
    cfg.write_text("{nope")
    res = invoke("cases", "--config", cfg)
    assert res.exit_code == Exit.USER_ERROR and "not valid JSON" in res.output


def test_console_script_error_is_one_line_without_traceback(tmp_path, data_dir):
    """A real process, where a traceback would really show."""
    cfg = tmp_path / "c.json"
    cfg.write_bytes(b"\xff{}")
    proc = subprocess.run([sys.executable, "-m", "mtap_analytical_runner.cli", "run", "--config", str(cfg),
                           "--data-dir", str(data_dir), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == Exit.USER_ERROR
    assert proc.stderr.strip().splitlines() == [f"Error: {cfg}: not UTF-8 text (byte 0)"]
    assert proc.stdout == ""


def test_help_and_version():
    res = invoke("--help")
    assert res.exit_code == 0 and "Example: analytical-runner run" in res.output and "meta device" in res.output
    assert invoke("--version").output.strip().endswith("2.1.0")
    run_help = invoke("run", "--help").output
    for offered in ("--config", "--data-dir", "--limit", "--shard", "--output", "--name", "--jobs", "--overwrite", "--resume"):
        assert offered in run_help
    for absent in ("--tool-path", "--image", "--timeout", "--keep-raw"):  # nothing to point them at
        assert absent not in run_help
    assert "--output" not in invoke("cases", "--help").output


def test_an_interrupted_run_resumes_without_tracing_again(small_run, small_cfg, tmp_path, data_dir, monkeypatch):
    """Interrupted after the first traced computation: exit 130, no document, the finished unit is kept;
    --resume traces only the rest and writes the document an uninterrupted run writes."""
    real = models.run_shape
    traced: list[str] = []

    def interrupt_second(shape, model=None):
        if traced:
            raise KeyboardInterrupt
        traced.append(f"{shape.batch}.{shape.dtype}")
        return real(shape)

    monkeypatch.setattr(models, "run_shape", interrupt_second)
    args = ["run", "--config", small_cfg, "--data-dir", data_dir, "--output", tmp_path, "--jobs", "1"]
    res = invoke(*args)
    assert res.exit_code == Exit.INTERRUPTED, res.output
    assert not (tmp_path / "analytical.tool-run.json").exists() and (tmp_path / ".analytical.progress.jsonl").is_file()

    def counting(shape, model=None):
        traced.append(f"{shape.batch}.{shape.dtype}")
        return real(shape)

    monkeypatch.setattr(models, "run_shape", counting)
    res = invoke(*args, "--resume")
    assert res.exit_code == 0, res.output
    assert traced == ["1.fp32", "1.fp16", "32.fp16"]  # b1 fp32 traced once, before the interrupt
    assert ms.read_tool_run(tmp_path / "analytical.tool-run.json")["cases"] == small_run["a"]["cases"]
    assert not (tmp_path / ".analytical.progress.jsonl").exists()
