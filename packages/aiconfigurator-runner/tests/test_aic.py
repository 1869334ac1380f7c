"""AIConfigurator itself: the runner reproduces a captured real prediction, its defaults are the authors',
and what it cannot take is what the tool itself refuses."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from mtap_aiconfigurator_runner import aic
from mtap_aiconfigurator_runner.cases import plan

CAPTURED = json.loads((FIXTURES / "aic-0.12.0-captured.json").read_text())


@pytest.fixture(scope="module")
def defaults() -> aic.Defaults:
    return aic.defaults(["h100_sxm", "h200_sxm"])


def _case(case_id: str):
    return next(c for c in plan() if c.id == case_id)


def test_defaults_are_the_authors(defaults: aic.Defaults) -> None:
    assert aic.aic_version() == "0.12.0" and aic.aic_core_version() == "0.12.0"
    assert (defaults.backend, defaults.database_mode, defaults.stride) == ("trtllm", "SILICON", 32)
    assert defaults.versions == (("h100_sxm", "1.3.0rc20"), ("h200_sxm", "1.3.0rc20"))


def test_cli_estimate_at_its_defaults_reproduces_the_captured_value() -> None:
    """One real call exactly as captured (no backend_version: cli_estimate resolves it itself)."""
    from aiconfigurator.cli.api import cli_estimate

    call = CAPTURED["calls"][0]
    res = cli_estimate(
        str(aic.model_dir("llama2-7b")), call["system"], mode=call["mode"], isl=call["isl"], osl=call["osl"], batch_size=call["batch_size"]
    )
    assert (res.backend_name, res.backend_version) == (call["backend"], call["backend_version"])
    assert getattr(res, call["field"]) == pytest.approx(call["value_ms"], rel=1e-9)


@pytest.mark.parametrize("call", CAPTURED["calls"], ids=[c["case"] for c in CAPTURED["calls"]])
def test_the_runner_reproduces_the_captured_values(call: dict, defaults: aic.Defaults) -> None:
    case = _case(call["case"])
    rec = aic.predict(case, defaults)
    assert rec["status"] == "ok", rec["error"]
    lat = next(m for m in rec["metrics"] if m["name"] == "latency")
    assert (lat["unit"], lat["kind"], lat["timing"]) == ("ms", "prediction", "simulated")
    assert lat["value"] == pytest.approx(call["value_ms"], rel=5e-6)
    p = rec["parameters"]
    assert (p["aic_mode"], p["aic_isl"], p["aic_osl"], p["aic_batch_size"]) == (call["mode"], call["isl"], call["osl"], call["batch_size"])
    assert (p["aic_backend"], p["aic_backend_version"], p["aic_system"]) == (call["backend"], call["backend_version"], call["system"])
    assert p["dtype_served_as"] == "bfloat16"
    assert rec["independence"]["class"] == "calibrated-separately"
    assert sum(v for k, v in p.items() if k.startswith("aic_op_ms.")) == pytest.approx(lat["value"], rel=1e-5)


def test_decode_step_sees_kv_plus_one(defaults: aic.Defaults) -> None:
    """static_gen with isl=kv, osl=2 is one step at sequence length kv+1: the engine's decode step at isl=kv."""
    from aiconfigurator.sdk.models import get_model
    from aiconfigurator.sdk.perf_database import get_database
    from aiconfigurator_core.sdk.config import ModelConfig
    from aiconfigurator_core.sdk.rust_engine_step import estimate_decode_step_latency_with_rust

    rec = aic.predict(_case("H100-SXM5-80GB:llama2-7b.decode.b8.kv1024.fp16"), defaults)
    model = get_model(str(aic.model_dir("llama2-7b")), ModelConfig(tp_size=1, pp_size=1), "trtllm")
    db = get_database("h100_sxm", "trtllm", "1.3.0rc20")
    # decode_step_latency evaluates at s = isl + osl // 2 + 1 (its docstring): isl=1024, osl=1 -> 1025
    step = estimate_decode_step_latency_with_rust(model, db, gen_tokens=8, isl=1024, osl=1)
    lat = next(m["value"] for m in rec["metrics"] if m["name"] == "latency")
    assert lat == pytest.approx(step, rel=1e-5)
    assert rec["parameters"]["aic_decode_seq_len"] == 1025


@pytest.mark.parametrize("architecture", ["GPT2LMHeadModel", "BertModel"])
def test_the_tool_refuses_gpt2_and_bert(tmp_path, architecture: str) -> None:
    from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "architectures": [architecture],
                "num_hidden_layers": 12,
                "hidden_size": 768,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "vocab_size": 50257,
                "max_position_embeddings": 1024,
            }
        )
    )
    with pytest.raises(ValueError, match=f"architecture {architecture} is not supported"):
        get_model_config_from_model_path(str(tmp_path))
    assert architecture.split("LM")[0].split("Model")[0] in (aic.GPT2_REASON + aic.BERT_REASON)


def test_the_tool_has_no_fp32_nor_fp16_gemm() -> None:
    from aiconfigurator_core.sdk import common

    names = {m.name for m in common.GEMMQuantMode}
    assert "bfloat16" in names and not names & {"float32", "fp32", "float16", "fp16", "tf32"}


def test_unsupported_and_unavailable_records(defaults: aic.Defaults) -> None:
    gpt = aic.predict(_case("H100-SXM5-80GB:gpt2.model.b1.s128.fp32"), defaults)
    assert gpt["status"] == "unsupported" and "GPT2LMHeadModel" in gpt["error"]["message"] and "FP32" in gpt["error"]["message"]
    bert = aic.predict(_case("H200-SXM-141GB:bert-base.model.b8.s512.fp16"), defaults)
    assert bert["status"] == "unsupported" and "BertModel" in bert["error"]["message"]
    missing = aic.predict(_case("H100-SXM5-80GB:llama2-7b.prefill.b1.t128.fp16"), None)
    assert (missing["status"], missing["error"]["kind"]) == ("unavailable", "package-missing")


def test_a_gpu_without_database_is_unavailable() -> None:
    """h100_pcie ships no silicon database in 0.12.0 (its README): the tool resolves no version, the case says so."""
    none = aic.defaults(["h100_pcie"])
    assert none.version("h100_pcie") is None
    d = aic.Defaults(none.backend, none.database_mode, none.stride, (("h100_sxm", None),))
    rec = aic.predict(_case("H100-SXM5-80GB:llama2-7b.decode.b1.kv512.fp16"), d)
    assert (rec["status"], rec["error"]["kind"]) == ("unavailable", "profile-missing")
    assert "no trtllm performance database for h100_sxm" in rec["error"]["message"]
