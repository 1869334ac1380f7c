"""Issue #28: fusion rules detected with nn-Meter's rule tester on the ort_cpu backend, the concat feature
shim, and resumable sampling/profiling. Real runs on this machine's CPU, on a few test cases."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, ROOT

from mtap_nnmeter_runner import builder, fusion
from mtap_nnmeter_runner.cli import main
from mtap_nnmeter_runner.nnmeter import _worker
from mtap_schemas.kinds import Exit

TRIAL = DATA / "profiles" / "nn-meter" / "fusion-rules" / "amd-epyc-zen4-dev-ort1.32-t1"
MEASURED = DATA / "profiles" / "nn-meter" / "measurements"


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _rule_reader_fusible(rule_file: Path, tmp_path: Path) -> list[list[str]]:
    """nn-Meter's own RuleReader on the file (in a subprocess with a private HOME: importing nn_meter writes ~/.nn_meter)."""
    code = ("import json, sys; from nn_meter.kernel_detector.rule_reader import RuleReader; "
            "print(json.dumps(sorted(RuleReader(sys.argv[1]).fusible)))")
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", code, str(rule_file)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_detect_fusion_on_this_cpu(tmp_path):
    out = tmp_path / "rules"
    cpus = os.sched_getaffinity(0)
    result = CliRunner().invoke(main, ["detect-fusion", "--output", str(out), "--rounds", "2",
                                       "--testcases", "BF_conv_relu,BF_conv_add,BF_reshape_fc"])
    assert result.exit_code == 0, result.output
    assert os.sched_getaffinity(0) == cpus
    rules = json.loads((out / "fusion_rules.json").read_text())
    assert sorted(rules) == ["BF_conv_add", "BF_conv_relu"] and all(isinstance(r["obey"], bool) for r in rules.values())
    doc = json.loads((out / "detection.json").read_text())
    assert doc["format"] == fusion.DETECTION_FORMAT and doc["nn_meter"] == "2.0" and doc["threads"] == 1
    assert doc["onnxruntime"] and doc["cpu"]["model"] and doc["rounds"] == 2 and len(doc["affinity"]) == 1
    assert doc["rule_file"]["sha256"] == hashlib.sha256((out / "fusion_rules.json").read_bytes()).hexdigest()
    # nn-Meter's torch Linear cannot take its own reshape output: recorded, not fatal
    assert "BF_reshape_fc" in doc["not_built"] and doc["summary"]["not_tested"] == ["MON"]
    for name, r in doc["rules"].items():
        assert r["obey"] == rules[name]["obey"] == r["recomputed_obey"]  # nn-Meter's test, recomputed from the medians
        assert len(r["per_round"]) == 2 and all(x["median_ms"] > 0 for x in r["latencies"].values())
    # ONNX Runtime's optimised graphs: Relu goes into the convolution, Add does not
    assert doc["rules"]["BF_conv_relu"]["ort_fused"] is True and doc["rules"]["BF_conv_add"]["ort_fused"] is False
    assert doc["null_model"]["median"] > 0
    # the file is what nn-Meter's RuleReader reads
    fusible = _rule_reader_fusible(out / "fusion_rules.json", tmp_path)
    assert fusible == sorted([n.split("_")[1:] for n, r in rules.items() if r["obey"]])
    assert ["conv", "relu"] in _rule_reader_fusible(out / "fusion_rules.ort-graph.json", tmp_path)


