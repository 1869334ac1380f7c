"""The ground truth for the ORT CPU predictors: end-to-end ONNX Runtime latency of whole models,
measured by ``ortprofile`` on the same CPU, runtime and thread counts as the kernels, as a tool-run
document (tool ``onnxruntime``, backend ``measured``) that aggregate's D1 pairs with nn-Meter's
predictions by hardware id, case key and metric ``latency``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mtap_schemas.toolrun as tr
from mtap_schemas.cli import UserError

from .cases import MODELS

#: hardware id per thread count: the catalog entry names CPU, runtime and version, threads
HARDWARE_BY_THREADS = {1: "xeon-emr-ort1.30-t1", 4: "xeon-emr-ort1.30-t4"}
TIMING = "eager-end-to-end"  # host-observed wall time of session.run


def read_measurements(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """environment.json and models.jsonl of an ortprofile output folder; a bad folder is a UserError."""
    env_path, models_path = folder / "environment.json", folder / "models.jsonl"
    try:
        env = json.loads(env_path.read_text(encoding="utf-8"))
        records = [json.loads(line) for line in models_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise UserError(f"{folder}: --measurements: cannot read {exc.filename}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder}: --measurements: environment.json / models.jsonl is not valid JSON: {exc}") from None
    if not isinstance(env, dict) or not isinstance(env.get("threads"), list):
        raise UserError(f"{env_path}: field threads: expected the thread counts ortprofile measured")
    return env, records


def environment(env: dict[str, Any], runner_version: str) -> dict[str, Any]:
    """The tool-run environment of the measurement machine (not of the machine writing the document)."""
    packages = {k: str(v) for k, v in (env.get("packages") or {}).items()}
    packages["nnmeter-runner"] = runner_version
    return {
        "python": env.get("python") or "unknown",
        "platform": env.get("platform") or "unknown",
        "cpu": env.get("cpu") or "unknown",
        "cpu_count": env.get("cpu_count"),
        "gpu": None,
        "packages": dict(sorted(packages.items())),
    }


def cases(env: dict[str, Any], records: list[dict[str, Any]], artifact: dict[str, str]) -> list[dict[str, Any]]:
    specs = {m.name: m for m in MODELS}
    main = {r["model"]: r for r in records if r.get("pass", "main") == "main"}
    recheck = {r["model"]: r for r in records if r.get("pass") == "recheck"}
    out = []
    for name, spec in specs.items():
        rec = main.get(name)
        if rec is None:
            continue
        for threads in env["threads"]:
            hw = HARDWARE_BY_THREADS.get(threads)
            if hw is None:
                continue
            cid = f"{spec.workload}/{name}/{hw}/measured"
            params = {
                "model": name,
                "threads": threads,
                "runtime": f"onnxruntime {env['packages'].get('onnxruntime')}",
                "execution_provider": "CPUExecutionProvider",
                "intra_op_num_threads": threads,
                "inter_op_num_threads": 1,
                "execution_mode": "sequential",
                "graph_optimization": "all",
                "cpus": ",".join(map(str, env.get("affinity") or [])),
                "onnx_opset": rec.get("onnx_opset"),
                "batch": 1,
                "input_shape": "x".join(map(str, spec.input_shape)),
                "weights": "random (torch.manual_seed(0))",
            }
            common = {"workload": spec.workload, "hardware": hw, "key": spec.key, "parameters": params, "artifacts": [artifact]}
            if "error" in rec:
                out.append(tr.failed(cid, kind="tool-crashed", message=f"export or timing failed: {rec['error']}", **common))
                continue
            s = rec[f"t{threads}"]
            params.update({"warmup": "at least 5 runs and 0.3 s", "runs": s["n"]})
            metrics = [tr.metric("latency", s["median"], "ms", "measurement", timing=TIMING)]
            metrics += [
                tr.metric(f"latency_{k}", s[k], "ms", "measurement", timing=TIMING) for k in ("p10", "p90", "mean", "std", "min", "max")
            ]
            metrics.append(tr.metric("latency_samples", s["n"], "count", "measurement", timing=TIMING))
            metrics.append(tr.metric("latency_spread", s["spread"], "1", "derived", timing=TIMING))
            again = recheck.get(name)
            if again and f"t{threads}" in again:
                # the same model timed again at the end of the run (minutes later): run-to-run drift
                metrics.append(tr.metric("latency_recheck", again[f"t{threads}"]["median"], "ms", "measurement", timing=TIMING))
            out.append(tr.ok(cid, metrics=metrics, **common))
    return out
