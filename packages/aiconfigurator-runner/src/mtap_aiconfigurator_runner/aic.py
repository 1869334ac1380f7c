"""AIConfigurator's prediction for one case (AIConfigurator is imported here only).

AIConfigurator (``aiconfigurator`` 0.12.0 on PyPI, its SDK and databases in ``aiconfigurator-core``
0.12.0) breaks a model into operations (embedding, add+norm, QKV/proj/FFN GEMMs, attention,
activation, logits GEMM, all-reduce/p2p) and looks each one up in a per-GPU, per-backend database
of operation times that NVIDIA collected on its own machines ("silicon" rows, interpolated), or
estimates it from speed-of-light plus an empirical factor where it has no rows ("empirical");
the step's latency is their sum. This module calls its public single-point API, the programmatic
equivalent of ``aiconfigurator cli estimate``, unchanged and at the authors' defaults:

* prefill (W5): ``aiconfigurator.cli.api.cli_estimate(model, system, mode="static_ctx", isl=t, osl=1,
  batch_size=1)``; the latency is its ``ttft`` (the context phase; logits of the last token only)
* decode (W5): ``cli_estimate(model, system, mode="static_gen", isl=kv, osl=2, batch_size=b)``; the
  latency is its ``tpot``: one generation step, which AIConfigurator evaluates at sequence length
  ``isl + 1`` = kv + 1 (the new token attends to the kv cached tokens and its own, as measured)

``backend_name``, ``database_mode`` and ``stride`` are left at ``cli_estimate``'s defaults (read
from its signature and recorded per case); ``backend_version`` is its default too: what
``cli_estimate`` resolves a None to (``get_latest_database_version``: the ``current`` slot of
``systems/query_versions.yaml``), resolved once per system and passed, which gives the same numbers
without re-reading the database catalog on every call (a test checks both ways agree); tp = pp = 1. The model is
given as a local directory with a Hugging Face ``config.json`` of Llama-2-7B's shape
(``models/llama2-7b/config.json``, ``LlamaForCausalLM``: AIConfigurator's LLAMA family), since
0.12.0 ships no Llama-2 config of its own and no network is used. AIConfigurator then infers its
quantization defaults from that config: bfloat16 GEMM, attention and KV cache (its GEMM modes have
no float16; the measured cases are fp16, the same 2-byte width and tensor-core rate on H100/H200).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from mtap_schemas import toolrun
from mtap_schemas.llmpeer import crashed, invalid_value, sig, unavailable, unsupported

from .cases import Case

AIC_DIST = "aiconfigurator"
AIC_CORE_DIST = "aiconfigurator-core"
AIC_PIN = "0.12.0"
#: our hardware id -> AIConfigurator's system name (aiconfigurator_core/systems/<name>.yaml)
SYSTEMS = {"H100-SXM5-80GB": "h100_sxm", "H200-SXM-141GB": "h200_sxm"}
#: our model id -> the model directory given to AIConfigurator (package data)
MODEL_DIRS = {"llama2-7b": "llama2-7b"}
INSTALL_HINT = f"install {AIC_DIST}=={AIC_PIN} (pip install mtap-aiconfigurator-runner brings it; Python 3.11-3.13, Linux x86-64)"

GPT2_REASON = (
    "AIConfigurator 0.12.0 cannot take GPT-2: its model families are chosen from the Hugging Face architecture "
    "(aiconfigurator_core.sdk.common.ARCHITECTURE_TO_MODEL_FAMILY) and GPT2LMHeadModel is not among them "
    "(get_model raises 'The model's architecture GPT2LMHeadModel is not supported'); its registered GPT family "
    "class is reached by no architecture, and GPT-2's LayerNorm, GELU MLP and learned positions are not the LLAMA "
    "family's computation"
)
BERT_REASON = (
    "AIConfigurator 0.12.0 models decoder LLM serving (context and generation phases with a KV cache and an LM "
    "head); it has no encoder-only family, and BertModel is not in ARCHITECTURE_TO_MODEL_FAMILY (get_model raises "
    "'The model's architecture BertModel is not supported')"
)
FP32_REASON = (
    "AIConfigurator 0.12.0 has no 32-bit float mode: its GEMM quantization modes (common.GEMMQuantMode) are "
    "bfloat16, fp8 variants, int8/int4 weight-only, SmoothQuant and NVFP4, and its databases hold no fp32 "
    "operation times; this case was measured in true FP32 (tf32 false)"
)


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def aic_version() -> str | None:
    return _dist_version(AIC_DIST)


def aic_core_version() -> str | None:
    return _dist_version(AIC_CORE_DIST)


def location(version: str | None) -> str:
    if version is None:
        return f"{AIC_DIST} (not installed)"
    return f"{AIC_DIST} {version} from PyPI (aiconfigurator-core {aic_core_version() or '?'})"


def model_dir(model: str) -> Path:
    """The model directory (a Hugging Face config.json) given to AIConfigurator for ``model``."""
    return Path(str(resources.files(__package__) / "models" / MODEL_DIRS[model]))


def model_config_sha256(model: str) -> str:
    return hashlib.sha256((model_dir(model) / "config.json").read_bytes()).hexdigest()


def quiet() -> None:
    """AIConfigurator logs database loading and fallbacks at INFO/WARNING on stderr: keep stderr to the progress bar."""
    for name in ("aiconfigurator", "aiconfigurator_core"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass(frozen=True)
class Defaults:
    """``cli_estimate``'s own defaults (its signature), and the database version they resolve to per system."""

    backend: str
    database_mode: str
    stride: int
    versions: tuple[tuple[str, str | None], ...]  # (aic system, version or None when it has no database)

    def version(self, system: str) -> str | None:
        return dict(self.versions)[system]


