"""Real nn-Meter runs (nn-meter==2.0 from PyPI, in the runner's worker subprocesses).

No device fusion rules are available here (they ship only inside nn-Meter's predictor
release zips), so detection runs with nn-Meter's built-in defaults (``KernelDetector(None)``):
no pairwise fusion, 99 kernels for MobileNet-V2. The device-specific paths (--rules-dir,
--predictor-dir) are exercised with SYNTHETIC rule files these tests write themselves
(fusing conv+relu and dwconv+relu only; not nn-Meter's released rules).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
from conftest import DATA, by_id, metrics, run_cli
from sklearn.tree import DecisionTreeRegressor
from sklearn.tree._tree import Tree

import mtap_schemas as ms
from mtap_nnmeter_runner.cases import DEFAULT_HARDWARE
from mtap_nnmeter_runner.nnmeter import DEFAULT_RULES
from mtap_nnmeter_runner.predictors import PREDICTORS, RELEASED, RULES_FILE, kernel_lists
from mtap_schemas.kinds import Exit

#: A test-made fusion-rule file in nn-Meter's format (NOT a released device rule file): fuse a
#: conv or dwconv with the relu after it. On MobileNet-V2 this merges all 35 relu kernels.
SYNTHETIC_RULES = json.dumps({"BF_conv_relu": {"obey": True}, "BF_dwconv_relu": {"obey": True}}).encode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(os.environ, HOME=str(home), **extra)


def test_kernel_detection_mobilenet_v2_and_conv1(tmp_path, write_config):
    config = write_config(models=["resnet50-conv1", "mobilenet-v2"], opsets=[10])
    proc, doc = run_cli(tmp_path, "--config", str(config), "--jobs", "2", env=_env(tmp_path))
    assert proc.returncode == Exit.OK, proc.stderr
    assert proc.stdout == ""  # nn-Meter's stdout logging stays out of the runner's stdout
    ms.validate(doc, "tool-run", 2)
    assert doc["tool"] == {"name": "nn-meter", "version": "2.0", "backend": "native",
                           "location": "PyPI nn-meter==2.0 (Python package in this environment)"}
    cases = by_id(doc)
    for hw in DEFAULT_HARDWARE:
        kernels = cases[f"W8/mobilenet-v2/{hw}/kernels"]
        assert kernels["status"] == "ok", kernels["error"]
        m = metrics(kernels)
        # nn-Meter's default rules fuse no operator pair: conv, dwconv and relu stay separate.
        assert m["kernel_count"] == 99
        assert (m["kernel_count.conv"], m["kernel_count.dwconv"], m["kernel_count.relu"]) == (35, 17, 35)
        assert (m["kernel_count.add"], m["kernel_count.fc"], m["kernel_count.gap"]) == (10, 1, 1)
        assert sum(v for k, v in m.items() if k.startswith("kernel_count.")) == 99
        assert all(x["unit"] == "count" and x["kind"] == "prediction" for x in kernels["metrics"])
        assert kernels["parameters"]["fusion_rules"] == DEFAULT_RULES
        assert kernels["parameters"]["onnx_opset"] == 10
        assert kernels["artifacts"] == []
        latency = cases[f"W8/mobilenet-v2/{hw}/latency"]
        assert latency["status"] == "unavailable" and latency["metrics"] == []
        assert latency["error"]["kind"] == "predictor-missing"
        assert "--predictor-dir" in latency["error"]["message"]
        conv1 = cases[f"W1/resnet50-conv1/{hw}/kernels"]
        assert conv1["status"] == "unsupported" and conv1["error"]["kind"] == "no-kernels"
    # Kernels nn_predict would count as 0 ms (types a predictor has no model for: GPU fc, gap, ...).
    assert metrics(cases["W8/mobilenet-v2/cortexA76cpu/kernels"])["kernel_count_without_predictor"] == 0
    assert metrics(cases["W8/mobilenet-v2/adreno640gpu/kernels"])["kernel_count_without_predictor"] == 12
    assert metrics(cases["W8/mobilenet-v2/myriadvpu/kernels"])["kernel_count_without_predictor"] == 11
    # nn-Meter was imported (worker) with HOME pointing elsewhere: the user's HOME stays clean.
    assert not (tmp_path / "home" / ".nn_meter").exists()
    # Deterministic, and the committed document is reproducible: the same cases, byte for byte.
    committed = DATA / "evaluation" / "nn-meter" / "nn-meter.tool-run.json"
    if committed.is_file():
        previous = by_id(ms.read_tool_run(committed))
        same = [i for i, c in cases.items() if c["parameters"].get("fusion_rules") == DEFAULT_RULES
                and previous.get(i, {}).get("parameters", {}).get("fusion_rules") == DEFAULT_RULES]
        assert len(same) >= 4
        for case_id in same:
            assert cases[case_id] == previous[case_id], case_id
    # --jobs 1 gives the same document as the parallel run above (--jobs defaults to the cores available)
    proc1, doc1 = run_cli(tmp_path, "--config", str(config), "--jobs", "1", env=_env(tmp_path), name="jobs1")
    assert proc1.returncode == Exit.OK, proc1.stderr
    assert ms.canonical(doc1)["cases"] == ms.canonical(doc)["cases"]
    assert {k: v for k, v in ms.canonical(doc1).items() if k != "invocation"} == {
        k: v for k, v in ms.canonical(doc).items() if k != "invocation"}


def test_rules_dir_is_sha256_checked_and_used(tmp_path, write_config):
    """--rules-dir: synthetic rule files, expected hashes from a test-made --predictor-hashes list."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "cortexA76cpu_tflite21.json").write_bytes(SYNTHETIC_RULES)
    (rules_dir / "adreno640gpu_tflite21.json").write_bytes(SYNTHETIC_RULES + b" ")  # not the pinned bytes
    # adreno630gpu: no file. myriadvpu: a file, but no expected hash for it in the list.
    (rules_dir / "myriadvpu_openvino2019r2.json").write_bytes(SYNTHETIC_RULES)
    sha = hashlib.sha256(SYNTHETIC_RULES).hexdigest()
    entry = {RULES_FILE: {"sha256": sha, "size": len(SYNTHETIC_RULES)}}
    hashes_file = tmp_path / "hashes.json"
    hashes_file.write_text(json.dumps({"format": "mtap-nnmeter-predictor-hashes/1", "predictors": {
        "cortexA76cpu_tflite21": entry, "adreno640gpu_tflite21": entry, "adreno630gpu_tflite21": entry,
        "myriadvpu_openvino2019r2": {"fc.pkl": {"sha256": sha, "size": None}}}}))
    config = write_config(models=["mobilenet-v2"], opsets=[10])
    proc, doc = run_cli(tmp_path, "--config", str(config), "--rules-dir", str(rules_dir),
                        "--predictor-hashes", str(hashes_file), env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "--rules-dir" in doc["invocation"]["command"]
    cases = by_id(doc)
    cpu = cases["W8/mobilenet-v2/cortexA76cpu/kernels"]
    assert cpu["status"] == "ok", cpu["error"]
    assert cpu["parameters"]["fusion_rules"] == "rules-dir"
    # a rules file outside the repository is recorded by name, never by its machine path
    assert cpu["artifacts"] == [{"path": "<external>/cortexA76cpu_tflite21.json", "sha256": sha}]
    m = metrics(cpu)
    # The synthetic rules really reached nn-Meter: every relu fused into its conv / dwconv.
    assert m["kernel_count"] == 64 and "kernel_count.relu" not in m
    assert (m["kernel_count.conv_relu"], m["kernel_count.dwconv_relu"]) == (18, 17)
    for hw, kind in (("adreno640gpu", "rules-hash-mismatch"), ("adreno630gpu", "rules-missing"),
                     ("myriadvpu", "rules-hash-mismatch")):
        for stage in ("kernels", "latency"):
            case = cases[f"W8/mobilenet-v2/{hw}/{stage}"]
            assert case["status"] == "unavailable" and case["error"]["kind"] == kind, (hw, case["error"])
            assert PREDICTORS[hw] in case["error"]["message"]


def test_missing_onnxsim_is_classified(tmp_path, write_config):
    """Hide onnx-simplifier from the import system (nn-Meter's code untouched)."""
    shadow = tmp_path / "shadow" / "onnxsim"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('onnxsim hidden by the test')\n")
    config = write_config(models=["resnet50-conv1"], hardware=["cortexA76cpu"], opsets=[10])
    env = _env(tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")]))
    proc, doc = run_cli(tmp_path, "--config", str(config), env=env)
    assert proc.returncode == Exit.OK, proc.stderr
    for case in doc["cases"]:
        assert case["status"] == "unavailable"  # a package the tool needs is missing (kinds.ERROR_KINDS)
        assert case["error"]["kind"] == "onnxsim-missing"
        assert "'NoneType' object is not callable" in case["error"]["message"]


def test_bert_base_parse_failure_never_replaces_the_committed_document(tmp_path, write_config):
    """Every case fails (BERT-base's real parse failure): the committed document, which has ok
    cases, is kept byte for byte (exit 4) and the failed run goes beside it."""
    out = tmp_path / "out"
    out.mkdir()
    committed = DATA / "evaluation" / "nn-meter" / "nn-meter.tool-run.json"
    shutil.copyfile(committed, out / "nn-meter.tool-run.json")
    config = write_config(models=["bert-base"], hardware=["myriadvpu"], opsets=[10])
    proc, _ = run_cli(tmp_path, "--config", str(config), env=_env(tmp_path))
    assert proc.returncode == Exit.KEPT_EXISTING, proc.stderr
    assert (out / "nn-meter.tool-run.json").read_bytes() == committed.read_bytes()
    assert "kept" in proc.stderr and "Traceback" not in proc.stderr
    doc = ms.read_tool_run(out / "nn-meter.refused-fewer-ok.json")
    assert len(doc["cases"]) == 2
    for case in doc["cases"]:
        assert case["status"] == "failed" and case["error"]["kind"] == "parse-failed"
        # with onnxruntime installed (a dependency since issue #19) onnx-simplifier checks with it and passes
        # BERT's opset-10 graph; nn-Meter's kernel detector then fails on it, as on opset 13
        assert "opset 10, nn-meter-kernel-detector: KeyError: 'type'" in case["error"]["message"]


# ----------------------------------------------------------------------------- predictors

#: feature vector length nn-Meter's get_predict_features builds per kernel type
FEATURES = {"conv-bn-relu": 7, "dwconv-bn-relu": 7, "fc": 4, "maxpool": 5, "avgpool": 5, "global-avgpool": 2,
            "channelshuffle": 2, "split": 2, "se": 2, "concat": 6, "hswish": 2, "bn": 2, "relu": 2, "bnrelu": 2,
            "add": 3, "addrelu": 3}


def _unit_tree(n_features: int) -> DecisionTreeRegressor:
    """A test-only kernel model that predicts 1.0 ms for every kernel (not nn-Meter's predictor)."""
    rng = np.random.default_rng(0)
    return DecisionTreeRegressor(max_depth=1).fit(rng.random((8, n_features)), np.ones(8))


class _NewerSklearnPickler(pickle.Pickler):
    """Pickle a tree with the node layout of scikit-learn >= 1.3 (extra missing_go_to_left field)."""

    def reducer_override(self, obj):
        if isinstance(obj, Tree):
            func, args, state = obj.__reduce__()
            nodes = state["nodes"]
            newer = np.zeros(nodes.shape, dtype=np.dtype(nodes.dtype.descr + [("missing_go_to_left", "u1")]))
            for name in nodes.dtype.names:
                newer[name] = nodes[name]
            return func, args, dict(state, nodes=newer)
        return NotImplemented


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def test_predictors_are_sha256_checked_before_unpickling(tmp_path, write_config):
    lists = kernel_lists()
    root = tmp_path / "predictors"
    hashes: dict[str, dict[str, dict]] = {}
    for name in RELEASED:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / RULES_FILE).write_bytes(SYNTHETIC_RULES)
        for kernel in lists[name]:
            (folder / f"{kernel}.pkl").write_bytes(pickle.dumps(_unit_tree(FEATURES[kernel])))
        hashes[name] = {f.name: {"sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "size": f.stat().st_size}
                        for f in sorted(folder.iterdir())}

    # adreno640gpu: a file replaced after its hash was pinned, by a pickle that runs code.
    marker = tmp_path / "payload-ran"
    payload = pickle.dumps(_Payload(marker))
    (root / "adreno640gpu_tflite21" / "conv-bn-relu.pkl").write_bytes(payload)
    # adreno630gpu: one file missing.
    (root / "adreno630gpu_tflite21" / "relu.pkl").unlink()
    # myriadvpu: pinned correctly, but pickled with a newer scikit-learn's tree layout.
    buf = io.BytesIO()
    _NewerSklearnPickler(buf).dump(_unit_tree(7))
    vpu = root / "myriadvpu_openvino2019r2" / "conv-bn-relu.pkl"
    vpu.write_bytes(buf.getvalue())
    hashes["myriadvpu_openvino2019r2"]["conv-bn-relu.pkl"] = {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                                                              "size": len(buf.getvalue())}
    hashes_file = tmp_path / "hashes.json"
    hashes_file.write_text(json.dumps({"format": "mtap-nnmeter-predictor-hashes/1", "predictors": hashes}))

    config = write_config(models=["mobilenet-v2"], opsets=[10])
    # --predictor-dir: the old name of --tool-path, kept as a hidden alias
    proc, doc = run_cli(tmp_path, "--config", str(config), "--predictor-dir", str(root),
                        "--predictor-hashes", str(hashes_file), env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    cases = by_id(doc)

    # The tampered file was refused and never unpickled...
    tampered = cases["W8/mobilenet-v2/adreno640gpu/latency"]
    assert tampered["status"] == "unavailable" and tampered["error"]["kind"] == "predictor-hash-mismatch"
    assert "conv-bn-relu.pkl" in tampered["error"]["message"]
    assert not marker.exists()
    # ...and would have run code had it been unpickled (the check above can fail).
    pickle.loads(payload)
    assert marker.exists()

    missing = cases["W8/mobilenet-v2/adreno630gpu/latency"]
    assert missing["status"] == "unavailable" and missing["error"]["kind"] == "predictor-missing"
    assert "relu.pkl" in missing["error"]["message"]

    incompatible = cases["W8/mobilenet-v2/myriadvpu/latency"]
    assert incompatible["status"] == "unavailable"
    assert incompatible["error"]["kind"] == "predictor-incompatible-sklearn"
    assert "incompatible dtype" in incompatible["error"]["message"]

    # cortexA76cpu: every file verified; nn-Meter's nn_predict sums 1 ms per predicted kernel.
    kernels, latency = cases["W8/mobilenet-v2/cortexA76cpu/kernels"], cases["W8/mobilenet-v2/cortexA76cpu/latency"]
    assert kernels["parameters"]["fusion_rules"] == "predictor-dir"
    assert metrics(kernels)["kernel_count"] == 64  # the predictor's own (synthetic) rules were used
    # Predictors that were refused leave kernel detection on nn-Meter's default rules.
    assert cases["W8/mobilenet-v2/adreno640gpu/kernels"]["parameters"]["fusion_rules"] == DEFAULT_RULES
    assert metrics(cases["W8/mobilenet-v2/adreno640gpu/kernels"])["kernel_count"] == 99
    assert latency["status"] == "ok", latency["error"]
    k = metrics(kernels)
    assert metrics(latency) == {"latency": float(k["kernel_count"] - k["kernel_count_without_predictor"])}
    assert latency["metrics"][0]["unit"] == "ms"
    assert {a["sha256"] for a in latency["artifacts"]} <= {h["sha256"] for h in hashes["cortexA76cpu_tflite21"].values()}
    assert len(latency["artifacts"]) == len(lists["cortexA76cpu_tflite21"]) + 1