def test_detect_fusion_split_generate_measure_detect(tmp_path):
    """The device path: test cases generated here, timed by ortprofile --fusion (no nn_meter), decided here."""
    cases = tmp_path / "cases"
    result = CliRunner().invoke(main, ["detect-fusion", "--generate", str(cases), "--testcases", "BF_fc_relu"])
    assert result.exit_code == 0, result.output
    listing = json.loads((cases / "testcases.json").read_text())
    assert sorted(listing["testcases"]["BF_fc_relu"]) == ["block", "fc", "relu"]
    meas = tmp_path / "meas"
    code = ("import sys, mtap_nnmeter_runner.ortprofile as o; r = o.main(sys.argv[1:]); "
            "bad = [m for m in sys.modules if m.startswith(('mtap_schemas', 'nn_meter'))]; assert not bad, bad; sys.exit(r)")
    subprocess.run([sys.executable, "-c", code, "--fusion", str(cases), "--out", str(meas), "--threads", "1",
                    "--cpus", "auto", "--rounds", "2"], check=True, cwd=ROOT, capture_output=True)
    lines = builder.read_jsonl(meas / "fusion.jsonl")
    assert len(lines) == 2 * (1 + 3) and all(r["t1"]["median"] > 0 for r in lines)
    assert json.loads((meas / "environment.json").read_text())["cpu_mhz"] is not None
    out = tmp_path / "rules"
    result = CliRunner().invoke(main, ["detect-fusion", "--measurements", str(meas), "--threads", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "detection.json").read_text())
    assert list(doc["rules"]) == ["BF_fc_relu"] and doc["rules"]["BF_fc_relu"]["ort_fused"] is True  # Gemm + Relu -> FusedGemm
    assert doc["rounds"] == 2 and doc["source"]["measurements"][0]["path"].endswith("fusion.jsonl")


def test_committed_trial_detection_is_consistent():
    doc = json.loads((TRIAL / "detection.json").read_text())
    rules = json.loads((TRIAL / "fusion_rules.json").read_text())
    assert doc["rule_file"]["sha256"] == hashlib.sha256((TRIAL / "fusion_rules.json").read_bytes()).hexdigest()
    assert doc["cpu"]["model"] == "AMD EPYC" and doc["label"] == TRIAL.name  # this development machine, not the Xeon
    assert doc["summary"]["tested"] == len(rules) == 78 and doc["rounds"] == 3
    for name, r in doc["rules"].items():
        assert rules[name]["obey"] == r["obey"] == r["recomputed_obey"]
        assert len(r["per_round"]) == 3
    assert doc["summary"]["obey"] == sorted(n for n, r in rules.items() if r["obey"])