def defaults(systems: list[str]) -> Defaults:
    """Read the authors' defaults from ``cli_estimate`` and resolve the database version per system.

    Raises ImportError when AIConfigurator is not installed."""
    quiet()
    from aiconfigurator.cli.api import cli_estimate
    from aiconfigurator.sdk.perf_database import get_latest_database_version

    sig = inspect.signature(cli_estimate).parameters
    backend = sig["backend_name"].default
    versions = tuple((s, get_latest_database_version(s, backend)) for s in systems)
    return Defaults(backend, sig["database_mode"].default, sig["stride"].default, versions)


def call_parameters(case: Case, d: Defaults) -> dict[str, Any]:
    """The arguments of the ``cli_estimate`` call for ``case`` (the ones we set), and the defaults it keeps."""
    system = SYSTEMS[case.hardware]
    p: dict[str, Any] = {
        "aic_entry": "aiconfigurator.cli.api.cli_estimate",
        "aic_system": system,
        "aic_backend": d.backend,
        "aic_database_mode": d.database_mode,
        "aic_stride": d.stride,
        "aic_tp": 1,
        "aic_pp": 1,
        "aic_model": f"mtap_aiconfigurator_runner/models/{MODEL_DIRS[case.model]}",
        "aic_model_config_sha256": model_config_sha256(case.model),
    }
    if case.scope == "prefill":
        p.update({"aic_mode": "static_ctx", "aic_isl": case.tokens, "aic_osl": 1, "aic_batch_size": 1, "aic_latency_field": "ttft"})
    else:
        p.update(
            {
                "aic_mode": "static_gen",
                "aic_isl": case.kv,
                "aic_osl": 2,
                "aic_batch_size": case.batch,
                "aic_latency_field": "tpot",
                "aic_decode_seq_len": case.kv + 1,
            }
        )
    return p


def call_aic(case: Case, d: Defaults) -> Any:
    """AIConfigurator's EstimateResult for the case (its latencies are in ms)."""
    quiet()
    from aiconfigurator.cli.api import cli_estimate

    p = call_parameters(case, d)
    # backend_version: the default version, resolved once per system as cli_estimate resolves a None
    # (get_latest_database_version), and passed so each call does not re-read ~330 YAML files for it
    return cli_estimate(
        str(model_dir(case.model)),
        p["aic_system"],
        mode=p["aic_mode"],
        isl=p["aic_isl"],
        osl=p["aic_osl"],
        batch_size=p["aic_batch_size"],
        backend_version=d.version(p["aic_system"]),
    )


def independence(system: str, backend: str, version: str) -> dict[str, Any]:
    """AIConfigurator predicts from operation times NVIDIA measured on its own machines of the same GPU model:
    a microbenchmark profile of the scored hardware that is not the scored cases (kinds.REFERENCE_CLASSES)."""
    return toolrun.independence(
        "calibrated-separately",
        f"AIConfigurator's {backend} {version} per-operation database of {system} (GEMM, attention, ... times "
        "collected by NVIDIA on their own GPUs of this model, shipped in aiconfigurator-core 0.12.0), not the scored cases",
    )


def _phase_dicts(summary: Any, scope: str) -> tuple[dict[str, float], dict[str, str]]:
    if scope == "prefill":
        return dict(summary.get_context_latency_dict()), dict(summary.get_context_source_dict())
    return dict(summary.get_generation_latency_dict()), dict(summary.get_generation_source_dict())


def _unsupported_reasons(case: Case) -> list[str]:
    reasons = {"gpt2": [GPT2_REASON], "bert-base": [BERT_REASON]}.get(case.model, [])
    if case.dtype == "fp32":
        reasons.append(FP32_REASON)
    return reasons


