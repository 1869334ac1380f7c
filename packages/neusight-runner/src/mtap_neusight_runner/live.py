"""Live mode: run NeuSight's own predictor (from a user-given checkout) for mtap's workloads.

The checkout is NeuSight's git repository (github.com/sitar-lab/NeuSight); NeuSight is not on
PyPI. Its learned predictor needs ``scripts/asplos/data/predictor/MLP_WAVE/<OP>/model.pth`` (five
files, about 6.3 MB each) and the tile tables ``scripts/asplos/data/dataset/train/{linear,bmm,vec}.csv``.
Without the weights NeuSight would predict with randomly initialised networks and print no
warning; this runner refuses instead and writes an ``unavailable`` case (error.kind
``weights-missing``). NeuSight's weight-free ``roofline`` baseline (method ``roofline``, predictor
``ROOFLINE``) needs neither and runs from any checkout.

Predictions run in a subprocess (``--neusight-python``, the interpreter that has NeuSight's
dependencies) through :mod:`mtap_neusight_runner.shim`; see that file for how NeuSight's
CPU-incompatible import is avoided without changing NeuSight's code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtap_schemas as ms

from .mapping import MODELS, Tag, case_key, hardware_id
from .parse import ParseError, parse_e2e_line, read_latency_json

SHIM = Path(__file__).with_name("shim.py")
PACKAGED_MODELS = Path(__file__).with_name("models")
ASPLOS = Path("scripts") / "asplos"

#: method -> (predictor folder under scripts/asplos/data/predictor, needs trained weights and tile tables)
PREDICTORS = {"neusight": ("MLP_WAVE", True), "roofline": ("ROOFLINE", False)}
OPS = ("BMM", "LINEAR", "VEC", "SOFTMAX", "LN")
TILE_TABLES = ("linear.csv", "bmm.csv", "vec.csv")

#: workload -> (NeuSight model name, where its config comes from, key name)
WORKLOADS = {
    "W4": ("bert", "checkout", "bert-base"),  # scripts/asplos/data/DLmodel_configs/bert.json: BERT-base dimensions
    "W7": ("gpt2", "packaged", "gpt2"),       # NeuSight ships no GPT-2 small config: models/gpt2.json (HF "gpt2")
}

#: FP32 CUDA cores per SM (NeuSight's Core_Per_SM), which mtap's hardware catalog does not hold.
#: NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): 64 FP32 cores per SM;
#: NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): 128 FP32 cores per SM.
CORES_PER_SM = {"A100-SXM4-80GB": 64, "H100-SXM5-80GB": 128}
#: mtap hardware id -> the device name PyTorch reports for it (NeuSight's "Device").
DEVICE_NAMES = {"A100-SXM4-80GB": "NVIDIA A100-SXM4-80GB", "H100-SXM5-80GB": "NVIDIA H100 80GB HBM3"}
#: Where NeuSight ships its own description of the same GPU, it is used as is.
NEUSIGHT_DEVICE_CONFIGS = {"H100-SXM5-80GB": "NVIDIA_H100_80GB_HBM3.json"}

DEFAULT_HARDWARE = ("H100-SXM5-80GB", "A100-SXM4-80GB")
DEFAULT_BATCH = (1, 8)
DEFAULT_SEQ = (128, 512)
DEFAULT_METHODS = ("neusight", "roofline")


@dataclass(frozen=True)
class LiveCase:
    workload: str
    hardware: str
    method: str
    batch: int
    seq_len: int

    @property
    def model(self) -> str:
        return WORKLOADS[self.workload][0]

    @property
    def tag(self) -> str:
        return f"{self.model}-inf-{self.seq_len}-{self.batch}"

    @property
    def id(self) -> str:
        return f"live:{self.hardware}:{self.method}:{self.tag}"

    @property
    def key(self) -> str:
        return f"{WORKLOADS[self.workload][2]}.model.b{self.batch}.s{self.seq_len}.fp32"

    def parameters(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_is_neusight": self.method == "neusight",
            "neusight_tag": self.tag,
            "model": WORKLOADS[self.workload][2],
            "neusight_model": self.model,
            "workload_fit": "exact",
            "mode": "inference",
            "batch": self.batch,
            "seq_len": self.seq_len,
            "dtype": "fp32",
            "tf32": False,
            "precision_note": "FP32, TF32 off: NeuSight sets cudnn.allow_tf32=False; cuda.matmul.allow_tf32 is PyTorch's default False",
        }

    execution_type = "inf"
    options = ""

    def device_cfg(self, checkout: Path, catalog: dict[str, dict[str, Any]], work: Path) -> Path:
        return device_config(checkout, catalog[self.hardware], work)

    def model_cfg(self, checkout: Path, work: Path) -> Path:
        return model_config(checkout, self.workload, work)


@dataclass(frozen=True)
class OwnCase:
    """One of NeuSight's own configurations (a tag of its artifact) on one of its own device configs."""

    device: str
    method: str
    tag: Tag

    @property
    def workload(self) -> str:
        return MODELS[self.tag.model][1]

    @property
    def hardware(self) -> str:
        return hardware_id(self.device)[0]

    @property
    def id(self) -> str:
        return f"live:{self.hardware}:{self.method}:{self.tag.text}"

    @property
    def key(self) -> str | None:
        return case_key(self.tag)

    @property
    def batch(self) -> int:
        return self.tag.batch

    @property
    def seq_len(self) -> int:
        return self.tag.seq_len

    @property
    def execution_type(self) -> str:
        return self.tag.mode

    @property
    def options(self) -> str:
        return self.tag.variant

    def parameters(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_is_neusight": self.method == "neusight",
            "neusight_tag": self.tag.text,
            "neusight_device": self.device,
            "hardware_in_catalog": hardware_id(self.device)[1],
            "model": MODELS[self.tag.model][0],
            "neusight_model": self.tag.model,
            "workload_fit": MODELS[self.tag.model][2],
            "mode": "inference" if self.tag.mode == "inf" else "training",
            "batch": self.tag.batch,
            "seq_len": self.tag.seq_len,
            "variant": self.tag.variant or None,
            "gpus": self.tag.gpus,
            "dtype": "fp32",
            "tf32": False,
        }

    def device_cfg(self, checkout: Path, catalog: dict[str, dict[str, Any]], work: Path) -> Path:
        path = checkout / ASPLOS / "data" / "device_configs" / f"{self.device}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: NeuSight has no device config {self.device!r}")
        return path

    def model_cfg(self, checkout: Path, work: Path) -> Path:
        path = checkout / ASPLOS / "data" / "DLmodel_configs" / f"{self.tag.model}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: NeuSight has no model config {self.tag.model!r}")
        return path


