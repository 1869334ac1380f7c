"""The part that imports nn-Meter. Runs in a subprocess started by the runner (see nnmeter.py),
with ``HOME`` pointing at a folder the runner owns, because ``import nn_meter`` creates
``~/.nn_meter/config`` as a side effect.

    python -m mtap_nnmeter_runner.worker parse   SPEC.json RESULT.json
    python -m mtap_nnmeter_runner.worker predict SPEC.json RESULT.json

``parse``: build one model (models.py), export it to ONNX with the legacy TorchScript exporter
into a named temporary file, simplify it with onnx-simplifier exactly as nn-Meter's own torch
converter does (``nn_meter.utils.import_package.try_import_onnxsim``), convert it with nn-Meter's
ONNX converter to nn-Meter IR and run nn-Meter's ``KernelDetector`` once per fusion-rule file
(``None``: no rule file, nn-Meter's built-in default rules).
``predict``: unpickle one predictor's kernel models from sha256-verified bytes and run nn-Meter's
``nn_predict`` on the kernels found by ``parse``.
"""

from __future__ import annotations

import collections
import copy
import io
import json
import logging
import lzma
import os
import pickle
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

STAGES = ("export", "onnxsim", "nn-meter-onnx-converter", "nn-meter-kernel-detector")


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    text = " ".join(text.split())
    return text[:600] + (" ..." if len(text) > 600 else "")


