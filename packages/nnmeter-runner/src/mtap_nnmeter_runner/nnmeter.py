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
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mtap_schemas.toolrun as tr
from mtap_schemas import proc
from mtap_schemas.paths import relative_to_repo

from .cases import ModelSpec, Plan
from .predictors import PREDICTORS, RELEASED, RULES_FILE, Check, check, predictor_kernels, read_verified

#: Packages whose versions decide the result (recorded in environment.packages).
PACKAGES = ("nn-meter", "torch", "onnx", "onnxsim", "scikit-learn", "numpy", "setuptools", "protobuf", "onnxruntime",
            "torchvision")


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
    kernel_lists: dict[str, list[str]] = field(default_factory=dict)  # predictor -> kernel types


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _worker(verb: str, spec: dict[str, Any], tag: str, timeout_s: float) -> dict[str, Any]:
    """Run one worker in its own temporary HOME (through mtap_schemas.proc: own process group,
    killed whole on timeout); a crash, timeout, signal or out-of-memory becomes a classified result."""
    with tempfile.TemporaryDirectory(prefix=f"mtap-nnmeter-{tag}-") as tmp:
        work = Path(tmp)
        _prepare_home(work)
        spec_path = work / f"{tag}.spec.json"
        out_path = work / f"{tag}.result.json"
        spec_path.write_text(json.dumps(spec, sort_keys=True))
        env = dict(os.environ, HOME=str(work / "home"), PYTHONWARNINGS="ignore")
        cmd = [sys.executable, "-m", "mtap_nnmeter_runner.worker", verb, str(spec_path), str(out_path)]
        result = proc.run_tool(cmd, timeout=timeout_s, env=env)
        if not result.ok:
            kind, message = result.error(timeout_s)
            return {"ok": False, "kind": kind, "message": f"worker {verb} {tag}: {message}", "attempts": []}
        try:
            return json.loads(out_path.read_text())
        except (OSError, ValueError) as exc:
            return {"ok": False, "kind": "tool-crashed", "attempts": [],
                    "message": f"worker {verb} {tag} exited 0 but left no readable result: {exc}"}


def _prepare_home(work: Path) -> None:
    """A private HOME whose nn-Meter settings point data_folder into the work folder."""
    config = work / "home" / ".nn_meter" / "config"
    config.mkdir(parents=True)
    (config / "settings.yaml").write_text(f"data_folder: {work / 'nn-meter-data'}\n")


#: parameters.fusion_rules when kernel detection ran with nn-Meter's built-in rules
DEFAULT_RULES = "nn-meter-defaults (no device fusion rules given)"


def _rules_for(hw: str, chk: Check, rules_dir: Path | None, expected: dict[str, Any], hashes_source: str,
               work: Path) -> Rules:
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
    return Rules(path, digest, "rules-dir", relative_to_repo(path))


def prepare(plan: Plan, predictor_dir: Path | None, expected: dict[str, Any], hashes_source: str,
            rules_dir: Path | None, work: Path) -> Outcome:
    """Per predictor: its files checked (nothing unpickled) and the fusion rules chosen. Rule files
    taken from a verified predictor are copied into ``work``, which must outlive the parse units."""
    out = Outcome()
    out.kernel_lists = predictor_kernels(expected)
    for hw in plan.hardware:
        name = PREDICTORS[hw]
        out.checks[hw] = check(predictor_dir, name, out.kernel_lists.get(name, []), expected, hashes_source)
        out.rules[hw] = _rules_for(hw, out.checks[hw], rules_dir, expected, hashes_source, work)
    return out


@dataclass(frozen=True)
class ParseUnit:
    """Kernel detection of one model for every predictor's rules (one worker); picklable."""

    model: ModelSpec
    opsets: tuple[int, ...]
    rules: tuple[tuple[str, str | None], ...]  # (predictor, rule file or None for nn-Meter's defaults)
    kernel_lists: tuple[tuple[str, tuple[str, ...]], ...]
    timeout: float

    @property
    def ident(self) -> str:
        return f"parse/{self.model.name}"


