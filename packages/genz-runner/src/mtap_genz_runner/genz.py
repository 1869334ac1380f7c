"""GenZ's predictions for one case (runs in a worker process; GenZ is imported here only).

GenZ (genz-llm) models LLM inference as a list of operators (GEMMs, flash-attention Logit/Attend)
whose time is each max(compute, memory, communication) on a roofline of one system's peak FLOPs
and off-chip bandwidth (``system_eff`` = 1: GenZ's default), summed over the model. This module
calls GenZ's own entry points, unchanged:

* prefill (W5) and a GPT-2 forward (W7): ``GenZ.prefill_moddeling(model, batch_size, input_tokens, ...)``
* decode (W5): ``GenZ.decode_moddeling(model, batch_size, input_tokens=kv, output_tokens=1, Bb=1, ...)``
  (``input_tokens`` = the cached KV, ``output_tokens`` = 1 = the new token's own K/V, so the new
  token attends to kv+1 entries as measured; ``Bb`` = 1: no beams — GenZ's default is 4)

with ``bits='bf16'`` (GenZ has no ``fp16``; bf16 is its 16-bit type: 2 bytes at the full 16-bit
tensor-core peak, which fp16 shares on H100/H200), ``tensor_parallel=1`` (one GPU).

GenZ writes each model's layer table as a CSV to a hard-coded ``/tmp/genz/data/model/``; the
runner points those defaults at a temporary folder per case (removed afterwards), so a run leaves
nothing behind and parallel workers never share files.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mtap_schemas import toolrun
from mtap_schemas.llmpeer import crashed, invalid_value, sig, unavailable, unsupported

from .cases import Case

#: our model id -> GenZ's catalog name (GenZ.Models MODEL_DICT)
GENZ_MODELS = {"llama2-7b": "llama2_7b", "gpt2": "gpt-2"}
#: our hardware id -> the system GenZ ships for it (Systems.system_configs); others come from data/hardware/hardware.json
GENZ_SYSTEMS = {"H100-SXM5-80GB": "H100_GPU"}
GENZ_BITS = "bf16"
GENZ_DATA = "/tmp/genz/data"
#: GenZ's units: Flops in TFLOPS (1e12), Memory_BW in "GB/s" that GenZ converts with 2**30, Memory_size in GB (2**30)
GIB = 2**30

BERT_REASON = (
    "GenZ 0.0.16 has no BERT in its model catalog, and the model GenZ builds for a prefill is a decoder LLM that "
    "always ends in an LM-head GEMM over the vocabulary for every token (embedding and classifier); the measured "
    "BertModel (lm_head false) has a pooler and no LM head, so GenZ cannot express this computation"
)
FP32_REASON = (
    "GenZ derives every precision from one peak (System.compute_multiplier): bits 'f32' runs at half the bf16 "
    "tensor-core peak, i.e. the TF32 rate (494.5 TFLOPS on its H100_GPU); this case was measured in true FP32 "
    "(tf32 false: FP32 CUDA cores, 67 TFLOPS), a compute rate GenZ's system model cannot be given"
)


@dataclass(frozen=True)
class System:
    """The system one hardware id gets: GenZ's own description where it ships one, else one built from the catalog."""

    hardware: str
    source: str  # "GenZ Systems.system_configs['H100_GPU']" | "data/hardware/hardware.json#H200-SXM-141GB"
    genz_name: str | None  # passed to GenZ by name when it ships one
    figures: tuple[tuple[str, Any], ...]  # the dict GenZ reads (Flops, Memory_size, Memory_BW, ICN, real_values)

    def spec(self) -> str | dict[str, Any]:
        return self.genz_name if self.genz_name is not None else dict(self.figures)

    def parameters(self) -> dict[str, Any]:
        f = dict(self.figures)
        return {
            "hardware_source": self.source,
            **{f"genz_system_{k}": v for k, v in sorted(f.items())},
            "peak_flops_per_s": f["Flops"] * 1e12,
            "bandwidth_bytes_per_s": f["Memory_BW"] * GIB,
            "memory_bytes": f["Memory_size"] * GIB,
        }


