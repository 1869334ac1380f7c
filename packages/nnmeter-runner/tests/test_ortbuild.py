"""Issue #19: nn-Meter predictors built with nn-Meter's builder on ONNX Runtime CPU.

Real runs on this machine's CPU (small): nn-Meter's builder with the registered ``ort_cpu``
backend on a few kernels, and ``nnmeter-runner build-predictor`` end to end. The committed
predictors (data/profiles/nn-meter/predictors, built from the device machine's measurements) are
sha256-checked and refused when tampered with; the committed documents are reproduced.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, ROOT, by_id, metrics, run_cli

import mtap_schemas as ms
from mtap_nnmeter_runner import builder, ortprofile
from mtap_nnmeter_runner.cli import main
from mtap_nnmeter_runner.nnmeter import _worker
from mtap_nnmeter_runner.predictors import load_hashes
from mtap_schemas.kinds import Exit

PROFILES = DATA / "profiles" / "nn-meter"
PREDICTORS = PROFILES / "predictors"
MEASURED = PROFILES / "measurements" / "2026-12-01-xeon-emr"
EVALUATION = DATA / "evaluation" / "nn-meter"


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_stats_are_the_usual_order_statistics():
    s = ortprofile.stats([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["p10"] == pytest.approx(1.4) and s["p90"] == pytest.approx(4.6)  # numpy's linear interpolation
    assert s["spread"] == pytest.approx((4.6 - 1.4) / 3.0)


def test_pooling_config_gets_the_field_nnmeter_reads():
    cfg = {"HW": 28, "CIN": 64, "KERNEL_SIZE": 3, "STRIDES": 2}
    assert builder.block_config("maxpool", cfg)["POOL_STRIDES"] == 2 and "POOL_STRIDES" not in cfg
    assert "POOL_STRIDES" not in builder.block_config("relu", {"HW": 7, "CIN": 8})


def test_nnmeter_builder_with_the_registered_ort_backend(tmp_path):
    """nn-Meter's documented flow for a customized backend, really run: register, create workspace,
    connect, sample (prior), profile through the backend (ONNX Runtime on this CPU), fit."""
    spec = {"workspace": str(tmp_path / "ws"), "threads": 1, "kernels": {"global-avgpool": 4, "relu": 4}, "seed": 7}
    result = _worker("smoke", spec, "smoke", 600)
    assert result["ok"], result
    assert "* ort_cpu" in result["backends"] and result["backend_class"] == "OrtCpuBackend" and result["threads"] == 1
    for ktype, r in result["results"].items():
        assert r["profiled"] >= 2, (ktype, r)
        assert all(0 < x < 1000 for x in r["latencies_ms"]), r  # milliseconds of a real run
        assert r["regressor"] == "RandomForestRegressor"
        assert math.isfinite(r["prediction_ms"]) and r["prediction_ms"] > 0
    # nn-Meter's own profiled-results file was written in the workspace by its profile_models
    assert list((tmp_path / "ws" / "workspace").rglob("profiled_relu.json"))


def test_build_predictor_end_to_end_on_this_cpu(tmp_path):
    out = tmp_path / "pred"
    cpus = os.sched_getaffinity(0)
    result = CliRunner().invoke(
        main,
        [
            "build-predictor",
            "--name",
            "tiny",
            "--threads",
            "1",
            "--scale",
            "0.001",
            "--kernels",
            "global-avgpool,relu",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert os.sched_getaffinity(0) == cpus  # the profiler pinned itself only while it measured
    hashes = load_hashes(out / "hashes.json")
    assert sorted(hashes["tiny"]) == ["fusion_rules.json", "global-avgpool.pkl.xz", "relu.pkl.xz"]
    build = json.loads((out / "build.json").read_text())
    kernels = build["predictors"]["tiny"]["kernels"]
    assert set(kernels) == {"global-avgpool", "relu"} and all(k["samples"] >= 2 for k in kernels.values())
    timed = builder.read_jsonl(out / "measurements" / "kernels.jsonl")
    assert timed and all(r["t1"]["median"] > 0 for r in timed)
    model = pickle.loads(lzma.decompress((out / "tiny" / "relu.pkl.xz").read_bytes()))
    assert type(model).__name__ == "RandomForestRegressor"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["build-predictor", "--name", "x", "--threads", "0", "--output", "OUT"], "--threads"),
        (["build-predictor", "--name", "x", "--kernels", "conv,relu", "--output", "OUT"], "unknown kernel type 'conv'"),
        (["build-predictor", "--name", "x", "--measurements", "MISSING", "--output", "OUT"], "kernels.jsonl"),
        (["measured", "--measurements", "MISSING", "--output", "OUT"], "--measurements"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    args = [str(tmp_path / a) if a in ("OUT", "MISSING") else a for a in args]
    (tmp_path / "MISSING").mkdir()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == Exit.USER_ERROR and needle in _one_error_line(result)
    assert not any((tmp_path / "OUT").rglob("*.json")) if (tmp_path / "OUT").exists() else True


def test_committed_predictors_match_their_hash_list_and_build_record():
    hashes = load_hashes(PREDICTORS / "hashes.json")
    build = json.loads((PREDICTORS / "build.json").read_text())
    assert sorted(hashes) == ["xeonemr_ort130_t1", "xeonemr_ort130_t4"] == sorted(build["predictors"])
    for name, files in hashes.items():
        for fname, entry in files.items():
            path = PREDICTORS / name / fname
            assert path.stat().st_size == entry["size"] < 5 * 2**20
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert json.loads((PREDICTORS / name / "fusion_rules.json").read_text()) == {}
        shipped = set(build["predictors"][name]["kernels"]) - set(build["not_shipped"])
        assert {f"{k}.pkl.xz" for k in shipped} | {"fusion_rules.json"} == set(files)
        # every kernel type fitted is shipped, concat included (issue #28: behind the 6 -> 5 feature shim)
        assert shipped == set(builder.DEFAULT_SAMPLES) and "concat.pkl.xz" in files
    assert build["not_shipped"] == {} and builder.NOT_SHIPPED == {}
    # the fits used kernel timings only: no whole-model measurement is in their data
    assert all(s["path"].endswith("kernels.jsonl") for s in build["measurements"])


def test_committed_concat_predictor_is_shimmed_and_scored_like_the_others():
    """concat ships as nn-Meter's builder fitted it, behind the feature shim, with its held-out 20 % recorded."""
    build = json.loads((PREDICTORS / "build.json").read_text())
    for name, pred in build["predictors"].items():
        concat = pred["kernels"]["concat"]
        assert concat["shim"]["predictor_features"] == 6 and concat["shim"]["builder_features"] == 5
        assert concat["shim"]["keep_columns"] == [0, 2, 3, 4, 5] and concat["shim"]["checked_configs"] == concat["samples"]
        assert concat["samples"] == concat["train"] + concat["test"] and concat["test"] >= 5
        for key in ("acc5", "acc10", "acc15"):
            assert 0 <= concat[key] <= 1, (name, key)
        assert math.isfinite(concat["rmse_ms"]) and concat["rmse_ms"] > 0
        # the other kernel types carry the same record, without the shim
        assert all("shim" not in k and {"acc5", "acc10", "acc15", "test"} <= set(k)
                   for t, k in pred["kernels"].items() if t != "concat")
        model = pickle.loads(lzma.decompress((PREDICTORS / name / "concat.pkl.xz").read_bytes()))
        assert type(model).__name__ == "Pipeline" and type(model.steps[-1][1]).__name__ == concat["regressor"]


