import json
import os
import sys
import time
from pathlib import Path

import pytest

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_neusight_runner import live, shim
from mtap_neusight_runner.parse import ParseError, parse_e2e_line

HERE = Path(__file__).resolve().parent
CAPTURED = HERE / "fixtures" / "live-roofline-h100-bert_large-inf-512-8"
H100 = {"id": "H100-SXM5-80GB"}


def fake_checkout(root: Path, weights: bool = False, tables: bool = False) -> Path:
    """A folder shaped like NeuSight's checkout (its layout, not its code)."""
    (root / "neusight" / "Prediction").mkdir(parents=True)
    (root / "neusight" / "Prediction" / "predictor.py").write_text("")
    pred = root / "scripts" / "asplos" / "data" / "predictor"
    for folder, arch in (("MLP_WAVE", "MLP_WAVE_MM"), ("ROOFLINE", "ROOFLINE_MM")):
        for op in live.OPS:
            (pred / folder / op).mkdir(parents=True)
            (pred / folder / op / "config.json").write_text(json.dumps({"architecture": arch}))
            if weights and folder == "MLP_WAVE":
                (pred / folder / op / "model.pth").write_bytes(b"\0" * 4096)
    train = root / "scripts" / "asplos" / "data" / "dataset" / "train"
    train.mkdir(parents=True)
    if tables:
        for t in live.TILE_TABLES:
            (train / t).write_bytes(b"x" * 4096)
    return root


def test_plan_is_w4_w7_on_h100_and_a100():
    cases = live.plan()
    assert len(cases) == 32 and len({c.id for c in cases}) == 32
    keys = {(c.workload, c.key) for c in cases}
    assert ("W4", "bert-base.model.b8.s128.fp32.eager-attn") in keys and ("W7", "gpt2.model.b1.s512.fp32.eager-attn") in keys
    assert all(c.parameters()["attention"] == "eager" for c in cases)
    assert {c.hardware for c in cases} == {"H100-SXM5-80GB", "A100-SXM4-80GB"}


def unit(case, checkout, python="/nonexistent/python", hardware=H100, timeout=10.0, keep_raw=None) -> live.Unit:
    return live.Unit(case, checkout, hardware, python, timeout, keep_raw)