def plan_own(devices, tags: list[Tag], methods=DEFAULT_METHODS) -> list[OwnCase]:
    return sorted((OwnCase(d, m, t) for m in methods for d in devices for t in tags), key=lambda c: c.id)


def plan(hardware=DEFAULT_HARDWARE, workloads=("W4", "W7"), batches=DEFAULT_BATCH, seqs=DEFAULT_SEQ, methods=DEFAULT_METHODS) -> list[LiveCase]:
    cases = [LiveCase(w, h, m, b, s) for m in methods for h in hardware for w in workloads for b in batches for s in seqs]
    return sorted(cases, key=lambda c: c.id)


def missing_weights(checkout: Path, method: str) -> list[str]:
    folder, learned = PREDICTORS[method]
    if not learned:
        return []
    base = ASPLOS / "data" / "predictor" / folder
    out = []
    for op in OPS:
        rel = base / op / "model.pth"
        path = checkout / rel
        # A git-lfs/annex pointer or an empty file is not a weight file.
        if not path.is_file() or path.stat().st_size < 1024:
            out.append(rel.as_posix())
    return out


def missing_tile_tables(checkout: Path, method: str) -> list[str]:
    if not PREDICTORS[method][1]:
        return []
    base = ASPLOS / "data" / "dataset" / "train"
    return [(base / t).as_posix() for t in TILE_TABLES if not (checkout / base / t).is_file() or (checkout / base / t).stat().st_size < 1024]


def checkout_problem(checkout: Path | None) -> str | None:
    if checkout is None:
        return ("no NeuSight checkout given: pass --tool-path/--neusight-dir DIR or set MTAP_NEUSIGHT_PATH to a clone of "
                "https://github.com/sitar-lab/NeuSight (git clone, so that its model.pth weight files are present)")
    if not (checkout / "neusight" / "Prediction" / "predictor.py").is_file():
        return f"{checkout}: not a NeuSight checkout (no neusight/Prediction/predictor.py); clone https://github.com/sitar-lab/NeuSight"
    return None