def test_committed_concat_predictor_gives_a_models_concats_their_time():
    """SqueezeNet 1.0 (W8: 8 concats of its Fire modules) through nn-Meter's kernel detector and nn_predict with
    the committed 1-thread predictors: its concat kernels get a positive time (0 ms while concat was not
    shipped), the model's time is the sum of the parts, and the committed document has that prediction."""
    name = "xeonemr_ort130_t1"
    hashes = load_hashes(PREDICTORS / "hashes.json")[name]
    spec = {"model": "squeezenet", "input": "image", "input_shape": [1, 3, 224, 224], "opsets": [10],
            "rules": {name: str(PREDICTORS / name / "fusion_rules.json")},
            "kernel_lists": {name: sorted(f.split(".pkl")[0] for f in hashes if f.endswith(".pkl.xz"))}}
    parsed = _worker("parse", spec, "parse-squeezenet", 600)
    assert parsed["ok"], parsed
    detection = parsed["detections"][name]
    assert detection["by_type"]["concat"] == 8 and detection["without_predictor"] == 0
    assert detection["concat_over_4_inputs"] == 0
    kernels = parsed["kernels"][name]
    parts = {"model": kernels, "concat": [k for k in kernels if k["op"] == "concat"],
             "rest": [k for k in kernels if k["op"] != "concat"]}
    files = {f: e["sha256"] for f, e in hashes.items()}
    result = _worker("predict", {"predictor": name, "folder": str(PREDICTORS / name), "files": files, "kernels": parts},
                     "predict", 600)
    assert result["ok"] and all(r["ok"] for r in result["results"].values()), result
    got = {k: r["latency_ms"] for k, r in result["results"].items()}
    assert 0 < got["concat"] < got["model"]
    assert got["model"] == pytest.approx(got["concat"] + got["rest"], rel=1e-9)
    committed = by_id(ms.read_tool_run(EVALUATION / "xeon-emr-ort1.30.tool-run.json"))
    assert metrics(committed["W8/squeezenet/xeon-emr-ort1.30-t1/latency"])["latency"] == pytest.approx(got["model"], rel=1e-9)


