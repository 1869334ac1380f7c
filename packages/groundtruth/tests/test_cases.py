from __future__ import annotations

import re

from mtap_groundtruth import cases

KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def test_single_suite_is_the_issue_matrix() -> None:
    plan = cases.plan("single")
    keys = [c.key for c in plan]
    # conv1, ResNet-50, BERT + GPT-2, prefill, decode, W8/W9 batch sweep, ResNet-50 layers, W8/W9 layers at batch 1
    assert len(keys) == len(set(keys)) == 4 + 4 + 16 + 5 + 18 + 16 + 216 + 2 * (53 + 16)
    for key in ("resnet50.conv1.b1.fp16", "resnet50.model.b32.fp32", "resnet50.layer.layer1-0-conv2.b1.fp32",
                "bert-base.model.b8.s128.fp16", "gpt2.model.b1.s512.fp16", "llama2-7b.prefill.b1.t512.fp16",
                "llama2-7b.decode.b8.kv1024.fp16", "llama2-7b.prefill.b1.t2048.fp16", "llama2-7b.decode.b32.kv2048.fp16",
                "mobilenet-v2.model.b1.fp16", "mobilenet-v2.model.b128.fp32", "vgg16.model.b32.fp32", "vgg16.model.b1.fp16",
                "vgg16.layer.features-0.b1.fp32", "vgg16.layer.classifier-6.b1.fp16", "mobilenet-v2.layer.features-18-0.b1.fp16",
                "mobilenet-v2.layer.features-2-conv-1-0.b1.fp32", "mobilenet-v2.layer.classifier-1.b1.fp32"):
        assert key in keys
    assert all(KEY.match(k) for k in keys)
    assert {c.workload for c in plan} == {"W1", "W4", "W5", "W7", "W8", "W9"}
    assert {c.workload for c in plan if c.key.startswith("mobilenet-v2.")} == {"W8"}
    assert {c.workload for c in plan if c.key.startswith("vgg16.")} == {"W9"}
    sweep = sorted(c.params["batch"] for c in plan if c.key.startswith("vgg16.model.") and c.key.endswith(".fp16"))
    assert sweep == [1, 8, 32, 128]


def test_multi_suite_scales_with_the_gpu_count() -> None:
    two = [c.key for c in cases.plan("multi", 2)]
    assert len(two) == 12 + 2
    assert "all-reduce.n2.1gib" in two and "all-to-all.n2.1mib" in two
    assert "resnet50.ddp-step.n1.b32.fp32" in two and "resnet50.ddp-step.n2.b32.fp32" in two
    eight = [c.key for c in cases.plan("multi", 8)]
    assert len(eight) == 3 * 12 + 4
    assert "reduce-scatter.n8.64mib" in eight and "resnet50.ddp-step.n8.b32.fp32" in eight
    assert {c.workload for c in cases.plan("multi", 8)} == {"W6", "W3"}


def test_neusight_suite_names_their_tags() -> None:
    plan = cases.plan("neusight")
    assert len(plan) == 10
    assert all(c.key.endswith(".fp32") and c.params["neusight_tag"] for c in plan)
    assert plan[0].key == "bert-large.model.b8.s512.fp32"


def test_select_include_exclude_limit() -> None:
    plan = cases.plan("single")
    sel = cases.select(plan, ["resnet50.conv1.*", "gpt2.*"], ["*.fp32"], None)
    assert [c.key for c in sel][:2] == ["resnet50.conv1.b1.fp16", "resnet50.conv1.b32.fp16"]
    assert all(c.key.endswith("fp16") for c in sel)
    assert len(cases.select(plan, None, None, 3)) == 3