def _where(exc: BaseException) -> str:
    """The innermost frame of the traceback, as ``file.py:line in func``."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    frame = tb[-1]
    path = frame.filename
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{frame.lineno} in {frame.name}"


def _quiet_nnmeter() -> None:
    """nn-Meter logs to stdout through its own handler; send it to stderr instead."""
    logger = logging.getLogger("nn-Meter")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("(nn-Meter) %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _export(model, example, opset: int) -> Any:
    import onnx
    import torch

    # nn-Meter 2.0 exports into tempfile.TemporaryFile() with torch's default exporter; with
    # torch >= 2.9 that default is the dynamo exporter (needs onnxscript, writes to paths only).
    # The legacy TorchScript exporter into a named file reproduces what nn-Meter was tested with.
    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-onnx-") as tmp:
        path = os.path.join(tmp, "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset)
        return onnx.load(path, load_external_data=False)


def _counts(kernels: list[dict[str, Any]], predictor_kernels: list[str] | None) -> dict[str, Any]:
    from nn_meter.predictor.prediction.extract_feature import get_predict_features
    from nn_meter.predictor.prediction.predict_by_kernel import merge_conv_kernels
    from nn_meter.predictor.prediction.utils import get_kernel_name

    by_type = collections.Counter(k["op"] for k in kernels)
    out: dict[str, Any] = {"total": len(kernels), "by_type": dict(sorted(by_type.items()))}
    concats = [k for k in kernels if k["op"] == "concat"]
    if concats:
        # nn-Meter's predictor features keep the channels of the first 4 inputs only (get_predict_features);
        # the builder samples 2-4 inputs: concats of more inputs are predicted from a truncated vector
        out["concat_over_4_inputs"] = sum(len(k.get("input_tensors") or []) > 4 for k in concats)
    if predictor_kernels is not None:
        # Which kernels nn_predict would actually predict: get_predict_features skips op types it
        # has no features for, and predict_model skips kernels whose predictor is not in the set.
        # Both add 0 ms silently; count them.
        features = get_predict_features(kernels)
        covered = 0
        for layer in features.values():
            op = next(iter(layer))
            if get_kernel_name(merge_conv_kernels(op)) in predictor_kernels:
                covered += 1
        out["without_predictor"] = len(kernels) - covered
    return out


def _detect_kernels(graph, spec: dict[str, Any], KernelDetector) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:  # noqa: N803
    """nn-Meter's kernel detection of ``graph`` under each predictor's rules (each rule set run once):
    the kernel counts and the kernels, per predictor."""
    detections: dict[str, Any] = {}
    kernels_by_predictor: dict[str, list[dict[str, Any]]] = {}
    by_rules: dict[str | None, list[dict[str, Any]]] = {}
    for predictor, rules in sorted(spec["rules"].items()):
        if rules not in by_rules:
            # rules None: KernelDetector(None) -> RuleReader(rule_file=None), nn-Meter's defaults
            detector = KernelDetector(rules)
            detector.load_graph(graph)
            by_rules[rules] = detector.get_kernels()
        kernels = copy.deepcopy(by_rules[rules])
        kernels_by_predictor[predictor] = kernels
        detections[predictor] = _counts(kernels, spec["kernel_lists"].get(predictor))
    return detections, kernels_by_predictor


def parse(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from mtap_nnmeter_runner.models import build

    torch.manual_seed(0)
    import nn_meter  # noqa: F401  (registers nn-Meter's logging levels)
    from nn_meter.ir_converter import model_to_graph
    from nn_meter.kernel_detector import KernelDetector
    from nn_meter.utils.import_package import try_import_onnxsim

    _quiet_nnmeter()
    model = build(spec["model"])
    if spec["input"] == "tokens":
        example = torch.zeros(spec["input_shape"], dtype=torch.long)
    else:
        example = torch.randn(*spec["input_shape"])

    attempts: list[dict[str, Any]] = []
    for opset in spec["opsets"]:
        stage = "export"
        try:
            onnx_model = _export(model, example, opset)
            stage = "onnxsim"
            simplify = try_import_onnxsim()
            if simplify is None:
                # What nn-Meter's OnnxBasedTorchConverter does next: call it. The TypeError
                # "'NoneType' object is not callable" is the published evaluation's error.
                try:
                    simplify(onnx_model)
                except TypeError as exc:
                    return {"ok": False, "kind": "onnxsim-missing", "attempts": attempts + [{
                        "opset": opset, "stage": stage, "error": _one_line(exc),
                        "where": "nn_meter.utils.import_package.try_import_onnxsim() returned None"}]}
            simplified, valid = simplify(onnx_model)
            if not valid:
                raise RuntimeError("onnxsim could not validate the simplified model")
            stage = "nn-meter-onnx-converter"
            graph = model_to_graph(simplified, "onnx")
            stage = "nn-meter-kernel-detector"
            detections, kernels_by_predictor = _detect_kernels(graph, spec, KernelDetector)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded with its stage
            attempts.append({"opset": opset, "stage": stage, "error": _one_line(exc), "where": _where(exc)})
            continue
        attempts.append({"opset": opset, "stage": "done", "error": None, "where": None})
        # the kernels travel in the result (the runner's checkpoint keeps them for --resume)
        kernels_json = json.loads(json.dumps(kernels_by_predictor, default=_jsonable, sort_keys=True))
        return {"ok": True, "opset": opset, "attempts": attempts, "detections": detections,
                "graph_nodes": len(graph), "kernels": kernels_json}
    return {"ok": False, "kind": "parse-failed", "attempts": attempts}


def _is_sklearn_incompatibility(exc: BaseException) -> bool:
    text = str(exc)
    if isinstance(exc, ValueError) and ("incompatible dtype" in text or "Did not recognise loaded array layout" in text):
        return True
    if isinstance(exc, (ModuleNotFoundError, AttributeError)) and "sklearn" in text:
        return True
    return False


def predict(spec: dict[str, Any]) -> dict[str, Any]:
    import nn_meter  # noqa: F401
    import sklearn
    from nn_meter.predictor.prediction.predict_by_kernel import nn_predict

    from mtap_nnmeter_runner.predictors import read_verified

    _quiet_nnmeter()
    folder = Path(spec["folder"])
    predictors: dict[str, Any] = {}
    pickled_by: set[str] = set()
    for fname, sha in sorted(spec["files"].items()):
        if not fname.endswith((".pkl", ".pkl.xz")):
            continue
        path = folder / fname
        try:
            data = read_verified(path, sha)
        except PermissionError as exc:
            return {"ok": False, "kind": "predictor-hash-mismatch", "message": str(exc)}
        try:
            if fname.endswith(".xz"):  # verified bytes first, then decompressed, then unpickled
                data = lzma.decompress(data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                predictors[fname.split(".pkl")[0]] = pickle.load(io.BytesIO(data))
            for w in caught:
                text = str(w.message)
                if "Trying to unpickle estimator" in text and "from version" in text:
                    pickled_by.add(text.split("from version", 1)[1].split()[0])
        except Exception as exc:  # noqa: BLE001
            kind = "predictor-incompatible-sklearn" if _is_sklearn_incompatibility(exc) else "tool-crashed"
            return {"ok": False, "kind": kind, "message": (
                f"{path}: unpickling with scikit-learn {sklearn.__version__} failed: {_one_line(exc)} "
                f"({_where(exc)})" + ("; nn-Meter's predictors were pickled with scikit-learn 0.23 and load "
                                      "with scikit-learn==1.2.2 and numpy<2" if kind != "tool-crashed" else ""))}
    results: dict[str, Any] = {}
    for model, kernels in sorted(spec["kernels"].items()):
        try:
            results[model] = {"ok": True, "latency_ms": float(nn_predict(predictors, kernels))}
        except Exception as exc:  # noqa: BLE001
            results[model] = {"ok": False, "kind": "tool-crashed",
                              "message": f"nn_meter nn_predict failed: {_one_line(exc)} ({_where(exc)})"}
    return {"ok": True, "results": results, "sklearn": sklearn.__version__,
            "pickled_with_sklearn": sorted(pickled_by)}


def sample(spec: dict[str, Any]) -> dict[str, Any]:
    """Kernel configurations from nn-Meter's builder samplers (prior or finegrained mode).

    spec: {"kernels": {type: count}, "seed": int, "mode": "prior"|"finegrained",
    "around": {type: [config, ...]} (finegrained: the large-error configurations)}."""
    import random

    import nn_meter  # noqa: F401
    import numpy as np
    from nn_meter.builder.kernel_predictor_builder.data_sampler.utils import get_sampler_for_kernel

    _quiet_nnmeter()
    out: dict[str, Any] = {}
    for i, (ktype, count) in enumerate(sorted(spec["kernels"].items())):
        random.seed(spec["seed"] + i)
        np.random.seed(spec["seed"] + i)
        mode = spec.get("mode", "prior")
        around = (spec.get("around") or {}).get(ktype)
        if mode == "finegrained" and not around:
            continue
        configs = get_sampler_for_kernel(ktype, count, mode, around)
        prefix = spec.get("prefix", "p")
        out[ktype] = {f"{prefix}{n:05d}": {"config": json.loads(json.dumps(c, default=_jsonable))}
                      for n, c in enumerate(configs)}
    return {"ok": True, "kernels": out}


#: kernel types whose builder features differ from the features nn-Meter's predictor passes, and the
#: columns of the predictor's feature vector that are the builder's. concat: nn-Meter 2.0's builder fits
#: [HW, CIN1, CIN2, CIN3, CIN4] (predictor_builder/extract_feature.py feature_for_kernel, absent inputs 0)
#: while its predictor passes [HW, number of inputs, CIN1, CIN2, CIN3, CIN4] (prediction/extract_feature.py
#: get_predict_features, padded with 0): dropping column 1 gives the builder's vector.
FEATURE_SHIMS: dict[str, list[int]] = {"concat": [0, 2, 3, 4, 5]}


def regressor_of(predictor: Any) -> Any:
    """The fitted regressor (the last step of a shimmed predictor)."""
    return predictor.steps[-1][1] if hasattr(predictor, "steps") else predictor


def _with_feature_shim(ktype: str, regressor: Any, entries: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The builder's fitted regressor behind a scikit-learn ``ColumnTransformer`` that keeps the builder's
    columns of the predictor's feature vector: ``Pipeline([features, regressor])``, plain scikit-learn, so
    nn-Meter's ``nn_predict`` calls its ``predict`` like any kernel predictor and nn-Meter's own loader can
    unpickle it. Checked on every fitted configuration: the pipeline on the predictor's features (built
    as nn-Meter's get_predict_features builds them from a kernel) equals the regressor on the builder's."""
    import numpy as np
    from nn_meter.builder.kernel_predictor_builder.predictor_builder.extract_feature import get_feature_parser
    from nn_meter.predictor.prediction.extract_feature import get_predict_features
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    keep = FEATURE_SHIMS[ktype]
    parser = get_feature_parser(ktype)
    builder_x, predictor_x = [], []
    for e in entries.values():
        cfg = dict(e["config"])
        builder_x.append(parser.get_feature_by_config(dict(cfg)))
        predictor_x.append(next(iter(get_predict_features([_kernel_for(ktype, cfg)])[0].values())))
    width = len(predictor_x[0])
    columns = ColumnTransformer([("builder_features", "passthrough", keep)], remainder="drop")
    columns.fit(np.zeros((1, width)))
    pipeline = Pipeline([("predictor_to_builder_features", columns), ("regressor", regressor)])
    same = np.allclose(pipeline.predict(predictor_x), regressor.predict(builder_x))
    if not same:
        raise AssertionError(f"{ktype}: the feature shim does not reproduce the builder's features")
    return pipeline, {"kind": "sklearn Pipeline(ColumnTransformer(passthrough columns), regressor)",
                      "predictor_features": width, "builder_features": len(builder_x[0]), "keep_columns": keep,
                      "checked_configs": len(builder_x)}