def genz_system(hardware: str, catalog_entry: dict[str, Any] | None, catalog_path: str) -> System:
    """GenZ's own system for ``hardware`` if it ships one; else the catalog's datasheet figures in GenZ's units."""
    from Systems.system_configs import system_configs

    name = GENZ_SYSTEMS.get(hardware)
    if name is not None:
        return System(hardware, f"GenZ Systems.system_configs[{name!r}]", name, tuple(sorted(system_configs[name].items())))
    if catalog_entry is None:
        raise ValueError(f"no GenZ system and no catalog entry for {hardware}")
    figures = {
        "Flops": catalog_entry["peak_flops"]["fp16"] / 1e12,
        "Memory_size": catalog_entry["memory"]["bytes"] / GIB,
        "Memory_BW": catalog_entry["memory"]["bandwidth_bytes_per_s"] / GIB,
        "ICN": (catalog_entry.get("interconnect") or {}).get("bandwidth_bytes_per_s", 0.0) / GIB,
        "real_values": True,
    }
    return System(hardware, f"{catalog_path}#{hardware}", None, tuple(sorted(figures.items())))


@contextlib.contextmanager
def private_data_dir() -> Iterator[str]:
    """Point GenZ's hard-coded layer-table folder at a temporary one for the duration (restored after)."""
    import GenZ.analyse_model as analyse
    import GenZ.Models.get_language_model as language

    funcs = [language.create_full_prefill_model, language.create_full_decode_model, analyse.get_model_df]
    saved = [f.__defaults__ for f in funcs]
    with tempfile.TemporaryDirectory(prefix="mtap-genz-") as tmp:
        try:
            for f in funcs:
                f.__defaults__ = tuple(tmp if isinstance(d, str) and d.rstrip("/") == GENZ_DATA else d for d in f.__defaults__ or ())
            yield tmp
        finally:
            for f, d in zip(funcs, saved):
                f.__defaults__ = d


def model_config(model: str) -> dict[str, Any]:
    """GenZ's catalog entry for our model, in our field names (the test checks it equals ours)."""
    from GenZ.Models import get_configs

    c = get_configs(GENZ_MODELS[model])
    return {
        "layers": c.num_decoder_layers,
        "hidden": c.hidden_size,
        "heads": c.num_attention_heads,
        "ffn": c.intermediate_size,
        "vocab": c.vocab_size,
        "kv_heads": c.num_key_value_heads,
        "ffn_matrices": c.num_ffi,
        "activation": c.hidden_act,
    }


def call_genz(case: Case, system: System) -> Any:
    """GenZ's ModdelingOutput for the case (its latency is in ms: GenZ's Unit() has unit_time 'msec')."""
    from GenZ import decode_moddeling, prefill_moddeling

    common = {
        "model": GENZ_MODELS[case.model],
        "batch_size": case.batch,
        "system_name": system.spec(),
        "bits": GENZ_BITS,
        "system_eff": 1,
        "tensor_parallel": 1,
        "pipeline_parallel": 1,
        "expert_parallel": 1,
    }
    with warnings.catch_warnings(), private_data_dir():
        warnings.simplefilter("ignore")
        if case.scope == "decode":
            return decode_moddeling(input_tokens=case.kv, output_tokens=1, Bb=1, **common)
        return prefill_moddeling(input_tokens=case.tokens if case.scope == "prefill" else case.seq, **common)


def genz_call_parameters(case: Case) -> dict[str, Any]:
    p: dict[str, Any] = {"genz_model": GENZ_MODELS[case.model], "genz_bits": GENZ_BITS, "system_eff": 1, "tensor_parallel": 1}
    if case.scope == "decode":
        p.update({"genz_entry": "GenZ.decode_moddeling", "input_tokens": case.kv, "output_tokens": 1, "Bb": 1})
    else:
        p.update({"genz_entry": "GenZ.prefill_moddeling", "input_tokens": case.tokens if case.scope == "prefill" else case.seq})
    return p


