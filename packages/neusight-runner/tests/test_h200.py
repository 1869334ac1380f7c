"""The H200: NeuSight's device config written from the catalog, NeuSight's own configurations on
an mtap hardware id, and the committed live H200 documents (H200 inputs only, the keys of the H200
ground truth)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_live import fake_checkout, unit

import mtap_schemas as ms
from mtap_neusight_runner import live
from mtap_neusight_runner.cli import main
from mtap_neusight_runner.mapping import parse_tag

H200 = "H200-SXM-141GB"


def _catalog(data_dir: Path) -> dict:
    return {h["id"]: h for h in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


def test_h200_config_from_catalog(tmp_path, data_dir):
    hw = _catalog(data_dir)[H200]
    cfg = json.loads(live.device_config(tmp_path, hw, tmp_path).read_text())
    # 141 GB HBM3e at 4.8 TB/s, 132 SMs x 128 FP32 cores at 1.98 GHz (67 TFLOPS FP32), the 60 MiB L2 CUDA reports
    assert cfg == {
        "Device": "NVIDIA H200",
        "Dev_Mem": 141,
        "Mem_Bw": 4800,
        "Num_Sm": 132,
        "Core_Per_SM": 128,
        "Freq": 1980,
        "SingleFLOPs": 67000,
        "L2Cache": 63,
    }
    # NeuSight's own FP32 figure is SMs x cores x 2 x clock: the catalog's rate agrees with 128 cores per SM
    assert cfg["Num_Sm"] * cfg["Core_Per_SM"] * 2 * cfg["Freq"] / 1e3 == pytest.approx(cfg["SingleFLOPs"], rel=0.01)


def test_own_configuration_on_a_catalog_id(tmp_path, data_dir):
    (case,) = live.plan_own([H200], [parse_tag("bert_large-inf-512-8")], ("roofline",))
    assert (case.id, case.hardware, case.key, case.workload) == (
        f"live:{H200}:roofline:bert_large-inf-512-8",
        H200,
        "bert-large.model.b8.s512.fp32.eager-attn",
        "W4",
    )
    p = case.parameters()
    assert p["hardware_in_catalog"] is True and p["neusight_device"] == "NVIDIA_H200"
    assert p["device_config"] == "data/hardware/hardware.json"
    catalog = _catalog(data_dir)
    path = case.device_cfg(tmp_path / "co", catalog, tmp_path)
    assert path.is_relative_to(tmp_path) and json.loads(path.read_text())["Mem_Bw"] == 4800
    # NeuSight's own name for the H100 keeps NeuSight's file; the mtap id of a GPU NeuSight describes uses it too
    (h100,) = live.plan_own(["H100-SXM5-80GB"], [parse_tag("bert_large-inf-512-8")], ("roofline",))
    co = tmp_path / "co"
    (co / live.ASPLOS / "data" / "device_configs").mkdir(parents=True)
    own = co / live.ASPLOS / "data" / "device_configs" / "NVIDIA_H100_80GB_HBM3.json"
    own.write_text("{}")
    assert h100.device_cfg(co, catalog, tmp_path) == own


def test_weights_missing_on_h200_is_refused(tmp_path):
    co = fake_checkout(tmp_path / "co")
    (case,) = live.plan_own([H200], [parse_tag("gpt2_large-inf-1024-4")], ("neusight",))
    out = live.run_unit(unit(case, co, hardware=None))["case"]
    assert out["status"] == "unavailable" and out["error"]["kind"] == "weights-missing" and out["hardware"] == H200


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_config_h200_devices(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {"neusight_tags": ["bert_large-inf-512-8"], "neusight_devices": [H200, "NVIDIA_H100_80GB_HBM3"], "methods": ["roofline"]}
        )
    )
    r = _cli("cases", "--config", cfg, "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(line)["hardware"] for line in r.output.splitlines()) == ["H100-SXM5-80GB", H200]
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "neusight_devices": ["H100-SXM5-80GB", "NVIDIA_H100_80GB_HBM3"]}))
    r = _cli("cases", "--config", cfg, "--data-dir", data_dir)
    assert r.exit_code == 2 and "field neusight_devices" in r.output and r.output.count("\n") == 1
    # an H200 missing from the catalog given is one line naming the file and field
    data = tmp_path / "data" / "hardware"
    data.mkdir(parents=True)
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    catalog["hardware"] = [h for h in catalog["hardware"] if h["id"] != H200]
    (data / "hardware.json").write_text(json.dumps(catalog))
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "neusight_devices": [H200]}))
    r = _cli("cases", "--config", cfg, "--data-dir", tmp_path / "data")
    assert r.exit_code == 2 and "field neusight_devices" in r.output and "hardware.json" in r.output


@pytest.mark.parametrize(
    "name, config",
    [("neusight-roofline-h200", "h200-w4-w7-roofline.json"), ("neusight-roofline-own-h200", "own-h200-inference-roofline.json")],
)
def test_committed_h200_documents(repo, data_dir, tmp_path, name, config):
    """Every case on the H200, run with the shipped config, from a device config equal to the one
    the current catalog gives, keyed for the eager attention NeuSight traces, and a configuration
    groundtruth measures on the H200 (with SDPA: the key without .eager-attn); once eager-attention
    H200 measurements are committed (groundtruth --attention eager), paired with one of the same key."""
    path = data_dir / "evaluation" / "neusight" / f"{name}.tool-run.json"
    if not path.is_file():
        pytest.skip(f"no committed {path.name}")
    doc = ms.read_tool_run(path)
    assert doc["tool"]["name"] == "neusight-roofline" and "--roofline-tool" in doc["invocation"]["command"]
    shipped = repo / "packages" / "neusight-runner" / "configs" / config
    assert doc["invocation"]["config"] == {"path": f"packages/neusight-runner/configs/{config}", "sha256": ms.sha256_file(shipped)}
    cfg = json.loads(shipped.read_text())
    assert cfg["methods"] == ["roofline"]
    assert {c["hardware"] for c in doc["cases"]} == {H200} and all(c["status"] == "ok" for c in doc["cases"])
    kept = data_dir / "evaluation" / "neusight" / f"{name}.raw" / H200 / "NVIDIA_H200.json"
    assert kept.read_bytes() == live.device_config(tmp_path, _catalog(data_dir)[H200], tmp_path).read_bytes()
    measured = set()
    for gt in (data_dir / "evaluation" / "groundtruth").glob("h200-*.tool-run.json"):
        measured |= {c["key"] for c in ms.read_tool_run(gt)["cases"] if c["hardware"] == H200 and c["status"] == "ok"}
    eager = {k for k in measured if k.endswith(".eager-attn")}
    for c in doc["cases"]:
        (m,) = c["metrics"]
        assert m["name"] == "latency" and m["kind"] == "prediction" and m["timing"] == "simulated" and m["value"] > 0
        assert c["parameters"]["method"] == "roofline" and c["parameters"]["method_is_neusight"] is False
        assert c["key"].endswith(".eager-attn") and c["parameters"]["attention"] == "eager", c["key"]
        assert c["key"].removesuffix(".eager-attn") in measured, c["key"]
        assert not eager or c["key"] in eager, c["key"]
        shas = {a["path"]: a["sha256"] for a in c["artifacts"]}
        assert shas[kept.relative_to(repo).as_posix()] == ms.sha256_file(kept)


def test_roofline_tool_writes_its_own_tool(tmp_path, data_dir):
    """--roofline-tool: NeuSight's roofline as tool neusight-roofline with metric latency (a real
    NeuSight run replayed); without it the same value stays NeuSight's baseline_latency."""
    from test_live import _replay_setup

    co, python = _replay_setup(tmp_path)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "methods": ["roofline"]}))
    common = ["--tool-path", co, "--neusight-python", python, "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "out"]
    r = _cli("run", "--roofline-tool", *common)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "out" / "neusight-roofline-live.tool-run.json")
    assert doc["tool"]["name"] == "neusight-roofline"
    (case,) = doc["cases"]
    assert [(m["name"], m["kind"], m["value"]) for m in case["metrics"]] == [("latency", "prediction", 48.06768989477543)]
    r = _cli("run", *common)
    assert r.exit_code == 0, r.output
    (case,) = ms.read_tool_run(tmp_path / "out" / "neusight-live.tool-run.json")["cases"]
    assert [m["name"] for m in case["metrics"]] == ["baseline_latency"]


@pytest.mark.parametrize(
    "cfg", [{"neusight_tags": ["bert_large-inf-512-8"]}, {"neusight_tags": ["bert_large-inf-512-8"], "methods": ["neusight", "roofline"]}]
)
def test_roofline_tool_needs_roofline_only(tmp_path, data_dir, cfg):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    r = _cli("run", "--roofline-tool", "--config", path, "--data-dir", data_dir, "--output", tmp_path / "out")
    assert r.exit_code == 2 and "--roofline-tool" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    r = _cli("run", "--roofline-tool", "--artifact-dir", tmp_path, "--output", tmp_path / "out")
    assert r.exit_code == 2 and "--roofline-tool" in r.output