@pytest.mark.parametrize("args, needle", [
    (["detect-fusion", "--output", "OUT", "--threads", "1,4"], "one thread count"),
    (["detect-fusion", "--output", "OUT", "--testcases", "BF_nope_relu"], "unknown test case 'BF_nope_relu'"),
    (["detect-fusion"], "--output"),
    (["detect-fusion", "--output", "OUT", "--measurements", "MISSING"], "--measurements"),
    (["build-predictor", "--name", "x", "--measurements", "MISSING", "--output", "OUT", "--fusion-rules", "BAD"],
     "--fusion-rules"),
    (["build-predictor", "--name", "x", "--threads", "1", "--output", "OUT", "--fusion-rules", "4=x.json"], "4 thread"),
    (["sample", "--output", "OUT/plan.json", "--scale-for", "relu=2"], "--scale-for"),
    (["sample", "--output", "OUT/plan.json", "--scale-for", "conv=1"], "unknown kernel type 'conv'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    (tmp_path / "MISSING").mkdir()
    (tmp_path / "OUT").mkdir()
    (tmp_path / "BAD").write_text('{"BF_conv_relu": {"obey": "yes"}}')
    args = [str(tmp_path / a) if a.split("/")[0] in ("OUT", "MISSING", "BAD") else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == Exit.USER_ERROR and needle in _one_error_line(result)
    assert not list((tmp_path / "OUT").iterdir())


def test_concat_predictor_takes_nn_meters_predictor_features(tmp_path):
    """nn-Meter 2.0's builder fits concat on 5 features, its predictor passes 6: the fitted predictor is
    shipped behind a feature shim and nn_predict gives concat kernels their time (it raised before)."""
    records = builder.read_jsonl(MEASURED / "2026-12-01-xeon-emr" / "kernels.jsonl")
    data = {"concat": builder.kernel_data(records, 1)["concat"]}
    result = _worker("fit", {"backend": "ort_cpu", "kernels": data, "out": str(tmp_path), "work": str(tmp_path)}, "fit", 600)
    assert result["ok"], result
    shim = result["results"]["concat"]["shim"]
    assert shim["predictor_features"] == 6 and shim["builder_features"] == 5 and shim["keep_columns"] == [0, 2, 3, 4, 5]
    kernels = [{"op": "concat", "name": "concat#1", "input_tensors": [[1, 28, 28, 64], [1, 28, 28, 32]],
                "inputh": 28, "inputw": 28, "cin": 64, "cout": 96, "inbounds": [], "outbounds": []}]
    code = ("import pickle, sys, json; from nn_meter.predictor.prediction.predict_by_kernel import nn_predict; "
            "p = pickle.load(open(sys.argv[1], 'rb')); k = json.loads(sys.argv[2]); "
            "r = p.steps[-1][1]; print(json.dumps([nn_predict({'concat': p}, k), float(r.predict([[28, 64, 32, 0, 0]])[0])]))")
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "concat.pkl"), json.dumps(kernels)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    predicted, direct = json.loads(done.stdout.strip().splitlines()[-1])
    assert predicted == pytest.approx(direct) and predicted > 0
    # the regressor alone, as nn-Meter's builder leaves it, fails on the predictor's features
    regressor = pickle.loads((tmp_path / "concat.pkl").read_bytes()).steps[-1][1]
    with pytest.raises(ValueError, match="6 features"):
        regressor.predict([[28, 2, 64, 32, 0, 0]])


def test_sampling_campaign_counts_and_resume(tmp_path):
    counts = builder.scaled_samples(0.25, per_kernel={k: 1.0 for k in builder.CAMPAIGN_FULL})
    assert counts["conv-bn-relu"] == 10000 and counts["dwconv-bn-relu"] == 5000 and counts["fc"] == counts["add"] == 3000
    assert counts["maxpool"] == counts["avgpool"] == 3000 and counts["relu"] == counts["concat"] == 750
    plan = tmp_path / "plan.json"
    args = ["sample", "--output", str(plan), "--scale", "0.001", "--scale-for", "relu=0.002", "--kernels", "relu,add"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(plan.read_text())
    assert doc["sampling"]["counts"] == {"add": 3, "relu": 6}  # asked of nn-Meter's samplers
    got = {k: len(v) for k, v in doc["kernels"].items()}  # they may return fewer (duplicates dropped)
    assert set(got) == {"add", "relu"} and 1 <= got["add"] <= 3 and 1 <= got["relu"] <= 6
    total = sum(got.values())
    before = plan.read_bytes()
    result = CliRunner().invoke(main, args)  # the same command again keeps the plan
    assert result.exit_code == 0 and "kept" in result.output and plan.read_bytes() == before
    result = CliRunner().invoke(main, args[:-1] + ["relu"])
    assert result.exit_code == Exit.USER_ERROR and "other settings" in _one_error_line(result)
    out = tmp_path / "meas"
    prof = ["profile", "--plan", str(plan), "--output", str(out), "--threads", "1"]
    first = CliRunner().invoke(main, prof)
    assert first.exit_code == 0, first.output
    timed = (out / "kernels.jsonl").read_text().splitlines()
    assert len(timed) == total >= 2
    again = CliRunner().invoke(main, prof)  # an existing campaign is not silently restarted
    assert again.exit_code == Exit.USER_ERROR and "--resume" in _one_error_line(again)
    (out / "kernels.jsonl").write_text(timed[0] + "\n")  # as if the first call had hit its deadline
    done = CliRunner().invoke(main, prof + ["--resume"])
    assert done.exit_code == 0, done.output
    assert f"{total} of {total} timed ({total - 1} attempted in this call), 0 left" in done.output
    resumed = (out / "kernels.jsonl").read_text().splitlines()
    assert resumed[0] == timed[0] and len(resumed) == len({(json.loads(r)["kernel"], json.loads(r)["id"]) for r in resumed}) == total
    assert len(builder.read_jsonl(out / "environments.jsonl")) == 1
