"""The case matrix is the ground truth's: the same keys, per GPU, and the same model definitions."""

from __future__ import annotations

import mtap_schemas as ms
from mtap_genz_runner.cases import HARDWARE, MODELS, plan, select

GROUNDTRUTH = {"H100-SXM5-80GB": "h100-x1", "H200-SXM-141GB": "h200-x1"}
#: workloads of transformer models; the ground truth's CNN workloads (W1 ResNet-50, W8 MobileNet-V2,
#: W9 VGG-16) are outside GenZ's domain (an LLM analyser), so they are not planned at all
PLANNED_WORKLOADS = {"W4", "W5", "W7"}


def _measured(data_dir, hw):
    doc = ms.read_tool_run(data_dir / "evaluation" / "groundtruth" / f"{GROUNDTRUTH[hw]}.tool-run.json")
    return [c for c in doc["cases"] if c["status"] == "ok" and c["hardware"] == hw]


def test_matrix_equals_the_measured_keys(data_dir):
    for hw in HARDWARE:
        measured = _measured(data_dir, hw)
        want = {c["key"] for c in measured if c["workload"] in PLANNED_WORKLOADS}
        got = [c.key for c in plan((hw,))]
        assert len(got) == len(set(got)) == 39
        assert set(got) == want, (hw, set(got) ^ want)
        assert {c["workload"] for c in measured} - PLANNED_WORKLOADS <= {"W1", "W8", "W9"}
        # each planned case is filed under the workload the measurement is
        by_key = {c["key"]: c["workload"] for c in measured}
        assert all(c.workload == by_key[c.key] for c in plan((hw,)))


def test_case_parameters_equal_the_measured_ones(data_dir):
    """Batch, tokens, KV length and sequence of each case are the measured case's parameters."""
    for hw in HARDWARE:
        measured = {c["key"]: c["parameters"] for c in _measured(data_dir, hw)}
        for case in plan((hw,)):
            m = measured[case.key]
            assert m["model"] == case.model and m["batch"] == case.batch and m["dtype"] == case.dtype
            for name in ("tokens", "kv", "seq"):
                assert m.get(name) == getattr(case, name), (case.key, name)


def test_model_definitions_equal_the_measured_models(data_dir):
    for hw in HARDWARE:
        for c in _measured(data_dir, hw):
            if c["workload"] in PLANNED_WORKLOADS:
                p = c["parameters"]
                assert {k: p[k] for k in ("layers", "hidden", "heads", "ffn", "vocab")} == MODELS[p["model"]], c["key"]


def test_plan_order_and_ids():
    cases = plan()
    assert [c.hardware for c in cases[:39]] == ["H100-SXM5-80GB"] * 39
    assert cases[0].id == "H100-SXM5-80GB:llama2-7b.prefill.b1.t128.fp16"
    assert len({c.id for c in cases}) == len(cases) == 78


def test_select_globs():
    cases = plan(("H100-SXM5-80GB",))
    decode = select(cases, ["llama2-7b.decode.*"], ["*.kv2048.*"])
    assert len(decode) == 12 and all(".decode." in c.key and "kv2048" not in c.key for c in decode)
    assert select(cases, None, None) == cases