def test_missing_weights_refused_without_running(tmp_path):
    co = fake_checkout(tmp_path / "co")
    out = live.run_unit(unit(live.LiveCase("W4", "H100-SXM5-80GB", "neusight", 8, 128), co))
    case = out["case"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "weights-missing"
    assert "MLP_WAVE/BMM/model.pth" in case["error"]["message"] and "random weights" in case["error"]["message"]
    assert out["env"] == {}  # the interpreter was never started (it does not exist: starting it would be binary-missing)
    ms.validate(tr.ToolRun("r", "1", tr.Tool("neusight", None, "native", "x"), argv=[]).document([case]), "tool-run", 2)


def test_git_lfs_pointer_is_not_a_weight_file(tmp_path):
    co = fake_checkout(tmp_path / "co")
    (co / "scripts/asplos/data/predictor/MLP_WAVE/BMM/model.pth").write_text("version https://git-lfs.github.com/spec/v1\n")
    assert "scripts/asplos/data/predictor/MLP_WAVE/BMM/model.pth" in live.missing_weights(co, "neusight")
    assert live.missing_weights(co, "roofline") == []


def test_weights_without_tile_tables_refused(tmp_path):
    co = fake_checkout(tmp_path / "co", weights=True)
    out = live.run_unit(unit(live.LiveCase("W7", "H100-SXM5-80GB", "neusight", 1, 128), co))
    assert out["case"]["error"]["kind"] == "tile-dataset-missing" and out["case"]["status"] == "unavailable"


def test_no_checkout_is_unavailable(tmp_path):
    cases = live.plan(methods=("roofline",))
    out = [live.run_unit(unit(c, None))["case"] for c in cases]
    assert {c["status"] for c in out} == {"unavailable"} and {c["error"]["kind"] for c in out} == {"checkout-missing"}
    assert "not a NeuSight checkout" in live.run_unit(unit(cases[0], tmp_path))["case"]["error"]["message"]


def _roofline_checkout(tmp_path):
    co = fake_checkout(tmp_path / "co")
    (co / "scripts/asplos/data/device_configs").mkdir(parents=True)
    (co / "scripts/asplos/data/device_configs/NVIDIA_H100_80GB_HBM3.json").write_text(json.dumps({"Device": "NVIDIA H100 80GB HBM3"}))
    (co / "scripts/asplos/data/DLmodel_configs").mkdir(parents=True)
    (co / "scripts/asplos/data/DLmodel_configs/bert.json").write_text("{}")
    return co


def test_interpreter_that_cannot_start_is_unavailable(tmp_path):
    co = _roofline_checkout(tmp_path)
    case = live.run_unit(unit(live.LiveCase("W7", "H100-SXM5-80GB", "roofline", 1, 128), co, python=str(tmp_path / "no-python")))["case"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "binary-missing"
    assert "--neusight-python" in case["error"]["message"] and "could not be started" in case["error"]["message"]


def test_shim_that_crashes_is_a_failed_case(tmp_path):
    """A real subprocess: this interpreter runs the shim on a checkout whose predictor.py is empty."""
    co = _roofline_checkout(tmp_path)
    case = live.run_unit(unit(live.LiveCase("W4", "H100-SXM5-80GB", "roofline", 1, 128), co, python=sys.executable, timeout=120))["case"]
    assert case["status"] == "failed" and case["error"]["kind"] == "tool-crashed", case["error"]
    assert "exited 1" in case["error"]["message"]


def test_timeout_kills_the_tools_process_group(tmp_path):
    """--timeout: the stand-in 'python' starts a grandchild; both are gone when the case is recorded as timeout."""
    co = _roofline_checkout(tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    fake = tmp_path / "slow-python"
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    fake.chmod(0o755)
    case = live.run_unit(unit(live.LiveCase("W4", "H100-SXM5-80GB", "roofline", 1, 128), co, python=str(fake), timeout=1.0))["case"]
    assert (case["status"], case["error"]["kind"]) == ("failed", "timeout") and "process group was killed" in case["error"]["message"]
    time.sleep(0.2)
    grandchild = Path(f"/proc/{pidfile.read_text().strip()}")
    assert not grandchild.exists() or (grandchild / "stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize("value, expected", [(float("inf"), "finite"), (-0.5, "cannot be negative"), (float("nan"), "finite")])
def test_degenerate_neusight_value_is_invalid_value(value, expected):
    case = live.result_case(live.LiveCase("W4", "H100-SXM5-80GB", "roofline", 1, 128), value, "prediction/x.json", [])
    assert (case["status"], case["error"]["kind"]) == ("failed", "invalid-value")
    assert expected in case["error"]["message"] and "prediction/x.json" in case["error"]["message"]
    ok = live.result_case(live.LiveCase("W4", "H100-SXM5-80GB", "roofline", 1, 128), 48.07, "prediction/x.json", [])
    assert ok["status"] == "ok" and ok["metrics"][0]["name"] == "baseline_latency" and ok["metrics"][0]["timing"] == "simulated"


def test_job_matches_neusights_own_roofline_script(tmp_path):
    co = tmp_path / "co"
    case = live.LiveCase("W4", "H100-SXM5-80GB", "roofline", 8, 512)
    job = live.job_for(case, co, Path("dev.json"), Path("bert.json"), tmp_path / "res")
    # scripts/asplos/run_pred_nvidia_roofline.py: --predictor_name roofline --predictor_path ./data/predictor/ROOFLINE --tile_dataset_dir ""
    assert job["predictor_name"] == "roofline" and job["tile_dataset_dir"] == ""
    assert job["predictor_path"] == str(co / "scripts/asplos/data/predictor/ROOFLINE")
    assert (job["execution_type"], job["sequence_length"], job["batch_size"], job["options"]) == ("inf", 512, 8, "")
    job = live.job_for(live.LiveCase("W4", "H100-SXM5-80GB", "neusight", 8, 512), co, Path("d"), Path("m"), tmp_path)
    assert job["predictor_path"].endswith("predictor/MLP_WAVE") and job["tile_dataset_dir"].endswith("dataset/train")


def test_a100_sxm4_80gb_config_from_catalog(tmp_path, data_dir):
    hw = {h["id"]: h for h in json.loads((data_dir / "hardware/hardware.json").read_text())["hardware"]}
    path = live.device_config(tmp_path, hw["A100-SXM4-80GB"], tmp_path)
    cfg = json.loads(path.read_text())
    assert cfg == {
        "Device": "NVIDIA A100-SXM4-80GB",
        "Dev_Mem": 80,
        "Mem_Bw": 2039,
        "Num_Sm": 108,
        "Core_Per_SM": 64,
        "Freq": 1410,
        "SingleFLOPs": 19500,
        "L2Cache": 40,
    }


def _captured_job(tmp_path: Path) -> dict:
    result = tmp_path / "res"
    dst = result / "prediction/NVIDIA_H100_80GB_HBM3/roofline"
    dst.mkdir(parents=True)
    (dst / "bert_large-inf-512-8.json").write_bytes((CAPTURED / "bert_large-inf-512-8.json").read_bytes())
    dev = tmp_path / "NVIDIA_H100_80GB_HBM3.json"
    dev.write_text(json.dumps({"Device": "NVIDIA H100 80GB HBM3"}))
    return {
        "device_config_path": str(dev),
        "model_config_path": "x/bert_large.json",
        "execution_type": "inf",
        "sequence_length": 512,
        "batch_size": 8,
        "predictor_name": "roofline",
        "result_dir": str(result),
    }


def test_parser_on_captured_real_output(tmp_path):
    job = _captured_job(tmp_path)
    stdout = (CAPTURED / "stdout.txt").read_text()
    assert parse_e2e_line(stdout) == ("bert_large-inf-512-8", "NVIDIA_H100_80GB_HBM3.json", 48.07)
    value = live.parse_result(job, stdout)
    # The authors' published roofline prediction for the same configuration.
    assert value == pytest.approx(48.067689805644946, rel=1e-8)


def test_parser_refuses_disagreeing_or_missing_output(tmp_path):
    job = _captured_job(tmp_path)
    with pytest.raises(ParseError, match="disagrees"):
        live.parse_result(job, "E2E latency for bert_large-inf-512-8 on NVIDIA_H100_80GB_HBM3.json: 50.00 ms\n")
    with pytest.raises(ParseError, match="no 'E2E latency"):
        live.parse_result(job, "node proped\n")
    job["batch_size"] = 16
    with pytest.raises(ParseError, match="cannot read"):
        live.parse_result(job, "")


def test_shim_weights_check_and_cuda_stand_in(tmp_path):
    co = fake_checkout(tmp_path / "co")
    assert len(shim.missing_weights(co / "scripts/asplos/data/predictor/MLP_WAVE")) == 5
    assert shim.missing_weights(co / "scripts/asplos/data/predictor/ROOFLINE") == []
    ev = shim.UnusableCudaEvent(enable_timing=True)
    for use in (ev.record, ev.elapsed_time, ev.synchronize):
        with pytest.raises(RuntimeError, match="CPU-only"):
            use()


@pytest.mark.skipif(
    not (os.environ.get("MTAP_NEUSIGHT_PATH") and os.environ.get("MTAP_NEUSIGHT_PYTHON")),
    reason="needs a NeuSight checkout (MTAP_NEUSIGHT_PATH) and its Python (MTAP_NEUSIGHT_PYTHON)",
)
def test_live_roofline_reproduces_published_prediction(tmp_path, data_dir):
    """NeuSight's own roofline, run live through the shim, equals the authors' published figure."""
    from mtap_neusight_runner.mapping import parse_tag

    co = Path(os.environ["MTAP_NEUSIGHT_PATH"])
    case = live.OwnCase("NVIDIA_H100_80GB_HBM3", "roofline", parse_tag("bert_large-inf-512-8"))
    out = live.run_unit(live.Unit(case, co, None, os.environ["MTAP_NEUSIGHT_PYTHON"], 1800, tmp_path / "raw"))
    assert out["case"]["status"] == "ok", out["case"]["error"]
    assert "torch" in out["env"]
    # results/prediction/NVIDIA_H100_80GB_HBM3/roofline/bert_large-inf-512-8.json of NeuSight's artifact
    assert out["case"]["metrics"][0]["value"] == pytest.approx(48.067689805644946, rel=1e-6)


def test_own_configurations_plan_and_job(tmp_path):
    from mtap_neusight_runner.mapping import parse_tag

    cases = live.plan_own(
        ["NVIDIA_H100_80GB_HBM3"], [parse_tag("bert_large-inf-512-8-fusion"), parse_tag("gpt3_27-inf-2048-2")], ("roofline",)
    )
    assert [c.id for c in cases] == [
        "live:H100-SXM5-80GB:roofline:bert_large-inf-512-8-fusion",
        "live:H100-SXM5-80GB:roofline:gpt3_27-inf-2048-2",
    ]
    assert [c.key for c in cases] == ["bert-large.model-compiled.b8.s512.fp32.eager-attn", "gpt3-2.7b.model.b2.s2048.fp32.eager-attn"]
    assert all(c.parameters()["attention"] == "eager" for c in cases)
    assert cases[0].parameters()["workload_fit"] == "family" and cases[0].workload == "W4"
    dev = tmp_path / "NVIDIA_H100_80GB_HBM3.json"
    dev.write_text(json.dumps({"Device": "NVIDIA H100 80GB HBM3"}))
    job = live.job_for(cases[0], tmp_path, dev, Path("x/bert_large.json"), tmp_path / "res")
    assert (job["options"], job["execution_type"]) == ("fusion", "inf")
    # NeusightPredictor.predict names a fused result <model>-<mode>-<seq>-<batch>-fusion
    assert live.result_path(job) == tmp_path / "res/prediction/NVIDIA_H100_80GB_HBM3/roofline/bert_large-inf-512-8-fusion.json"


def test_own_configuration_without_device_config_is_unavailable(tmp_path):
    from mtap_neusight_runner.mapping import parse_tag

    co = fake_checkout(tmp_path / "co")
    (case,) = live.plan_own(["NVIDIA_L4"], [parse_tag("bert_large-inf-512-8")], ("roofline",))
    out = live.run_unit(unit(case, co, hardware=None))["case"]
    assert out["status"] == "unavailable" and out["error"]["kind"] == "config-missing"
    assert out["hardware"] == "NVIDIA_L4" and out["parameters"]["hardware_in_catalog"] is False


REPLAY = HERE / "fixtures" / "replay_shim.py"
MINI = HERE / "fixtures" / "artifact-mini"


def _replay_setup(tmp_path: Path) -> tuple[Path, str]:
    """A checkout layout holding NeuSight's real H100 device config and bert_large model config, and an
    executable that replays the captured NeuSight run (fixtures/live-roofline-h100-bert_large-inf-512-8)."""
    co = fake_checkout(tmp_path / "co")
    data = co / "scripts" / "asplos" / "data"
    for sub, name in (("device_configs", "NVIDIA_H100_80GB_HBM3.json"), ("DLmodel_configs", "bert_large.json")):
        (data / sub).mkdir(parents=True, exist_ok=True)
        (data / sub / name).write_bytes((MINI / "data" / sub / name).read_bytes())
    exe = tmp_path / "replay-python"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPLAY}" "$@"\n')
    exe.chmod(0o755)
    return co, str(exe)


def test_a_successful_run_is_read_kept_and_cited(tmp_path):
    from mtap_neusight_runner.mapping import parse_tag

    co, python = _replay_setup(tmp_path)
    case = live.OwnCase("NVIDIA_H100_80GB_HBM3", "roofline", parse_tag("bert_large-inf-512-8"))
    out = live.run_unit(unit(case, co, python=python, hardware=None, timeout=120, keep_raw=tmp_path / "raw"))
    c = out["case"]
    assert c["status"] == "ok", c["error"]
    assert out["env"]["transformers"] == "4.38.1"
    (m,) = c["metrics"]
    assert (m["name"], m["value"], m["unit"], m["timing"]) == ("baseline_latency", 48.06768989477543, "ms", "simulated")
    kept = tmp_path / "raw" / "H100-SXM5-80GB" / "roofline" / "bert_large-inf-512-8.json"
    assert kept.read_bytes() == (CAPTURED / "bert_large-inf-512-8.json").read_bytes()
    assert [a["path"] for a in c["artifacts"]] == [
        "<external>/bert_large-inf-512-8.json",  # tmp_path is outside the repository: never a machine path
        "neusight-checkout:scripts/asplos/data/device_configs/NVIDIA_H100_80GB_HBM3.json",
    ]
    assert c["artifacts"][0]["sha256"] == ms.sha256_file(kept)
    without = live.run_unit(unit(case, co, python=python, hardware=None, timeout=120))["case"]
    assert without["metrics"][0]["source"] == "prediction/NVIDIA_H100_80GB_HBM3/roofline/bert_large-inf-512-8.json"
    assert [a["path"] for a in without["artifacts"]] == [c["artifacts"][1]["path"]]


def test_live_run_through_the_cli(tmp_path, data_dir):
    from click.testing import CliRunner

    from mtap_neusight_runner.cli import main

    co, python = _replay_setup(tmp_path)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "methods": ["neusight", "roofline"]}))
    r = CliRunner().invoke(
        main,
        [
            "run",
            "--tool-path",
            str(co),
            "--neusight-python",
            python,
            "--config",
            str(cfg),
            "--data-dir",
            str(data_dir),
            "--output",
            str(tmp_path / "out"),
            "--jobs",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "out" / "neusight-live.tool-run.json")
    assert [(c["id"], c["status"]) for c in doc["cases"]] == [
        ("live:H100-SXM5-80GB:neusight:bert_large-inf-512-8", "unavailable"),  # weights-missing: never run
        ("live:H100-SXM5-80GB:roofline:bert_large-inf-512-8", "ok"),
    ]
    assert doc["cases"][0]["error"]["kind"] == "weights-missing"
    assert doc["environment"]["packages"]["torch"] == "2.13.0" and doc["tool"]["backend"] == "native"