@dataclass(frozen=True)
class PredictUnit:
    """Latency prediction with one verified predictor for the models it has kernels of (one worker)."""

    predictor: str
    folder: str
    files: tuple[tuple[str, str], ...]  # (file name, sha256) of every verified file
    kernels: tuple[tuple[str, str], ...]  # (model, its kernels for this predictor as JSON)
    timeout: float

    @property
    def ident(self) -> str:
        return f"predict/{self.predictor}"


def parse_units(plan: Plan, outcome: Outcome, timeout: float) -> list[ParseUnit]:
    # None: nn-Meter's KernelDetector(None), i.e. its built-in default rules.
    rules = tuple(sorted((PREDICTORS[hw], str(r.path) if r.path is not None else None)
                         for hw, r in outcome.rules.items() if r.problem is None))
    lists = tuple(sorted((k, tuple(v)) for k, v in outcome.kernel_lists.items()))
    return [ParseUnit(m, tuple(plan.opsets), rules, lists, timeout) for m in plan.models]


def run_parse(u: ParseUnit) -> dict[str, Any]:
    """Worker ``parse`` for one model: opset attempts, detections per predictor and the kernels themselves."""
    spec = {"model": u.model.name, "input": u.model.input, "input_shape": list(u.model.input_shape),
            "opsets": list(u.opsets), "rules": dict(u.rules), "kernel_lists": {k: list(v) for k, v in u.kernel_lists}}
    return _worker("parse", spec, f"parse-{u.model.name}", u.timeout)


def predict_units(plan: Plan, outcome: Outcome, timeout: float) -> list[PredictUnit]:
    units = []
    for hw in plan.hardware:
        chk, name = outcome.checks[hw], PREDICTORS[hw]
        if not chk.ok or any(u.predictor == name for u in units):
            continue
        assert chk.folder is not None and chk.files is not None
        kernels = tuple((m.name, json.dumps(outcome.parse[m.name]["kernels"][name], sort_keys=True))
                        for m in plan.models
                        if outcome.parse[m.name].get("ok") and outcome.parse[m.name]["detections"].get(name, {}).get("total"))
        if kernels:
            units.append(PredictUnit(name, str(chk.folder), tuple(sorted(chk.files.items())), kernels, timeout))
    return units


def run_predict(u: PredictUnit) -> dict[str, Any]:
    spec = {"predictor": u.predictor, "folder": u.folder, "files": dict(u.files),
            "kernels": {model: json.loads(k) for model, k in u.kernels}}
    return _worker("predict", spec, f"predict-{u.predictor}", u.timeout)


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


def _slug(kernel_type: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in kernel_type.lower())


#: error kinds of the predictor check that kinds.ERROR_KINDS spells otherwise
_KIND = {"predictor-unpinned": "predictor-hash-mismatch"}


def predictor_independence(name: str) -> dict[str, Any]:
    """nn-Meter predicts from kernel predictors fitted to kernels timed on the scored device, never to the
    scored models: its cases are calibrated separately (mtap_schemas.kinds.REFERENCE_CLASSES)."""
    if name in RELEASED:
        what = f"nn-Meter's released kernel predictors ({name}), fitted by its authors to kernels timed on this device, not the scored models"
    else:
        what = ("kernel predictors built by nn-Meter's builder from kernels timed on this CPU with ONNX Runtime 1.30 "
                "(data/profiles/nn-meter/), not the scored models")
    return tr.independence("calibrated-separately", what)


def _kernel_count_metrics(detection: dict[str, Any]) -> list[dict[str, Any]]:
    """The kernel-detection stage's metrics: kernels in all, per type, without a predictor, concats over 4 inputs."""
    out = [tr.metric("kernel_count", detection["total"], "count", "prediction")]
    out += [tr.metric(f"kernel_count.{_slug(t)}", n, "count", "prediction") for t, n in detection["by_type"].items()]
    if "without_predictor" in detection:
        out.append(tr.metric("kernel_count_without_predictor", detection["without_predictor"], "count", "prediction"))
    if "concat_over_4_inputs" in detection:
        out.append(tr.metric("kernel_count_concat_over_4_inputs", detection["concat_over_4_inputs"], "count",
                             "prediction"))
    return out