def result_parameters(res: Any, ops: dict[str, float], sources: dict[str, str]) -> dict[str, Any]:
    """The case's parameters from AIConfigurator's answer: what it served the case as, and each operation's time and source."""
    raw = res.raw
    total = sum(ops.values())
    silicon = sum(v for k, v in ops.items() if sources.get(k) == "silicon")
    empirical = sum(v for k, v in ops.items() if sources.get(k) == "empirical")
    params = {
        "aic_backend_version": str(res.backend_version),
        "aic_result_system": str(raw.get("system")),
        "aic_result_backend": str(raw.get("backend")),
        "aic_gemm_quant": str(raw.get("gemm")),
        "aic_kvcache_quant": str(raw.get("kvcache")),
        "aic_fmha_quant": str(raw.get("fmha")),
        "dtype_served_as": str(raw.get("gemm")),
        "aic_memory_gib": sig(float(raw.get("memory") or 0.0)),
        "aic_oom_warning": str(res.kv_cache_warning or ""),
        "aic_ops": ", ".join(ops),
        "aic_silicon_latency_share": sig(silicon / total) if total > 0 else 0.0,
        "aic_empirical_latency_share": sig(empirical / total) if total > 0 else 0.0,
        "database_provenance": (
            "measured by NVIDIA on their own machines with this GPU model (not our GPU); "
            "AIConfigurator interpolates its rows to the case's shapes"
        ),
    }
    for name, value in ops.items():
        params[f"aic_op_ms.{name}"] = sig(value)
        # where AIConfigurator took the operation's time from: silicon (its database rows), empirical
        # (speed-of-light x an empirical factor), mixed, ... (its own per-op source labels)
        params[f"aic_op_source.{name}"] = str(sources.get(name, ""))
    return params


def result_metrics(latency: float, ops: dict[str, float]) -> list[dict[str, Any]]:
    """The step's latency and its attention and GEMM parts; a latency that is not its operations' sum raises toolrun.InvalidValue."""
    total = sum(ops.values())
    if not math.isclose(latency, total, rel_tol=1e-9, abs_tol=1e-12):
        raise toolrun.InvalidValue(f"metric latency: {latency!r} ms is not the sum of its operations ({total!r} ms)")
    timed = {"kind": "prediction", "timing": "simulated"}
    return [
        toolrun.metric("latency", sig(latency), "ms", **timed),
        toolrun.metric("attention_latency", sig(sum(v for k, v in ops.items() if k.endswith("_attention"))), "ms", **timed),
        toolrun.metric("gemm_latency", sig(sum(v for k, v in ops.items() if k.endswith("_gemm"))), "ms", **timed),
    ]


def predict(case: Case, d: Defaults | None) -> dict[str, Any]:
    """The tool-run case for one planned case. ``d`` is None when AIConfigurator is not installed."""
    params = case.parameters()
    reasons = _unsupported_reasons(case)
    if reasons:
        return unsupported(case, "; and ".join(reasons), params)
    if d is None:
        return unavailable(case, "package-missing", f"the Python package {AIC_DIST} is not installed; {INSTALL_HINT}", params)
    params.update(call_parameters(case, d))
    system = SYSTEMS[case.hardware]
    version = d.version(system)
    if version is None:
        msg = (
            f"AIConfigurator {AIC_PIN} has no {d.backend} performance database for {system} "
            f"(get_latest_database_version({system!r}, {d.backend!r}) is None)"
        )
        return unavailable(case, "profile-missing", msg, params)
    params["aic_backend_version"] = version
    params["aic_backend_version_from"] = f"get_latest_database_version({system!r}, {d.backend!r}) (cli_estimate's default)"
    try:
        res = call_aic(case, d)
    except Exception as exc:  # noqa: BLE001 - AIConfigurator raising is a failed case, named
        return crashed(case, "AIConfigurator", exc, params)
    ops, sources = _phase_dicts(res.summary, case.scope)
    params.update(result_parameters(res, ops, sources))
    try:
        predicted = result_metrics(float(res.ttft if case.scope == "prefill" else res.tpot), ops)
    except toolrun.InvalidValue as exc:
        return invalid_value(case, exc, params)
    return toolrun.ok(
        case.id, metrics=predicted, parameters=params, **case.where(), independence=independence(system, d.backend, str(res.backend_version))
    )


@dataclass(frozen=True)
class Unit:
    case: Case
    defaults: Defaults | None

    @property
    def ident(self) -> str:
        return self.case.id


def run_unit(unit: Unit) -> dict[str, Any]:
    return predict(unit.case, unit.defaults)
