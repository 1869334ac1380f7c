"""Live mode: run NeuSight's own predictor (from a user-given checkout) for mtap's workloads.

The checkout is NeuSight's git repository (github.com/sitar-lab/NeuSight); NeuSight is not on
PyPI. Its learned predictor needs ``scripts/asplos/data/predictor/MLP_WAVE/<OP>/model.pth`` (five
files, about 6.3 MB each) and the tile tables ``scripts/asplos/data/dataset/train/{linear,bmm,vec}.csv``.
Without the weights NeuSight would predict with randomly initialised networks and print no
warning; this runner refuses instead and writes an ``unavailable`` case (error.kind
``weights-missing``). NeuSight's weight-free ``roofline`` baseline (method ``roofline``, predictor
``ROOFLINE``) needs neither and runs from any checkout.

Each case runs in its own subprocess (``--neusight-python``, the interpreter that has NeuSight's
dependencies) through :mod:`mtap_neusight_runner.shim`, started by ``mtap_schemas.proc.run_tool``
(its own process group, killed whole after ``--timeout`` seconds or on SIGINT/SIGTERM); see the
shim for how NeuSight's CPU-incompatible import is avoided without changing NeuSight's code.
Cases are independent :class:`Unit` s run by ``mtap_schemas.execute.run_cases`` (``--jobs``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtap_schemas import proc
from mtap_schemas import toolrun as tr

from .mapping import ATTENTION, ATTENTION_SUFFIX, MODELS, Tag, case_key, hardware_id
from .parse import ParseError, parse_e2e_line, read_latency_json
from .weights import WeightsError, verify

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
    "W7": ("gpt2", "packaged", "gpt2"),  # NeuSight ships no GPT-2 small config: models/gpt2.json (HF "gpt2")
}

#: FP32 CUDA cores per SM (NeuSight's Core_Per_SM), which mtap's hardware catalog does not hold.
#: NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): 64 FP32 cores per SM;
#: NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): 128 FP32 cores per SM (GH100, SXM5).
#: The H200 SXM is the same GH100 die with the same 132 SMs (data/hardware/hardware.json,
#: H200-SXM-141GB notes; its FP32 rate 67 TFLOPS = 132 SMs x 128 cores x 2 x 1.98 GHz): 128.
CORES_PER_SM = {"A100-SXM4-80GB": 64, "H100-SXM5-80GB": 128, "H200-SXM-141GB": 128}
#: mtap hardware id -> the device name PyTorch reports for it (NeuSight's "Device"; the lent H200 SXM
#: cards report "NVIDIA H200": data/evaluation/groundtruth/h200-x1.tool-run.json environment.gpu.name).
DEVICE_NAMES = {"A100-SXM4-80GB": "NVIDIA A100-SXM4-80GB", "H100-SXM5-80GB": "NVIDIA H100 80GB HBM3", "H200-SXM-141GB": "NVIDIA H200"}
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
        return f"{WORKLOADS[self.workload][2]}.model.b{self.batch}.s{self.seq_len}.fp32{ATTENTION_SUFFIX}"

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
            "attention": ATTENTION,
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
    """One of NeuSight's own configurations (a tag of its artifact) on one of its own device configs,
    or on an mtap hardware id (``CORES_PER_SM``) whose device config is written from the catalog
    (as for live mode's matrix: NeuSight's own file where it describes that GPU)."""

    device: str
    method: str
    tag: Tag

    @property
    def from_catalog(self) -> bool:
        """``device`` is an mtap hardware id, not a NeuSight device config name."""
        return self.device in CORES_PER_SM

    @property
    def workload(self) -> str:
        return MODELS[self.tag.model][1]

    @property
    def hardware(self) -> str:
        return self.device if self.from_catalog else hardware_id(self.device)[0]

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
            "neusight_device": DEVICE_NAMES[self.device].replace(" ", "_") if self.from_catalog else self.device,
            **({"device_config": "data/hardware/hardware.json"} if self.from_catalog else {}),
            "hardware_in_catalog": self.from_catalog or hardware_id(self.device)[1],
            "model": MODELS[self.tag.model][0],
            "neusight_model": self.tag.model,
            "workload_fit": MODELS[self.tag.model][2],
            **self.tag.parameters(),
        }

    def device_cfg(self, checkout: Path, catalog: dict[str, dict[str, Any]], work: Path) -> Path:
        if self.from_catalog:
            return device_config(checkout, catalog[self.hardware], work)
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


def plan(
    hardware=DEFAULT_HARDWARE, workloads=("W4", "W7"), batches=DEFAULT_BATCH, seqs=DEFAULT_SEQ, methods=DEFAULT_METHODS
) -> list[LiveCase]:
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
    return [
        (base / t).as_posix() for t in TILE_TABLES if not (checkout / base / t).is_file() or (checkout / base / t).stat().st_size < 1024
    ]


def checkout_problem(checkout: Path | None) -> str | None:
    if checkout is None:
        return (
            "no NeuSight checkout given: pass --tool-path/--neusight-dir DIR or set MTAP_NEUSIGHT_PATH to a clone of "
            "https://github.com/sitar-lab/NeuSight (git clone, so that its model.pth weight files are present)"
        )
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


def job_for(
    case: LiveCase | OwnCase, checkout: Path, device_cfg: Path, model_cfg: Path, result_dir: Path, weights: Path | None = None
) -> dict[str, Any]:
    """The arguments NeuSight's scripts/pred.py would be given for this case (``weights``: a folder written
    by ``neusight-runner train``, used for the learned predictor instead of the checkout's files)."""
    folder, learned = PREDICTORS[case.method]
    if learned and weights is not None:
        predictor, tiles = weights / folder, weights / "dataset" / "train"
    else:
        predictor, tiles = checkout / ASPLOS / "data" / "predictor" / folder, checkout / ASPLOS / "data" / "dataset" / "train"
    return {
        "id": case.id,
        "predictor_name": case.method,
        "predictor_path": str(predictor),
        "tile_dataset_dir": str(tiles) if learned else "",
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


def git_commit(checkout: Path) -> str | None:
    result = proc.run_tool(["git", "-C", str(checkout), "rev-parse", "HEAD"], timeout=20)
    return (result.stdout.strip() or None) if result.ok else None


@dataclass
class Unit:
    """One live case and what running it needs (picklable: units run in worker processes, ``--jobs``)."""

    case: LiveCase | OwnCase
    checkout: Path | None  #: as the user gave it (messages name it so)
    hardware: dict[str, Any] | None  #: the case's data/hardware/hardware.json entry (LiveCase), None for OwnCase
    python: str
    timeout: float | None
    keep_raw: Path | None
    #: --roofline-tool: the roofline's value is this document's (tool neusight-roofline) ``latency``
    roofline_tool: bool = False
    #: --weights: a folder written by `neusight-runner train` (sha256-checked against its manifest before use)
    weights: Path | None = None
    #: --trace-cache: NeuSight's own operator-graph files (opgraph_raw/, opgraph/), device-independent, kept
    #: between cases so that a configuration is traced once and predicted on every device from the same graph
    trace_cache: Path | None = None

    @property
    def id(self) -> str:
        return self.case.id


def _where(case: LiveCase | OwnCase, artifacts: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"workload": case.workload, "hardware": case.hardware, "key": case.key, "parameters": case.parameters()}
    if artifacts:
        out["artifacts"] = artifacts
    return out


def _shim_output(stdout: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(environment the shim reported, its one job result or None) from the shim's stdout."""
    info: dict[str, Any] = {}
    result = None
    for line in stdout.splitlines():
        try:
            if line.startswith("MTAP-RESULT "):
                result = json.loads(line[len("MTAP-RESULT ") :])
            elif line.startswith("MTAP-ENV "):
                info = json.loads(line[len("MTAP-ENV ") :])
        except ValueError:
            continue
    return info, result


def _refused(case: LiveCase | OwnCase, kind: str, message: str) -> dict[str, Any]:
    """``run_unit``'s answer for a case refused before NeuSight runs: an unavailable case, no environment."""
    return {"case": tr.unavailable(case.id, kind=kind, message=message, **_where(case)), "env": {}}


def run_unit(unit: Unit) -> dict[str, Any]:
    """Run (or refuse) one case; returns ``{"case": tool-run case, "env": NeuSight's Python versions or {}}``."""
    c = unit.case
    problem = checkout_problem(unit.checkout)
    if problem:
        return _refused(c, "checkout-missing", problem)
    assert unit.checkout is not None
    given, checkout = unit.checkout, unit.checkout.resolve()  # NeuSight runs in a temporary working folder
    learned = PREDICTORS[c.method][1]
    trained = unit.weights.resolve() if unit.weights is not None and learned else None
    weight_files: dict[str, str] = {}
    if trained is not None:
        try:
            weight_files = verify(trained)
        except WeightsError as exc:
            return _refused(c, exc.kind, f"--weights {unit.weights}: {exc}")
    weights = missing_weights(checkout, c.method) if trained is None else []
    if weights:
        return _refused(
            c,
            "weights-missing",
            f"{given}: NeuSight's trained predictor weights are absent ({', '.join(weights)}); NeuSight would "
            "silently predict with random weights, so this runner refuses. Provide a full git clone of "
            "https://github.com/sitar-lab/NeuSight (the model.pth files are ~6.3 MB git blobs).",
        )
    tables = missing_tile_tables(checkout, c.method) if trained is None else []
    if tables:
        return _refused(
            c,
            "tile-dataset-missing",
            f"{given}: NeuSight's tile tables are absent ({', '.join(tables)}); they come with a full git clone of "
            "https://github.com/sitar-lab/NeuSight.",
        )
    with tempfile.TemporaryDirectory(prefix="mtap-neusight-") as tmp:
        work = Path(tmp)
        try:
            dev = c.device_cfg(checkout, {c.hardware: unit.hardware}, work)
            mod = c.model_cfg(checkout, work)
        except FileNotFoundError as exc:
            return _refused(c, "config-missing", str(exc))
        job = job_for(c, checkout, dev, mod, work / "results", trained)
        if unit.trace_cache is not None:
            _traces(unit.trace_cache, work / "results", job, into_cache=False)
        spec = work / "jobs.json"
        spec.write_text(json.dumps({"neusight_dir": str(checkout), "jobs": [job]}, indent=1))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        ran = proc.run_tool([unit.python, str(SHIM), str(spec)], timeout=unit.timeout, cwd=work, env=env)
        info, r = _shim_output(ran.stdout)
        if unit.trace_cache is not None and r is not None and r.get("ok"):
            _traces(unit.trace_cache, work / "results", job, into_cache=True)
        case = _case_of(unit, job, ran, r, checkout, work)
        if weight_files and case["status"] == "ok":
            case.setdefault("artifacts", []).extend(
                {"path": f"trained-weights:{rel}", "sha256": digest} for rel, digest in sorted(weight_files.items())
            )
        return {"case": case, "env": info}


def trace_names(job: dict[str, Any]) -> dict[str, list[str]]:
    """The operator-graph files NeuSight reads for this job (``NeusightPredictor.predict``): the raw trace
    (``opgraph_raw/``) is named after the per-GPU batch for ``dp<N>`` and the per-microbatch batch for
    ``pp<N>_<M>``, the parsed graph (``opgraph/``) after the whole tag; a ``dp<N>`` job also reads the
    parsed graph of its per-GPU configuration, which the shim predicts first."""
    base = f"{Path(job['model_config_path']).stem}-{job['execution_type']}-{job['sequence_length']}"
    batch, opt = job["batch_size"], job.get("options") or ""
    raw = batch
    if m := re.fullmatch(r"dp([0-9]+)", opt):
        raw = batch // int(m.group(1))
    elif m := re.fullmatch(r"pp[0-9]+_([0-9]+)", opt):
        raw = batch // int(m.group(1))
    tag = f"{base}-{batch}" + (f"-{opt}" if opt else "")
    raw_name = f"{tag}.csv" if opt == "fusion" else f"{base}-{raw}.csv"
    parsed = [f"{tag}.csv"] + ([f"{base}-{raw}.csv"] if opt.startswith("dp") else [])
    return {"opgraph_raw": [raw_name], "opgraph": parsed}


def _traces(cache: Path, results: Path, job: dict[str, Any], into_cache: bool) -> None:
    """Copy NeuSight's operator-graph files of this job's configuration between the cache and its result folder.
    NeuSight itself skips tracing/parsing when these files exist (NeusightPredictor.predict: "already exists");
    they hold the traced graph and kernel shapes only, no device and no prediction."""
    wanted = trace_names(job)
    for sub in ("opgraph_raw", "opgraph"):
        src_dir, dst_dir = (results / sub, cache / sub) if into_cache else (cache / sub, results / sub)
        if not src_dir.is_dir():
            continue
        names = [p.name for p in src_dir.glob("*.csv")] if into_cache else wanted[sub]
        for name in names:
            src = src_dir / name
            if src.is_file() and not (dst_dir / name).exists():
                dst_dir.mkdir(parents=True, exist_ok=True)
                tmp = dst_dir / f".{name}.tmp"
                shutil.copyfile(src, tmp)
                tmp.replace(dst_dir / name)


def _case_of(unit: Unit, job: dict[str, Any], ran: proc.ToolResult, r: dict[str, Any] | None, checkout: Path, work: Path) -> dict[str, Any]:
    c = unit.case
    if r is None:  # the shim itself did not get to report this job
        if ran.outcome == "not-found":
            return tr.unavailable(
                c.id,
                kind="binary-missing",
                **_where(c),
                message=(
                    f"--neusight-python {unit.python} could not be started ({ran.last_line()}); give a Python that has "
                    "NeuSight's dependencies (torch, transformers==4.38.1, pandas, scipy, networkx)"
                ),
            )
        if ran.ok:
            return tr.failed(c.id, kind="parse-failed", message="NeuSight's shim printed no result for this case", **_where(c))
        kind, message = ran.error(unit.timeout)
        return tr.from_error(c.id, kind=kind, message=f"NeuSight (through {SHIM.name}): {message}", **_where(c))
    if not r.get("ok"):
        err = r.get("error") or {}
        kind = err.get("kind") if err.get("kind") in ("weights-missing", "tool-crashed") else "tool-crashed"
        return tr.from_error(c.id, kind=kind, message=err.get("message") or "NeuSight failed", **_where(c))
    try:
        value = parse_result(job, r.get("stdout_tail", ""))
    except ParseError as exc:
        return tr.failed(c.id, kind="parse-failed", message=str(exc), **_where(c))
    src = result_path(job)
    source = src.relative_to(Path(job["result_dir"])).as_posix()  # prediction/<device>/<method>/<tag>.json
    artifacts = []
    dev_cfg = Path(job["device_config_path"])
    if unit.keep_raw is not None:
        kept = unit.keep_raw / c.hardware / c.method / src.name
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, kept)
        artifacts.append(tr.artifact(kept))
        source = artifacts[0]["path"]
        if dev_cfg.is_relative_to(work):  # a config mtap wrote from its own catalog: keep it beside the result
            dev_kept = unit.keep_raw / c.hardware / dev_cfg.name
            shutil.copyfile(dev_cfg, dev_kept)
            artifacts.append(tr.artifact(dev_kept))
    elif dev_cfg.is_relative_to(work):  # not kept: its hash still pins what NeuSight was given
        artifacts.append(tr.artifact(dev_cfg, name=f"written-from-catalog:{dev_cfg.name}"))
    if not dev_cfg.is_relative_to(work):  # NeuSight's own file: cited in the checkout by path and hash, never copied
        artifacts.append(tr.artifact(dev_cfg, name=f"neusight-checkout:{dev_cfg.relative_to(checkout).as_posix()}"))
    case = result_case(c, value, source, artifacts, unit.roofline_tool)
    if r.get("patched"):  # the shim replaced a NeuSight function for this job (fusion): say so in the case
        case["parameters"]["neusight_patch"] = r["patched"]
    return case


def result_case(
    c: LiveCase | OwnCase, value: float, source: str, artifacts: list[dict[str, str]], roofline_tool: bool = False
) -> dict[str, Any]:
    """The ok case for NeuSight's latency ``value`` (ms); a value a latency cannot take is ``invalid-value``.
    A baseline's value is ``baseline_latency`` (never NeuSight's ``latency``), except in a document of its
    own tool (``roofline_tool``: tool neusight-roofline), where it is that tool's ``latency``."""
    metric = "latency" if c.method == "neusight" or (roofline_tool and c.method == "roofline") else "baseline_latency"
    try:
        m = tr.metric(metric, value, "ms", "prediction", timing="simulated", source=source)
    except tr.InvalidValue as exc:
        return tr.failed(c.id, kind="invalid-value", message=f"{source}: {exc}", **_where(c, artifacts))
    return tr.ok(c.id, metrics=[m], **_where(c, artifacts))
