"""Drive nn-Meter through worker subprocesses and turn what they report into tool-run cases.

nn-Meter is only ever imported inside ``python -m mtap_nnmeter_runner.worker`` processes whose
``HOME`` is a temporary folder this runner creates and removes: ``import nn_meter`` writes
``~/.nn_meter/config/{settings,predictors}.yaml``, and the runner must not touch the user's.
That folder's ``settings.yaml`` points nn-Meter's ``data_folder`` at another temporary folder;
nn-Meter's own predictor loader (which would download) is never called.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cases import ModelSpec, Plan
from .predictors import PREDICTORS, RULES_FILE, Check, check, kernel_lists, read_verified

#: Packages whose versions decide the result (recorded in environment.packages).
PACKAGES = ("nn-meter", "torch", "onnx", "onnxsim", "scikit-learn", "numpy", "setuptools", "protobuf")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def nnmeter_version() -> str | None:
    try:
        return importlib.metadata.version("nn-meter")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class Rules:
    """The fusion-rule file kernel detection uses for one predictor, or why there is none."""

    path: Path | None
    sha256: str | None
    origin: str  # "predictor-dir" | "rules-dir" | DEFAULT_RULES | "missing"
    ref: str | None = None  # path recorded in artifacts
    problem: tuple[str, str] | None = None  # (kind, message)


@dataclass
class Outcome:
    parse: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> worker result
    predict: dict[str, dict[str, Any]] = field(default_factory=dict)  # predictor -> worker result
    checks: dict[str, Check] = field(default_factory=dict)  # hardware -> predictor check
    rules: dict[str, Rules] = field(default_factory=dict)  # hardware -> rules


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _worker(verb: str, spec: dict[str, Any], work: Path, tag: str, timeout_s: int) -> dict[str, Any]:
    """Run one worker; a crash or timeout becomes a result with a classified error."""
    spec_path = work / f"{tag}.spec.json"
    out_path = work / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec, sort_keys=True))
    env = dict(os.environ)
    env["HOME"] = str(work / "home")
    env["PYTHONWARNINGS"] = "ignore"
    cmd = [sys.executable, "-m", "mtap_nnmeter_runner.worker", verb, str(spec_path), str(out_path)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "kind": "timeout", "message": f"worker {verb} {tag} exceeded {timeout_s} s", "attempts": []}
    if proc.returncode != 0 or not out_path.is_file():
        tail = " | ".join(line.strip() for line in (proc.stderr or "").strip().splitlines()[-3:])
        return {"ok": False, "kind": "tool-crashed", "attempts": [],
                "message": f"worker {verb} {tag} exited with {proc.returncode}: {tail[-600:] or 'no output'}"}
    return json.loads(out_path.read_text())


def _prepare_home(work: Path) -> None:
    """A private HOME whose nn-Meter settings point data_folder into the work folder."""
    config = work / "home" / ".nn_meter" / "config"
    config.mkdir(parents=True)
    (config / "settings.yaml").write_text(f"data_folder: {work / 'nn-meter-data'}\n")


#: parameters.fusion_rules when kernel detection ran with nn-Meter's built-in rules
DEFAULT_RULES = "nn-meter-defaults (no device fusion rules given)"


def _rules_for(hw: str, chk: Check, rules_dir: Path | None, expected: dict[str, Any], hashes_source: str,
               work: Path, rel: Callable[[Path], str]) -> Rules:
    """Device fusion rules (predictor dir, else --rules-dir) or nn-Meter's built-in defaults.

    Without a rule file nn-Meter's ``KernelDetector(None)`` reads no rule
    (``RuleReader(rule_file=None)``): ``rules_default`` (MON 0, FN True), no pairwise
    ``BF_*`` fusion, only its packaged multi-operator fusion units. That is what nn-Meter itself
    does, not a device's runtime: the counts are not device-specific.
    """
    name = PREDICTORS[hw]
    if chk.ok and chk.folder is not None and chk.files is not None:
        # Same bytes as were hashed: a verified private copy, so detection and prediction agree.
        data = read_verified(chk.folder / RULES_FILE, chk.files[RULES_FILE])
        copy = work / f"rules-{name}.json"
        copy.write_bytes(data)
        return Rules(copy, chk.files[RULES_FILE], "predictor-dir", f"{name}/{RULES_FILE} (predictor dir)")
    if rules_dir is None:
        return Rules(None, None, DEFAULT_RULES)
    path = rules_dir / f"{name}.json"
    if not path.is_file():
        return Rules(None, None, "missing", problem=(
            "rules-missing",
            f"{path}: --rules-dir has no fusion rules for {name}; nn-Meter 2.0 ships them only inside the "
            f"predictor release archive {name}.zip (its {RULES_FILE}): copy that file to {path.name}, or "
            "leave --rules-dir out to use nn-Meter's built-in default rules"))
    want = (expected.get(name) or {}).get(RULES_FILE, {}).get("sha256")
    digest = _sha256(path)
    if want is None or digest != want:
        return Rules(None, None, "missing", problem=(
            "rules-hash-mismatch",
            f"{path}: sha256 {digest}, expected {want or 'an entry ' + name + '/' + RULES_FILE} ({hashes_source}: "
            f"nn-Meter's released {name} fusion rules)"))
    return Rules(path, digest, "rules-dir", rel(path))


def execute(plan: Plan, predictor_dir: Path | None, expected: dict[str, Any], hashes_source: str,
            rules_dir: Path | None, rel: Callable[[Path], str], step: Callable[[str], None]) -> Outcome:
    out = Outcome()
    lists = kernel_lists()
    work = Path(tempfile.mkdtemp(prefix="mtap-nnmeter-"))
    try:
        _prepare_home(work)
        for hw in plan.hardware:
            name = PREDICTORS[hw]
            out.checks[hw] = check(predictor_dir, name, lists.get(name, []), expected, hashes_source)
            out.rules[hw] = _rules_for(hw, out.checks[hw], rules_dir, expected, hashes_source, work, rel)
        # None: nn-Meter's KernelDetector(None), i.e. its built-in default rules.
        rules = {PREDICTORS[hw]: (str(r.path) if r.path is not None else None)
                 for hw, r in out.rules.items() if r.problem is None}
        for model in plan.models:
            step(f"parse {model.name}")
            spec = {"model": model.name, "input": model.input, "input_shape": list(model.input_shape),
                    "opsets": plan.opsets, "rules": rules, "kernel_lists": lists,
                    "kernels_out": str(work / f"kernels-{model.name}.json")}
            out.parse[model.name] = _worker("parse", spec, work, f"parse-{model.name}", plan.timeout_s)
        for hw in plan.hardware:
            chk, name = out.checks[hw], PREDICTORS[hw]
            parsed = {m.name: str(work / f"kernels-{m.name}.json") for m in plan.models
                      if out.parse[m.name].get("ok") and out.parse[m.name]["detections"].get(name, {}).get("total")}
            if not chk.ok or not parsed or name in out.predict:
                continue
            step(f"predict {name}")
            spec = {"predictor": name, "folder": str(chk.folder), "files": chk.files, "kernels": parsed}
            out.predict[name] = _worker("predict", spec, work, f"predict-{name}", plan.timeout_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- cases


def _parse_failure(result: dict[str, Any]) -> tuple[str, str]:
    attempts = result.get("attempts") or []
    parts = []
    for a in attempts:
        where = f" ({a['where']})" if a.get("where") else ""
        parts.append(f"opset {a['opset']}, {a['stage']}: {a['error']}{where}")
    kind = result.get("kind", "parse-failed")
    if kind == "onnxsim-missing":
        head = ("onnx-simplifier is not installed (module onnxsim; pip install onnxsim): nn-Meter's torch "
                "converter calls the None returned by try_import_onnxsim()")
    elif kind == "parse-failed":
        head = "nn-Meter could not turn the model into kernels"
    else:
        head = result.get("message", "worker failed")
    return kind, head + (": " + "; ".join(parts) if parts else "")


def _metric(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "kind": "prediction", **extra}


def _slug(kernel_type: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in kernel_type.lower())


def build_cases(plan: Plan, outcome: Outcome | None, tool_missing: str | None) -> list[dict[str, Any]]:
    cases = []
    models = {m.name: m for m in plan.models}
    for planned in plan.cases():
        case = dict(planned)
        case["parameters"] = dict(planned["parameters"])
        case.update(status="ok", error=None, metrics=[], artifacts=[])
        model: ModelSpec = models[case["parameters"]["model"]]
        hw = case["hardware"]
        name = PREDICTORS[hw]
        latency = case["parameters"]["stage"] == "latency-prediction"
        cases.append(case)

        def fail(status: str, kind: str, message: str, case: dict[str, Any] = case) -> None:
            case.update(status=status, error={"kind": kind, "message": message})

        if tool_missing or outcome is None:
            fail("unavailable", "package-missing", tool_missing or "nn-Meter was not run")
            continue
        rules, chk = outcome.rules[hw], outcome.checks[hw]
        result = outcome.parse[model.name]
        if rules.problem is not None:
            fail("unavailable", *rules.problem)
            continue
        case["parameters"]["fusion_rules"] = rules.origin
        if rules.path is not None:
            case["artifacts"].append({"path": rules.ref, "sha256": rules.sha256})
        if not result.get("ok"):
            fail("failed", *_parse_failure(result))
            continue
        case["parameters"]["onnx_opset"] = result["opset"]
        detection = result["detections"][name]
        if detection["total"] == 0:
            why = ("; ModelGraph.refresh() drops every node with neither inbound nor outbound edges, so a "
                   "single-operator model has nothing to predict") if result["graph_nodes"] == 1 else ""
            fail("unsupported", "no-kernels",
                 f"nn-Meter's KernelDetector found no kernel in this model (nn-Meter IR: {result['graph_nodes']} "
                 f"node(s)){why}")
            continue
        if not latency:
            case["metrics"].append(_metric("kernel_count", detection["total"], "count"))
            for kernel_type, count in detection["by_type"].items():
                case["metrics"].append(_metric(f"kernel_count.{_slug(kernel_type)}", count, "count"))
            if "without_predictor" in detection:
                case["metrics"].append(_metric("kernel_count_without_predictor", detection["without_predictor"], "count"))
            continue
        if not chk.ok:
            fail("unavailable", chk.kind or "predictor-missing", chk.message or "predictor not available")
            continue
        predicted = outcome.predict.get(name)
        if predicted is None or not predicted.get("ok"):
            predicted = predicted or {"kind": "tool-crashed", "message": "predict worker did not run"}
            status = "unavailable" if predicted.get("kind") == "predictor-hash-mismatch" else "failed"
            fail(status, predicted.get("kind", "tool-crashed"), predicted.get("message") or "predict worker failed")
            continue
        one = predicted["results"].get(model.name)
        if not one or not one.get("ok"):
            fail("failed", (one or {}).get("kind", "tool-crashed"), (one or {}).get("message", "no prediction"))
            continue
        case["parameters"]["sklearn"] = predicted["sklearn"]
        if predicted.get("pickled_with_sklearn"):
            case["parameters"]["pickled_with_sklearn"] = ",".join(predicted["pickled_with_sklearn"])
        case["metrics"].append(_metric("latency", one["latency_ms"], "ms", timing="device"))
        assert chk.files is not None
        case["artifacts"] = [{"path": f"{name}/{f} (predictor dir)", "sha256": s} for f, s in sorted(chk.files.items())]
    return cases


def tool_location() -> str | None:
    """Where the tool came from (a PyPI package; its install path varies per venv, so it is not recorded)."""
    version = nnmeter_version()
    return f"PyPI nn-meter=={version} (Python package in this environment)" if version else None