def _case(planned: dict[str, Any], outcome: Outcome | None, tool_missing: str | None, model: ModelSpec) -> dict[str, Any]:
    """One planned case as a tool-run case (through mtap_schemas.toolrun's constructors)."""
    hw, name = planned["hardware"], PREDICTORS[planned["hardware"]]
    params = dict(planned["parameters"])
    artifacts: list[dict[str, str]] = []
    common = {"workload": planned["workload"], "hardware": hw, "key": planned["key"]}

    def not_ok(kind: str, message: str) -> dict[str, Any]:
        kind = _KIND.get(kind, kind)
        return tr.from_error(planned["id"], kind=kind, message=message, parameters=params, artifacts=artifacts, **common)

    def ok(metrics: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
        try:
            built = metrics()
        except tr.InvalidValue as exc:
            return tr.failed(planned["id"], kind="invalid-value", message=f"nn-Meter output: {exc}", parameters=params,
                             artifacts=artifacts, **common)
        # a latency comes from the kernel predictors (calibrated on the device); kernel counts from detection alone
        latency = any(m["name"] == "latency" for m in built)
        return tr.ok(planned["id"], metrics=built, parameters=params, artifacts=artifacts, **common,
                     independence=predictor_independence(name) if latency else None)

    if tool_missing or outcome is None:
        return not_ok("package-missing", tool_missing or "nn-Meter was not run")
    rules, chk = outcome.rules[hw], outcome.checks[hw]
    result = outcome.parse[model.name]
    if rules.problem is not None:
        return not_ok(*rules.problem)
    params["fusion_rules"] = rules.origin
    if rules.path is not None:
        artifacts.append({"path": rules.ref, "sha256": rules.sha256})
    if not result.get("ok"):
        return not_ok(*_parse_failure(result))
    params["onnx_opset"] = result["opset"]
    detection = result["detections"][name]
    if detection["total"] == 0:
        why = ("; ModelGraph.refresh() drops every node with neither inbound nor outbound edges, so a "
               "single-operator model has nothing to predict") if result["graph_nodes"] == 1 else ""
        return not_ok("no-kernels", f"nn-Meter's KernelDetector found no kernel in this model (nn-Meter IR: "
                                    f"{result['graph_nodes']} node(s)){why}")
    if params["stage"] == "kernel-detection":
        return ok(lambda: _kernel_count_metrics(detection))
    if not chk.ok:
        return not_ok(chk.kind or "predictor-missing", chk.message or "predictor not available")
    predicted = outcome.predict.get(name)
    if predicted is None or not predicted.get("ok"):
        predicted = predicted or {"kind": "tool-crashed", "message": "predict worker did not run"}
        return not_ok(predicted.get("kind", "tool-crashed"), predicted.get("message") or "predict worker failed")
    one = predicted["results"].get(model.name)
    if not one or not one.get("ok"):
        return not_ok((one or {}).get("kind", "tool-crashed"), (one or {}).get("message", "no prediction"))
    params["sklearn"] = predicted["sklearn"]
    if predicted.get("pickled_with_sklearn"):
        params["pickled_with_sklearn"] = ",".join(predicted["pickled_with_sklearn"])
    assert chk.files is not None
    artifacts[:] = [{"path": f"{name}/{f} (predictor dir)", "sha256": sha} for f, sha in sorted(chk.files.items())]
    return ok(lambda: [tr.metric("latency", one["latency_ms"], "ms", "prediction", timing="device")])


def build_cases(plan: Plan, outcome: Outcome | None, tool_missing: str | None) -> list[dict[str, Any]]:
    models = {m.name: m for m in plan.models}
    return [_case(p, outcome, tool_missing, models[p["parameters"]["model"]]) for p in plan.cases()]


def tool_location() -> str | None:
    """Where the tool came from (a PyPI package; its install path varies per venv, so it is not recorded)."""
    version = nnmeter_version()
    return f"PyPI nn-meter=={version} (Python package in this environment)" if version else None