def test_committed_document_predicts_every_concat():
    """No concat kernel of the committed ORT document counts 0 ms: the models with concats (SqueezeNet,
    GoogLeNet, DenseNet-121, ShuffleNet-V2) have a predictor for every kernel."""
    doc = ms.read_tool_run(EVALUATION / "xeon-emr-ort1.30.tool-run.json")
    with_concat = set()
    for case in doc["cases"]:
        if case["parameters"]["stage"] == "kernel-detection" and case["status"] == "ok":
            m = metrics(case)
            if m.get("kernel_count.concat"):
                with_concat.add(case["parameters"]["model"])
                assert m["kernel_count_without_predictor"] == 0, case["id"]
                assert "kernel_count_concat_over_4_inputs" in m
    assert with_concat == {"squeezenet", "googlenet", "densenet121", "shufflenet-v2"}


def test_committed_measured_document_is_reproduced(tmp_path):
    result = CliRunner().invoke(
        main, ["measured", "--measurements", str(MEASURED), "--output", str(tmp_path), "--name", "xeon-emr-ort1.30-measured"]
    )
    assert result.exit_code == 0, result.output
    new = ms.read_tool_run(tmp_path / "xeon-emr-ort1.30-measured.tool-run.json")
    old = ms.read_tool_run(EVALUATION / "xeon-emr-ort1.30-measured.tool-run.json")
    assert new["cases"] == old["cases"] and new["environment"] == old["environment"]
    assert new["environment"]["gpu"] is None and new["environment"]["cpu_count"] == 16
    assert new["tool"]["backend"] == "measured"
    resnet = by_id(new)["W1/resnet50/xeon-emr-ort1.30-t4/measured"]
    m = metrics(resnet)
    assert m["latency_p10"] <= m["latency"] <= m["latency_p90"] and m["latency_samples"] >= 20 and m["latency_spread"] > 0


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"), env.get("PYTHONPATH")]))
    return env


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_committed_predictor_prediction_and_tamper_refusal(tmp_path):
    """The committed predictor reproduces the committed prediction; a tampered copy is refused
    before anything is decompressed or unpickled."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models": ["mobilenet-v2"], "hardware": ["xeon-emr-ort1.30-t4"], "opsets": [10]}))
    proc, doc = run_cli(
        tmp_path, "--config", str(config), "--tool-path", str(PREDICTORS), "--predictor-hashes", str(PREDICTORS / "hashes.json"), name="ok"
    )
    assert proc.returncode == 0, proc.stderr
    committed = by_id(ms.read_tool_run(EVALUATION / "xeon-emr-ort1.30.tool-run.json"))
    cid = "W8/mobilenet-v2/xeon-emr-ort1.30-t4/latency"
    assert by_id(doc)[cid]["status"] == "ok"
    assert metrics(by_id(doc)[cid]) == metrics(committed[cid])
    # D1 class: the predictors were fitted to kernels timed on this CPU, as the committed document declares
    assert by_id(doc)[cid]["independence"] == committed[cid]["independence"]
    assert committed[cid]["independence"]["class"] == "calibrated-separately"

    copy = tmp_path / "tampered"
    shutil.copytree(PREDICTORS, copy)
    marker = tmp_path / "payload-ran"
    payload = lzma.compress(pickle.dumps(_Payload(marker)))
    (copy / "xeonemr_ort130_t4" / "relu.pkl.xz").write_bytes(payload)
    proc, doc = run_cli(
        tmp_path, "--config", str(config), "--tool-path", str(copy), "--predictor-hashes", str(copy / "hashes.json"), name="tampered"
    )
    assert proc.returncode == 0, proc.stderr
    case = by_id(doc)[cid]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "predictor-hash-mismatch"
    assert "relu.pkl.xz" in case["error"]["message"] and not marker.exists()
    pickle.loads(lzma.decompress(payload))  # the refused bytes would have run code
    assert marker.exists()


def test_models_nnmeter_cannot_handle_stay_classified():
    doc = by_id(ms.read_tool_run(EVALUATION / "xeon-emr-ort1.30.tool-run.json"))
    conv1 = doc["W1/resnet50-conv1/xeon-emr-ort1.30-t1/latency"]
    assert conv1["status"] == "unsupported" and conv1["error"]["kind"] == "no-kernels"
    bert = doc["W4/bert-base/xeon-emr-ort1.30-t1/latency"]
    assert bert["status"] == "failed" and bert["error"]["kind"] == "parse-failed"
    ok = [c for c in doc.values() if c["parameters"]["stage"] == "latency-prediction" and c["status"] == "ok"]
    assert len({c["key"] for c in ok}) >= 13


def test_ortprofile_runs_without_mtap_schemas(tmp_path):
    """The measuring module imports nothing of the kit or of nn_meter (it runs on a bare machine)."""
    code = (
        "import sys, mtap_nnmeter_runner.ortprofile as o; "
        "bad = [m for m in sys.modules if m.startswith(('mtap_schemas', 'nn_meter'))]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
