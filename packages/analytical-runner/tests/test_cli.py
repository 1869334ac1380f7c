"""The runner contract: cases, run, the document, bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_analytical_runner.cases import plan
from mtap_analytical_runner.cli import main

SMALL = {"include": ["resnet50.conv1.b1.*", "resnet50.layer.fc.b32.fp16", "resnet50.model.b1.fp16"], "hardware": ["H100-SXM5-80GB"]}


def test_plan_covers_the_groundtruth_grid():
    keys = {(c.hardware, c.key) for c in plan()}
    assert len(keys) == len(plan())  # ids are unique
    for hw in ("A100-SXM4-80GB", "H100-SXM5-80GB"):
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
    assert len(plan()) == 2 * (6 + 6 + 12 + 12 + 5 + 18 + 54 * 2 * 3)


def test_cases_prints_json_lines(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(SMALL))
    res = CliRunner().invoke(main, ["cases", "--config", str(cfg), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["key"] for x in lines] == [
        "resnet50.conv1.b1.fp32", "resnet50.conv1.b1.tf32", "resnet50.conv1.b1.fp16",
        "resnet50.model.b1.fp16", "resnet50.layer.fc.b32.fp16",
    ]
    assert lines[0]["id"] == "H100-SXM5-80GB:resnet50.conv1.b1.fp32" and lines[0]["workload"] == "W1"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    cfg = out / "c.json"
    cfg.write_text(json.dumps(SMALL))
    docs = []
    for name in ("a", "b"):
        res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(out), "--name", name])
        assert res.exit_code == 0, res.output
        docs.append(ms.read(out / f"{name}.tool-run.json", "tool-run"))
    return docs


def test_run_writes_a_valid_deterministic_document(small_run):
    a, b = small_run
    assert ms.canonical(a)["cases"] == ms.canonical(b)["cases"]
    assert a["tool"] == b["tool"] and a["tool"]["name"] == "analytical" and a["tool"]["backend"] == "native"
    assert [c["status"] for c in a["cases"]] == ["ok"] * 5


def test_conv1_case_values(small_run):
    case = next(c for c in small_run[0]["cases"] if c["key"] == "resnet50.conv1.b1.fp16")
    m = {x["name"]: x for x in case["metrics"]}
    flops, nbytes = 236_027_904, 2 * (3 * 224 * 224 + 64 * 3 * 49 + 64 * 112 * 112)
    assert m["flops"]["value"] == flops and m["flops"]["unit"] == "FLOP"
    assert m["bytes"]["value"] == nbytes and m["bytes"]["unit"] == "B"
    assert m["latency"]["unit"] == "ms" and m["latency"]["timing"] == "simulated" and m["latency"]["kind"] == "prediction"
    assert m["latency"]["value"] == pytest.approx(nbytes / 3.35e12 * 1e3, rel=1e-5)
    assert m["arithmetic_intensity"]["value"] == pytest.approx(flops / nbytes, rel=1e-5)
    assert case["parameters"]["bound"] == "memory" and case["parameters"]["layer"] == "conv1"
    assert case["artifacts"][0]["path"].endswith("hardware.json")


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
    cases = {c["key"]: c for c in small_run[0]["cases"]}
    model = {x["name"]: x["value"] for x in cases["resnet50.model.b1.fp16"]["metrics"]}
    conv1 = {x["name"]: x["value"] for x in cases["resnet50.conv1.b1.fp16"]["metrics"]}
    assert model["flops"] == 2 * resnet50_macs_by_hand()
    assert model["latency"] > conv1["latency"]
    assert cases["resnet50.model.b1.fp16"]["parameters"]["operators"] > 100


@pytest.mark.parametrize(
    "config, message",
    [
        ({"includ": ["x"]}, "field includ: unknown field"),
        ({"include": "resnet50.*"}, "field include: expected a list of case-key globs"),
        ({"hardware": ["TPU-v9"]}, "field hardware: no entry with id 'TPU-v9'"),
        ({"hardware": ["Eyeriss-like"]}, "the roofline needs peak_flops.fp32"),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, data_dir, config, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_catalog_and_bad_json(tmp_path):
    res = CliRunner().invoke(main, ["cases", "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "hardware.json" in res.output and "cannot read" in res.output
    cfg = tmp_path / "c.json"
    cfg.write_text("{nope")
    res = CliRunner().invoke(main, ["cases", "--config", str(cfg)])
    assert res.exit_code == 2 and "not valid JSON" in res.output


def test_help_and_version():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "Example: analytical-runner run" in res.output and "meta device" in res.output
    assert CliRunner().invoke(main, ["--version"]).output.strip().endswith("1.0.0")