def device_config(checkout: Path, hw: dict[str, Any], work: Path) -> Path:
    """NeuSight's own config for a GPU it describes; otherwise one written from mtap's catalog entry."""
    hid = hw["id"]
    if hid in NEUSIGHT_DEVICE_CONFIGS:
        path = checkout / ASPLOS / "data" / "device_configs" / NEUSIGHT_DEVICE_CONFIGS[hid]
        if path.is_file():
            return path
    if hid not in CORES_PER_SM or not hw.get("peak_flops", {}).get("fp32"):
        raise ValueError(f"hardware {hid}: NeuSight needs an FP32 rate and cores per SM, which mtap cannot supply for it")
    cfg = {
        "Device": DEVICE_NAMES.get(hid, hid),
        "Dev_Mem": round(hw["memory"]["bytes"] / 1e9),
        "Mem_Bw": round(hw["memory"]["bandwidth_bytes_per_s"] / 1e9),
        "Num_Sm": hw["compute_units"],
        "Core_Per_SM": CORES_PER_SM[hid],
        "Freq": round(hw["clock_hz"] / 1e6),
        "SingleFLOPs": round(hw["peak_flops"]["fp32"] / 1e9),
        "L2Cache": round(hw["memory"]["on_chip_bytes"] / 1e6),
    }
    path = work / "device_configs" / f"{cfg['Device'].replace(' ', '_')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=4) + "\n")
    return path


def model_config(checkout: Path, workload: str, work: Path) -> Path:
    name, where, _ = WORKLOADS[workload]
    if where == "checkout":
        return checkout / ASPLOS / "data" / "DLmodel_configs" / f"{name}.json"
    path = work / "DLmodel_configs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PACKAGED_MODELS / f"{name}.json", path)
    return path


def job_for(case: LiveCase | OwnCase, checkout: Path, device_cfg: Path, model_cfg: Path, result_dir: Path) -> dict[str, Any]:
    """The arguments NeuSight's scripts/pred.py would be given for this case."""
    folder, learned = PREDICTORS[case.method]
    return {
        "id": case.id,
        "predictor_name": case.method,
        "predictor_path": str(checkout / ASPLOS / "data" / "predictor" / folder),
        "tile_dataset_dir": str(checkout / ASPLOS / "data" / "dataset" / "train") if learned else "",
        "device_config_path": str(device_cfg),
        "model_config_path": str(model_cfg),
        "sequence_length": case.seq_len,
        "batch_size": case.batch,
        "execution_type": case.execution_type,
        "options": case.options,
        "result_dir": str(result_dir),
    }


def result_path(job: dict[str, Any]) -> Path:
    """Where NeuSight writes its result JSON (NeusightPredictor.predict)."""
    device = json.loads(Path(job["device_config_path"]).read_text())["Device"].replace(" ", "_")
    tag = f"{Path(job['model_config_path']).stem}-{job['execution_type']}-{job['sequence_length']}-{job['batch_size']}"
    if job.get("options"):
        tag += f"-{job['options']}"
    return Path(job["result_dir"]) / "prediction" / device / job["predictor_name"] / f"{tag}.json"


def parse_result(job: dict[str, Any], stdout_tail: str) -> float:
    """NeuSight's e2e latency (ms) from its result JSON, checked against the line it printed."""
    path = result_path(job)
    value = read_latency_json(path)
    line = parse_e2e_line(stdout_tail)
    if line is None:
        raise ParseError(f"{path}: NeuSight printed no 'E2E latency for ...' line")
    if abs(round(value, 2) - line[2]) > 0.011:
        raise ParseError(f"{path}: e2e_latency {value} disagrees with NeuSight's printed {line[2]} ms")
    return value


def run_shim(python: str, spec: dict[str, Any], work: Path, timeout: float, on_result: Callable[[dict], None]) -> tuple[dict[str, Any], str | None]:
    """Run the shim; returns (environment info it printed, error text if the process itself failed)."""
    spec_path = work / "jobs.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.Popen([python, str(SHIM), str(spec_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    except OSError as exc:
        return {}, f"cannot start {python}: {exc.strerror or exc}"
    info: dict[str, Any] = {}
    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        for line in proc.stdout:
            if line.startswith("MTAP-RESULT "):
                on_result(json.loads(line[len("MTAP-RESULT "):]))
            elif line.startswith("MTAP-ENV "):
                info = json.loads(line[len("MTAP-ENV "):])
        rc = proc.wait()
    finally:
        timer.cancel()
    reader.join(5)
    if killed.is_set():
        return info, f"timeout: NeuSight did not finish within {timeout:.0f} s"
    if rc != 0:
        tail = [ln for ln in "".join(err_chunks).strip().splitlines() if ln.strip()]
        return info, f"NeuSight's process exited with {rc}: {tail[-1] if tail else 'no output'}"
    return info, None