def _unsupported_reason(case: Case) -> str | None:
    if case.model == "bert-base":
        return BERT_REASON
    if case.dtype == "fp32":
        return FP32_REASON
    return None


def result_parameters(case: Case, out: Any) -> dict[str, Any]:
    """The case's parameters from GenZ's answer: its model as GenZ has it, its operators, the LM head, embeddings and sizes."""
    summary = out["summary_table"]
    df = out["model_df"]

    def layer_ms(name: str) -> float:
        rows = df[df["Layer Name"] == name]
        return sig(float(rows["Latency (msec)"].sum())) if len(rows) else 0.0

    return {
        **{f"genz_model_{k}": v for k, v in model_config(case.model).items()},
        "genz_operators": ", ".join(str(n) for n in df["Layer Name"].tolist() if n not in ("Repeat", "End Repeat")),
        "lm_head_tokens": case.tokens if case.scope == "prefill" else (case.seq if case.scope == "model" else 1),
        "classifier_latency_ms": layer_ms("classifier"),
        "embeddings_latency_ms": layer_ms("embeddings"),
        "weights_bytes": sig(float(summary["Total Weights (MB)"].values[0]) * 2**20),
        "kv_cache_bytes": sig(float(summary["KV Cache (MB)"].values[0]) * 2**20),
        "is_offload": bool(out["is_offload"]),
    }


def result_metrics(out: Any) -> list[dict[str, Any]]:
    """GenZ's latency (and its attention and linear parts) and FLOPs; a non-finite latency raises toolrun.InvalidValue."""
    summary = out["summary_table"]

    def col(name: str) -> float:
        return float(summary[name].values[0])

    latency = float(out["Latency"])
    if not math.isfinite(latency):
        raise toolrun.InvalidValue(f"metric latency: got {latency!r}, expected a finite number")
    timed = {"kind": "prediction", "timing": "simulated"}
    return [
        toolrun.metric("latency", sig(latency), "ms", **timed),
        toolrun.metric("attention_latency", sig(col("Attn Latency (msec)")), "ms", **timed),
        toolrun.metric("linear_latency", sig(col("Linear Latency (msec)")), "ms", **timed),
        toolrun.metric("flops", sig(col("MACs (MFLOP)") * 1e6), "FLOP", "prediction"),
    ]


def predict(case: Case, system: System, artifacts: tuple[dict[str, str], ...] = ()) -> dict[str, Any]:
    """The tool-run case for one planned case; ``artifacts`` (the hardware catalog) are named where its figures were used."""
    params = case.parameters()
    reason = _unsupported_reason(case)
    if reason is not None:
        return unsupported(case, reason, params)
    params.update(genz_call_parameters(case))
    params.update(system.parameters())
    try:
        out = call_genz(case, system)
    except ImportError as exc:
        return unavailable(case, "package-missing", f"{exc}; install genz-llm==0.0.16 (pip install ./packages/genz-runner brings it)", params)
    except Exception as exc:  # noqa: BLE001 - GenZ raising is a failed case, named
        return crashed(case, "GenZ", exc, params)
    params.update(result_parameters(case, out))
    try:
        predicted = result_metrics(out)
    except toolrun.InvalidValue as exc:
        return invalid_value(case, exc, params)
    used = list(artifacts) if system.genz_name is None else []
    return toolrun.ok(case.id, metrics=predicted, parameters=params, artifacts=used, **case.where())


@dataclass(frozen=True)
class Unit:
    case: Case
    system: System
    artifacts: tuple[dict[str, str], ...] = ()

    @property
    def ident(self) -> str:
        return self.case.id


def run_unit(unit: Unit) -> dict[str, Any]:
    return predict(unit.case, unit.system, unit.artifacts)
