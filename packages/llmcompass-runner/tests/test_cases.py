"""The case matrix is exactly the ground truth's keys (so a cross-tool table joins them)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from mtap_llmcompass_runner.cases import HARDWARE, MODELS, plan, select

GT = {"H100-SXM5-80GB": "h100-x1", "H200-SXM-141GB": "h200-x1"}
MODEL_PREFIXES = ("llama2-7b.", "gpt2.", "bert-base.")


@pytest.mark.parametrize("hardware", HARDWARE)
def test_keys_equal_the_ground_truths(hardware):
    doc = json.loads((REPO / "data/evaluation/groundtruth" / f"{GT[hardware]}.tool-run.json").read_text())
    measured = {
        (c["workload"], c["key"])
        for c in doc["cases"]
        if c.get("key", "") and c["key"].startswith(MODEL_PREFIXES) and c["hardware"] == hardware
    }
    ours = {(c.workload, c.key) for c in plan((hardware,))}
    assert ours == measured
    assert len(ours) == 5 + 18 + 8 + 8


def test_model_definitions_equal_the_ground_truths_parameters():
    doc = json.loads((REPO / "data/evaluation/groundtruth/h100-x1.tool-run.json").read_text())
    for c in doc["cases"]:
        key = c.get("key") or ""
        for model, m in MODELS.items():
            if key.startswith(model + "."):
                p = c["parameters"]
                assert (p["layers"], p["hidden"], p["heads"], p["ffn"], p["vocab"]) == (
                    m["layers"],
                    m["hidden"],
                    m["heads"],
                    m["ffn"],
                    m["vocab"],
                ), key


def test_select_globs():
    cases = plan(("H100-SXM5-80GB",))
    assert [c.key for c in select(cases, ["llama2-7b.decode.b1.*"])] == [
        "llama2-7b.decode.b1.kv512.fp16",
        "llama2-7b.decode.b1.kv1024.fp16",
        "llama2-7b.decode.b1.kv2048.fp16",
    ]
    assert all(c.dtype == "fp16" for c in select(cases, None, ["*.fp32"]))