def _kernel_for(ktype: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """An nn-Meter kernel (as KernelDetector writes it, NHWC shapes) for a builder configuration."""
    if ktype == "concat":
        cins = [cfg[f"CIN{i}"] for i in range(1, 5) if cfg.get(f"CIN{i}")]
        return {"op": "concat", "input_tensors": [[1, cfg["HW"], cfg["HW"], c] for c in cins]}
    raise KeyError(ktype)


def fit(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit kernel predictors with nn-Meter's builder (``build_predictor_by_data``).

    spec: {"backend": name, "kernels": {type: {id: {"config": {...}, "latency_ms": x, "std_ms": s}}},
    "out": folder for <type>.pkl, "work": folder for nn-Meter's result tables}.
    Per kernel type nn-Meter splits the data 80/20 (``train_test_split``, random_state 10), fits a
    RandomForestRegressor (``init_predictor(type, backend)``) on the 80 % and reports the held-out
    20 %; the predictor it keeps is that model, as ``build_predictor_for_kernel`` does. The
    held-out metrics are recomputed from nn-Meter's own TestResult table with its
    ``latency_metrics``."""
    import csv

    import nn_meter  # noqa: F401
    import numpy as np
    import sklearn
    from nn_meter.builder.backend_meta.utils import Latency
    from nn_meter.builder.kernel_predictor_builder import build_predictor_by_data
    from nn_meter.builder.kernel_predictor_builder.predictor_builder.utils import latency_metrics

    _quiet_nnmeter()
    out_dir, work = Path(spec["out"]), Path(spec["work"])
    results: dict[str, Any] = {}
    for ktype, entries in sorted(spec["kernels"].items()):
        data = {ktype: {kid: {"model": kid, "config": dict(e["config"]),
                              "latency": Latency(e["latency_ms"], e.get("std_ms", 0.0))}
                        for kid, e in sorted(entries.items())}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictor, acc10, error_configs = build_predictor_by_data(
                ktype, data, backend=spec["backend"], error_threshold=0.1, mark="mtap", save_path=str(work),
                predict_label="latency")
        with open(work / "collection" / f"TestResult_{ktype}_mtap.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        true = np.array([float(r["True"]) for r in rows])
        pred = np.array([float(r["Pred"]) for r in rows])
        rmse, rmspe, _error, acc5, _acc10, acc15 = latency_metrics(pred, true)
        shim = None
        if ktype in FEATURE_SHIMS:
            predictor, shim = _with_feature_shim(ktype, predictor, data[ktype])
        (out_dir / f"{ktype}.pkl").write_bytes(pickle.dumps(predictor))
        results[ktype] = {
            **({"shim": shim} if shim else {}),
            "samples": len(entries), "train": len(entries) - len(rows), "test": len(rows),
            "rmse_ms": float(rmse), "rmspe_percent": float(rmspe), "acc5": float(acc5), "acc10": float(acc10),
            "acc15": float(acc15), "test_latency_mean_ms": float(true.mean()),
            "error_configs": json.loads(json.dumps(error_configs, default=_jsonable)),
            "regressor": type(regressor_of(predictor)).__name__,
            "regressor_params": {k: v for k, v in sorted(regressor_of(predictor).get_params().items())
                                 if isinstance(v, (int, float, str, bool)) or v is None}}
    return {"ok": True, "results": results, "sklearn": sklearn.__version__}


def _nnmeter_cli(*args: str) -> None:
    """Run nn-Meter's own command line (``nn-meter ARGS``) in a subprocess of this worker's HOME."""
    import subprocess

    code = "import sys; from nn_meter.utils.nn_meter_cli.interface import nn_meter_cli; sys.argv = sys.argv[1:]; nn_meter_cli()"
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code, "nn-meter", *args], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"nn-meter {' '.join(args)} failed: {done.stderr.strip()[-400:]}")


def _register_ort_workspace(ws: Path, backend_config: dict[str, Any]) -> Path:
    """Register the ``ort_cpu`` backend and create an nn-Meter workspace for it, as nn-Meter documents a
    customized backend (``nn-meter register --backend META.yaml``; ``nn-meter create --customized-workspace
    WS --backend ort_cpu``). Returns the workspace folder (``ws/workspace``)."""
    import yaml

    import mtap_nnmeter_runner

    ws.mkdir(parents=True, exist_ok=True)
    config = ws / "ort_cpu_config.yaml"
    config.write_text(yaml.safe_dump(backend_config))
    meta = ws / "ort_cpu_meta.yaml"
    package_location = str(Path(mtap_nnmeter_runner.__file__).resolve().parents[1])
    meta.write_text(yaml.safe_dump({"builtin_name": "ort_cpu", "package_location": package_location,
                                    "class_module": "mtap_nnmeter_runner.backend", "class_name": "OrtCpuBackend",
                                    "defaultConfigFile": str(config)}))
    _nnmeter_cli("register", "--backend", str(meta))
    _nnmeter_cli("create", "--customized-workspace", str(ws / "workspace"), "--backend", "ort_cpu")
    return ws / "workspace"


def smoke(spec: dict[str, Any]) -> dict[str, Any]:
    """nn-Meter's builder end to end with the ``ort_cpu`` backend, on a few small kernels.

    As nn-Meter documents a customized backend: ``nn-meter register --backend META.yaml``, ``nn-meter
    create --customized-workspace WS --backend ort_cpu``, ``builder_config.init(WS)``,
    ``connect_backend("ort_cpu")``; kernel configurations from nn-Meter's prior samplers, built with
    nn-Meter's torch blocks (exported with ``dynamo=False``: nn-Meter's ``save_model`` uses torch's
    default exporter, which needs onnxscript in torch >= 2.9), profiled by nn-Meter's
    ``profile_models`` through the backend (ONNX Runtime), fitted by ``build_predictor_by_data``.

    spec: {"workspace": dir, "threads": n, "kernels": {type: count}, "seed": int}."""
    import random

    import numpy as np

    from mtap_nnmeter_runner.ortprofile import export_kernel, load_blocks

    ws = Path(spec["workspace"])
    _register_ort_workspace(ws, {"THREADS": int(spec["threads"])})

    import nn_meter  # noqa: F401
    from nn_meter.builder import builder_config, profile_models
    from nn_meter.builder.backends import connect_backend, list_backends
    from nn_meter.builder.kernel_predictor_builder import build_predictor_by_data
    from nn_meter.builder.kernel_predictor_builder.data_sampler.utils import get_sampler_for_kernel

    _quiet_nnmeter()
    builder_config.init(str(ws / "workspace"))
    backend = connect_backend("ort_cpu")
    backend.test_connection()
    blocks = load_blocks(Path(nn_meter.__file__).parent / "builder")
    kernels_dir = Path(builder_config.get("WORKSPACE", "predbuild")) / "kernels"
    kernels_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for i, (ktype, count) in enumerate(sorted(spec["kernels"].items())):
        random.seed(spec["seed"] + i)
        np.random.seed(spec["seed"] + i)
        models: dict[str, dict[str, Any]] = {ktype: {}}
        for n, cfg in enumerate(get_sampler_for_kernel(ktype, count, "prior")):
            cfg = json.loads(json.dumps(cfg, default=_jsonable))
            onnx_bytes, shapes = export_kernel(blocks, ktype, cfg)
            path = kernels_dir / f"{ktype}_{n}.onnx"
            path.write_bytes(onnx_bytes)
            models[ktype][f"k{n}"] = {"model": str(path), "shapes": shapes, "config": cfg}
        profiled = profile_models(backend, models, mode="predbuild", save_name=f"profiled_{ktype}.json")
        latencies = [m["latency"].avg for m in profiled[ktype].values() if "latency" in m]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictor, acc10, _errors = build_predictor_by_data(ktype, profiled, backend="ort_cpu", save_path=None)
        first = next(iter(profiled[ktype].values()))
        from nn_meter.builder.kernel_predictor_builder.predictor_builder.extract_feature import get_feature_parser

        feature = get_feature_parser(ktype).get_feature_by_config(dict(first["config"]))
        results[ktype] = {"profiled": len(latencies), "latencies_ms": latencies, "acc10": float(acc10),
                          "prediction_ms": float(predictor.predict([feature])[0]),
                          "regressor": type(predictor).__name__}
    return {"ok": True, "backends": list_backends(), "backend_class": type(backend).__name__,
            "threads": backend.profiler.threads, "results": results}


def _save_model_legacy_export(model, model_path, implement):
    """nn-Meter's fusion_rule_tester.utils.save_model for ``implement == "torch"`` with one change:
    ``dynamo=False``. nn-Meter calls ``torch.onnx.export`` with torch's default exporter, which in torch
    >= 2.9 is the dynamo exporter (needs onnxscript); every other argument is nn-Meter's."""
    import torch
    from nn_meter.builder.nn_modules.torch_networks.utils import get_inputs_by_shapes

    if implement != "torch":
        raise NotImplementedError("only nn-Meter's torch test cases are built here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model["model"], get_inputs_by_shapes(model["shapes"]), model_path + ".onnx",
                          input_names=["input"], output_names=["output"], verbose=False, export_params=True,
                          opset_version=12, do_constant_folding=True, dynamo=False)
    return model_path + ".onnx"


def fusion(spec: dict[str, Any]) -> dict[str, Any]:
    """nn-Meter's fusion-rule detection (``nn_meter.builder.backend_meta.fusion_rule_tester``) on the
    ``ort_cpu`` backend.

    The workspace is made as nn-Meter documents it (register the backend, create a customized
    workspace); its ``ruletest_config.yaml`` is nn-Meter's default with ``IMPLEMENT: torch`` (the
    default is tensorflow), ``DETAIL: true`` (the decision keeps the latencies) and without ``MON``
    (nn-Meter 2.0's torch ``MultipleOutNodes`` raises NotImplementedError for every model).

    spec["mode"]:
    - ``generate``: nn-Meter's ``FusionRuleTester`` test cases, each saved with its ``save_testcase()``
      (a failure is recorded instead of ending the run, as nn-Meter's ``generate()`` would), exported
      with ``dynamo=False`` (``_save_model_legacy_export``); the ONNX files are copied to ``spec["out"]``.
    - ``local``: generate, then profile with nn-Meter's ``profile_models(backend, testcases,
      mode="ruletest")`` through ``ort_cpu`` in this process, pinned to ``spec["cpus"]``, ``rounds``
      times over the same files, then detect.
    - ``detect``: nn-Meter's ``detect_fusion_rule`` on latencies measured elsewhere (``spec["measured"]``:
      {test case: {model: [stats of each round]}}, e.g. by ``ortprofile --fusion`` on the device).

    Detection: nn-Meter's ``detect_fusion_rule`` on the per-model median over the rounds (the rules
    kept) and on each round alone (its stability)."""
    mode = spec["mode"]
    ws = _register_ort_workspace(Path(spec["workspace"]),
                                 {"THREADS": int(spec.get("threads", 1)), "TIMING": spec.get("timing") or None})
    ruletest, dropped_other, error = _ruletest_config(ws / "configs" / "ruletest_config.yaml", spec.get("testcases"))
    if error is not None:
        return error

    import nn_meter  # noqa: F401
    from nn_meter.builder import builder_config
    from nn_meter.builder.backend_meta.fusion_rule_tester import utils as frt_utils

    _quiet_nnmeter()
    builder_config.init(str(ws))
    frt_utils.save_model = _save_model_legacy_export  # BaseTestCase.save_testcase imports it at call time
    from nn_meter.builder.backend_meta.fusion_rule_tester.test_fusion_rule import FusionRuleTester

    config = builder_config.get_module("ruletest")
    common = {"ruletest_config": {k: v for k, v in ruletest.items() if k != "WORKSPACE"},
              "not_tested": {t: "nn-Meter 2.0's torch MultipleOutNodes raises NotImplementedError for every model"
                             for t in dropped_other}}
    testcases: dict[str, Any] = {}
    failed: dict[str, str] = dict(spec.get("failed") or {})
    if mode in ("generate", "local"):
        for name, cls in FusionRuleTester()._testcases.items():
            try:
                testcases[name] = cls(config).save_testcase()
            except Exception as exc:  # noqa: BLE001 - recorded per test case
                failed[name] = f"{_one_line(exc)} ({_where(exc)})"
    if mode == "generate":
        return {"ok": True, "testcases": _copy_testcases(testcases, Path(spec["out"])), "failed": failed, **common}

    info: dict[str, Any] = {}
    if mode == "local":
        measured, info = _profile_testcases(spec, ws, testcases)
    else:
        measured = spec["measured"]
    decisions, per_round = _fusion_decisions(measured)
    return {"ok": True, "rules": json.loads(json.dumps(decisions, default=_jsonable)), "per_round": per_round,
            "measured": measured, "failed": failed, "emp_alpha": config["EMP_ALPHA"], **info, **common}


def _ruletest_config(cfg_path: Path, wanted: list[str] | None) -> tuple[dict[str, Any], list[str], dict[str, Any] | None]:
    """Rewrite the workspace's ``ruletest_config.yaml`` for the run (``IMPLEMENT: torch``, ``DETAIL: true``,
    no ``OTHER_TESTCASES``, only the ``wanted`` basic test cases): the config, the test cases dropped and
    the error result of an unknown test case (then nothing is written)."""
    import yaml

    ruletest = yaml.safe_load(cfg_path.read_text())
    default_basic = list(ruletest["BASIC_TESTCASES"])
    dropped_other = list(ruletest.get("OTHER_TESTCASES") or [])
    ruletest["IMPLEMENT"] = "torch"
    ruletest["DETAIL"] = True
    ruletest["OTHER_TESTCASES"] = []
    if wanted:
        unknown = [t for t in wanted if t.removeprefix("BF_") not in default_basic]
        if unknown:
            return ruletest, dropped_other, {"ok": False, "kind": "invalid-value", "message": f"unknown test case {unknown[0]!r}; nn-Meter's are "
                                             + ", ".join("BF_" + b for b in default_basic)}
        ruletest["BASIC_TESTCASES"] = [t.removeprefix("BF_") for t in wanted]
    cfg_path.write_text(yaml.safe_dump(ruletest, sort_keys=False))
    return ruletest, dropped_other, None


def _copy_testcases(testcases: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy each test case's ONNX files to ``out``: the plan ({case: {model: {"model": file name, "shapes"}}})."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    plan: dict[str, Any] = {}
    for name, case in testcases.items():
        plan[name] = {}
        for part, model in case.items():
            src = Path(model["model"])
            shutil.copyfile(src, out / src.name)
            plan[name][part] = {"model": src.name, "shapes": json.loads(json.dumps(model["shapes"], default=_jsonable))}
    return plan


def _profile_testcases(spec: dict[str, Any], ws: Path, testcases: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Profile the test cases here with nn-Meter's ``profile_models`` through ``ort_cpu``, ``spec["rounds"]``
    times, pinned to ``spec["cpus"]``: the latencies of each round ({case: {model: [stats]}}) and what
    the run saw (ORT's optimized ops, affinity, threads, timing, the null model, profile errors)."""
    import copy

    from nn_meter.builder import profile_models
    from nn_meter.builder.backends import connect_backend

    measured: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if spec.get("cpus"):
        os.sched_setaffinity(0, [int(c) for c in spec["cpus"]])
    backend = connect_backend("ort_cpu")
    backend.test_connection()
    for r in range(int(spec.get("rounds", 1))):
        backend.profiler.records = {}
        profile_models(backend, copy.deepcopy(testcases), mode="ruletest", save_name=f"profiled_results_round{r + 1}.json")
        for name, case in testcases.items():
            for part, model in case.items():
                rec = backend.profiler.records.get(str(model["model"]))
                if rec is not None:
                    measured.setdefault(name, {}).setdefault(part, []).append(rec)
    from mtap_nnmeter_runner import ortprofile

    ort_ops = {name: {part: ortprofile.optimized_ops(Path(model["model"]).read_bytes(), backend.profiler.threads)
                      for part, model in case.items()} for name, case in testcases.items()}
    info = {"ort_ops": ort_ops, "affinity": sorted(os.sched_getaffinity(0)), "threads": backend.profiler.threads,
            "timing": backend.profiler.timing,
            "null_model": ortprofile.measure(ortprofile.null_model(), [backend.profiler.threads],
                                             **backend.profiler.timing)[f"t{backend.profiler.threads}"]}
    error_log = ws / "fusion_rule_test" / "results" / "profile_error.log"
    if error_log.is_file():
        info["profile_errors"] = error_log.read_text()
    return measured, info


def _fusion_decisions(measured: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """nn-Meter's ``detect_fusion_rule`` on the per-model median over the rounds (the rules kept) and on
    each round alone (its stability)."""
    import statistics

    from nn_meter.builder.backend_meta import fusion_rule_tester as frt
    from nn_meter.builder.backend_meta.utils import Latency

    def as_profiled(pick) -> dict[str, Any]:
        """nn-Meter's profiled-results form ({case: {model: {"latency": Latency}}}) of the complete test cases."""
        out: dict[str, Any] = {}
        for name, parts in measured.items():
            lat = {part: pick(runs) for part, runs in parts.items()}
            if all(v is not None for v in lat.values()):
                out[name] = {part: {"latency": Latency(*v)} for part, v in lat.items()}
        return out

    pooled = as_profiled(lambda runs: (statistics.median(x["median"] for x in runs),
                                       statistics.median(x["std"] for x in runs)) if runs else None)
    decisions = frt.detect_fusion_rule(pooled)
    rounds = max((len(runs) for parts in measured.values() for runs in parts.values()), default=0)
    per_round = []
    for r in range(rounds):
        one = as_profiled(lambda runs, r=r: (runs[r]["median"], runs[r]["std"]) if len(runs) > r else None)
        per_round.append({n: d["obey"] for n, d in frt.detect_fusion_rule(one).items()})
    return decisions, per_round

VERBS = ("parse", "predict", "sample", "fit", "smoke", "fusion")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in VERBS:
        print(f"usage: python -m mtap_nnmeter_runner.worker {'|'.join(VERBS)} SPEC.json RESULT.json", file=sys.stderr)
        return 2
    verb, spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = {"parse": parse, "predict": predict, "sample": sample, "fit": fit, "smoke": smoke, "fusion": fusion}[verb](spec)
    Path(out_path).write_text(json.dumps(result, sort_keys=True, default=_jsonable))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
