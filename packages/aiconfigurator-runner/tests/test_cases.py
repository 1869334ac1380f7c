"""The case matrix is exactly the ground truth's, and the model AIConfigurator is given is ours."""

from __future__ import annotations

import json

from conftest import GROUNDTRUTH

from mtap_aiconfigurator_runner import aic
from mtap_aiconfigurator_runner.cases import HARDWARE, MODELS, plan, select


def test_keys_equal_the_ground_truth_per_gpu() -> None:
    planned = plan()
    for path, hw in zip(GROUNDTRUTH, HARDWARE):
        doc = json.loads(path.read_text())
        measured = {c["key"] for c in doc["cases"] if c["workload"] in ("W4", "W5", "W7") and c["status"] == "ok"}
        assert {c["hardware"] for c in doc["cases"]} == {hw}
        assert {c.key for c in planned if c.hardware == hw} == measured
    assert len(planned) == len({c.id for c in planned}) == 78


def test_case_parameters_match_the_measured_ones() -> None:
    doc = json.loads(GROUNDTRUTH[0].read_text())
    measured = {c["key"]: c["parameters"] for c in doc["cases"]}
    for c in plan(("H100-SXM5-80GB",)):
        got = measured[c.key]
        for name, value in c.parameters().items():
            if name != "scope":
                assert got[name] == value, (c.key, name)
        if c.model == "llama2-7b":
            assert {k: got[k] for k in MODELS["llama2-7b"]} == MODELS["llama2-7b"]


def test_the_llama2_config_is_ours_as_aiconfigurator_reads_it() -> None:
    """AIConfigurator's own parser of the config.json we give it sees Llama-2-7B's shape (MHA, 32 x 4096, 11008, 32000)."""
    from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

    got = get_model_config_from_model_path(str(aic.model_dir("llama2-7b")))
    m = MODELS["llama2-7b"]
    assert got["architecture"] == "LlamaForCausalLM"
    assert (got["layers"], got["hidden_size"], got["n"], got["n_kv"], got["inter_size"], got["vocab"], got["d"]) == (
        m["layers"],
        m["hidden"],
        m["heads"],
        m["heads"],
        m["ffn"],
        m["vocab"],
        m["hidden"] // m["heads"],
    )


def test_select_globs() -> None:
    cases = plan(("H100-SXM5-80GB",))
    assert [c.key for c in select(cases, ["*.prefill.*"], ["*t2048*"])] == [
        f"llama2-7b.prefill.b1.t{t}.fp16" for t in (128, 256, 512, 1024)
    ]