def git_commit(checkout: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_live(cases: list[LiveCase] | list[OwnCase], checkout: Path | None, catalog: dict[str, dict[str, Any]], python: str,
             raw_dir: Path, doc_dir: Path, timeout: float, progress: Callable[[int], None] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Run (or refuse) every case; returns (tool-run cases, environment info of NeuSight's Python)."""
    results: dict[str, dict[str, Any]] = {}

    def base(case: LiveCase | OwnCase, status: str, error: dict | None, metrics=(), artifacts=()) -> dict[str, Any]:
        return {"id": case.id, "key": case.key, "workload": case.workload, "hardware": case.hardware,
                "parameters": case.parameters(), "status": status, "error": error,
                "metrics": list(metrics), "artifacts": list(artifacts)}

    problem = checkout_problem(checkout)
    if problem:
        for c in cases:
            results[c.id] = base(c, "unavailable", {"kind": "checkout-missing", "message": problem})
        if progress:
            progress(len(cases))
        return [results[c.id] for c in cases], {}
    assert checkout is not None
    given = checkout  # as the user wrote it, for messages
    checkout = checkout.resolve()  # NeuSight runs in a temporary working folder

    runnable: list[tuple[LiveCase | OwnCase, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="mtap-neusight-") as tmp:
        work = Path(tmp)
        for c in cases:
            weights = missing_weights(checkout, c.method)
            if weights:
                results[c.id] = base(c, "unavailable", {"kind": "weights-missing", "message": (
                    f"{given}: NeuSight's trained predictor weights are absent ({', '.join(weights)}); NeuSight would "
                    "silently predict with random weights, so this runner refuses. Provide a full git clone of "
                    "https://github.com/sitar-lab/NeuSight (the model.pth files are ~6.3 MB git blobs).")})
                continue
            tables = missing_tile_tables(checkout, c.method)
            if tables:
                results[c.id] = base(c, "unavailable", {"kind": "tile-dataset-missing", "message": (
                    f"{given}: NeuSight's tile tables are absent ({', '.join(tables)}); they come with a full git clone of "
                    "https://github.com/sitar-lab/NeuSight.")})
                continue
            try:
                dev = c.device_cfg(checkout, catalog, work)
                mod = c.model_cfg(checkout, work)
            except FileNotFoundError as exc:
                results[c.id] = base(c, "unavailable", {"kind": "config-missing", "message": str(exc)})
                continue
            runnable.append((c, job_for(c, checkout, dev, mod, work / "results")))
        if progress:
            progress(len(cases) - len(runnable))
        by_id = {c.id: (c, job) for c, job in runnable}
        outputs: dict[str, dict[str, Any]] = {}
        info: dict[str, Any] = {}
        fail = None
        if runnable:
            def on_result(r: dict) -> None:
                outputs[r["id"]] = r
                if progress:
                    progress(1)
            info, fail = run_shim(python, {"neusight_dir": str(checkout), "jobs": [j for _, j in runnable]}, work, timeout, on_result)
        for cid, (c, job) in by_id.items():
            r = outputs.get(cid)
            if r is None:
                kind = "timeout" if fail and fail.startswith("timeout") else "tool-crashed"
                results[cid] = base(c, "failed", {"kind": kind, "message": fail or "NeuSight returned no result for this case"})
                if progress:
                    progress(1)
                continue
            if not r.get("ok"):
                err = r.get("error") or {}
                status = "unavailable" if err.get("kind") == "weights-missing" else "failed"
                results[cid] = base(c, status, {"kind": err.get("kind", "tool-crashed"), "message": err.get("message") or "NeuSight failed"})
                continue
            try:
                value = parse_result(job, r.get("stdout_tail", ""))
            except ParseError as exc:
                results[cid] = base(c, "failed", {"kind": "parse-failed", "message": str(exc)})
                continue
            src = result_path(job)
            kept = raw_dir / c.hardware / c.method / src.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, kept)
            dev_cfg = Path(job["device_config_path"])
            if dev_cfg.is_relative_to(work):
                # A config mtap wrote from its own catalog: keep it beside the result.
                dev_kept = raw_dir / c.hardware / dev_cfg.name
                shutil.copyfile(dev_cfg, dev_kept)
                dev_artifact = {"path": dev_kept.relative_to(doc_dir).as_posix(), "sha256": ms.sha256_file(dev_kept)}
            else:
                # NeuSight's own file: cite it in the checkout by path and hash, never copy it here.
                dev_artifact = {"path": f"neusight-checkout:{dev_cfg.relative_to(checkout).as_posix()}", "sha256": ms.sha256_file(dev_cfg)}
            metric = "latency" if c.method == "neusight" else "baseline_latency"
            rel = kept.relative_to(doc_dir).as_posix()
            results[cid] = base(
                c, "ok", None,
                metrics=[{"name": metric, "value": value, "unit": "ms", "kind": "prediction", "timing": "simulated", "source": rel}],
                artifacts=[{"path": rel, "sha256": ms.sha256_file(kept)}, dev_artifact],
            )
    return [results[c.id] for c in cases], info
