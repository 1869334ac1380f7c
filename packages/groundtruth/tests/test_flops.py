from __future__ import annotations

import pytest
import torch

from mtap_groundtruth import cases, measure
from mtap_groundtruth.flops import conv_macs
from mtap_groundtruth.models import cnn_layers, layer_slug, resnet50_layers


@pytest.fixture(scope="module")
def bench() -> measure.Bench:
    return measure.Bench(measure.Settings(device=torch.device("cpu")))


def case(key: str) -> cases.Case:
    return next(c for c in cases.plan("single") + cases.plan("neusight") if c.key == key)


def test_conv1_is_118013952_macs_at_batch_1(bench: measure.Bench) -> None:
    assert conv_macs(1, 3, 64, 7, 2, 3, 224) == 118_013_952
    fwd, train = measure.flop_metrics(bench, case("resnet50.conv1.b1.fp16"))
    assert fwd == 2 * 118_013_952
    assert train == 2 * fwd  # conv1's backward: weight gradient only (the image needs none)
    assert measure.flop_metrics(bench, case("resnet50.conv1.b32.fp32"))[0] == 32 * 2 * 118_013_952


def test_every_conv_layer_matches_the_hand_formula(bench: measure.Bench) -> None:
    for name, mod, shape in resnet50_layers(1):
        fwd, train = measure.flop_metrics(bench, case(f"resnet50.layer.{name.replace('.', '-')}.b1.fp32"))
        if isinstance(mod, torch.nn.Conv2d):
            macs = conv_macs(1, mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0], shape[-1])
        else:
            macs = mod.in_features * mod.out_features
        assert fwd == 2 * macs, name
        assert train == (2 if name == "conv1" else 3) * fwd, name


def test_resnet50_model_flops(bench: measure.Bench) -> None:
    # 4.09 GMACs at 224x224 (torchvision's published 4.09 GFLOPS counts MACs)
    fwd, _ = measure.flop_metrics(bench, case("resnet50.model.b1.fp32"))
    assert fwd == 8_178_368_512
    assert 4.08e9 < fwd / 2 < 4.11e9


def test_llama_decode_flops_are_about_two_per_parameter(bench: measure.Bench) -> None:
    fwd, _ = measure.flop_metrics(bench, case("llama2-7b.decode.b1.kv512.fp16"))
    matmul_params = 6_738_415_616 - 32000 * 4096 - 65 * 4096  # the embedding is a lookup; 65 RMSNorm scales
    attention = 32 * 2 * 2 * 513 * 4096  # scores and context over 513 positions, 32 layers
    assert fwd == 2 * matmul_params + attention


def test_prefill_counts_the_lm_head_for_the_last_token_only(bench: measure.Bench) -> None:
    f128, _ = measure.flop_metrics(bench, case("llama2-7b.prefill.b1.t128.fp16"))
    f256, _ = measure.flop_metrics(bench, case("llama2-7b.prefill.b1.t256.fp16"))
    head = 2 * 4096 * 32000
    # doubling the tokens doubles everything but the head, plus the attention's quadratic part
    assert f256 - head > 2 * (f128 - head)


def test_w8_w9_model_flops_are_torchvisions_published_macs(bench: measure.Bench) -> None:
    # torchvision's model table: mobilenet_v2 0.30 GFLOPS, vgg16 15.47 GFLOPS (counted as MACs)
    mb, _ = measure.flop_metrics(bench, case("mobilenet-v2.model.b1.fp32"))
    vgg, _ = measure.flop_metrics(bench, case("vgg16.model.b1.fp16"))
    assert 0.295e9 < mb / 2 < 0.305e9
    assert round(vgg / 2 / 1e9, 2) == 15.47
    assert measure.flop_metrics(bench, case("vgg16.model.b32.fp32"))[0] == 32 * vgg


def test_w8_w9_layers_match_the_hand_formula_depthwise_included(bench: measure.Bench) -> None:
    for model in ("mobilenet-v2", "vgg16"):
        total = 0
        for name, mod, shape in cnn_layers(model, 1):
            fwd, train = measure.flop_metrics(bench, case(f"{model}.layer.{layer_slug(name)}.b1.fp32"))
            if isinstance(mod, torch.nn.Conv2d):
                macs = conv_macs(1, mod.in_channels // mod.groups, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0], shape[-1])
            else:
                macs = mod.in_features * mod.out_features
            assert fwd == 2 * macs, name
            assert train is None, name  # inference workloads: forward only
            total += fwd
        whole, _ = measure.flop_metrics(bench, case(f"{model}.model.b1.fp32"))
        assert total == whole, model
