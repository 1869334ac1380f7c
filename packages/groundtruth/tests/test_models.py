from __future__ import annotations

import pytest
import torch

from mtap_groundtruth.models import (
    CONFIGS,
    TINY,
    VGG16,
    MobileNetV2,
    build_transformer,
    cnn_layers,
    count_parameters,
    init_random_,
    layer_slug,
    resnet50,
    resnet50_layers,
)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("bert-base", 109_482_240),  # HF BertModel (with pooler)
        ("gpt2", 124_439_808),  # HF GPT2Model / GPT2LMHeadModel (tied head)
        ("llama2-7b", 6_738_415_616),  # meta-llama/Llama-2-7b-hf
        ("opt-1.3b", 1_315_758_080),  # facebook/opt-1.3b
    ],
)
def test_transformer_parameter_counts_match_the_published_models(name: str, params: int) -> None:
    with torch.device("meta"):
        assert count_parameters(build_transformer(CONFIGS[name])) == params


def test_resnet50_matches_torchvision_parameter_count() -> None:
    with torch.device("meta"):
        assert count_parameters(resnet50()) == 25_557_032


@pytest.mark.parametrize(("model", "params"), [(MobileNetV2, 3_504_872), (VGG16, 138_357_544)])
def test_w8_w9_match_torchvision_parameter_counts(model: type, params: int) -> None:
    # torchvision.models.mobilenet_v2 / vgg16, as torchvision's model table publishes them
    with torch.device("meta"):
        assert count_parameters(model()) == params


def test_w8_w9_layers_carry_torchvision_module_names() -> None:
    mb = cnn_layers("mobilenet-v2", 1)
    assert len(mb) == 53 and sum(isinstance(m, torch.nn.Conv2d) for _, m, _ in mb) == 52
    names = [n for n, _, _ in mb]
    assert names[:3] == ["features.0.0", "features.1.conv.0.0", "features.1.conv.1"]
    assert names[-2:] == ["features.18.0", "classifier.1"]
    depthwise = dict((n, m) for n, m, _ in mb)["features.2.conv.1.0"]
    assert depthwise.groups == depthwise.in_channels == 96 and depthwise.stride == (2, 2)
    vgg = cnn_layers("vgg16", 8)
    assert [n for n, _, _ in vgg][-3:] == ["classifier.0", "classifier.3", "classifier.6"]
    assert len(vgg) == 16 and vgg[0][2] == (8, 3, 224, 224) and vgg[-3][2] == (8, 25088)


@pytest.mark.parametrize("model", [MobileNetV2, VGG16])
def test_w8_w9_forward_on_cpu(model: type) -> None:
    net = init_random_(model()).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_resnet50_layers_are_the_53_convs_and_fc_in_order() -> None:
    layers = resnet50_layers(32)
    names = [n for n, _, _ in layers]
    assert len(layers) == 54
    assert names[0] == "conv1" and names[-1] == "fc"
    assert layers[0][2] == (32, 3, 224, 224)
    assert dict((n, s) for n, _, s in layers)["layer4.2.conv3"] == (32, 512, 7, 7)
    assert sum(isinstance(m, torch.nn.Conv2d) for _, m, _ in layers) == 53
    assert layer_slug("layer1.0.downsample.0") == "layer1-0-downsample-0"


def test_resnet50_forward_shape_and_finite_on_cpu() -> None:
    model = init_random_(resnet50()).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()


def test_llama_decode_equals_prefill_on_the_last_token() -> None:
    """A decode step over a cache filled by the same tokens must give the prefill's last logits."""
    torch.manual_seed(0)
    model = init_random_(build_transformer(TINY["llama2-7b"]).double()).eval()
    ids = torch.randint(TINY["llama2-7b"].vocab, (1, 9))
    with torch.no_grad():
        want = model.prefill(ids)[:, -1]
        cache = model.new_cache(1, 9, torch.float64, "cpu")
        # fill positions 0..7 by decoding token by token, then decode token 8
        for pos in range(9):
            got = model.decode(ids[:, pos : pos + 1], [(k[:, :, : pos + 1], v[:, :, : pos + 1]) for k, v in cache], pos)
    assert torch.allclose(got[:, -1], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["bert-base", "gpt2", "opt-1.3b"])
def test_tiny_transformers_run_on_cpu(name: str) -> None:
    model = init_random_(build_transformer(TINY[name])).eval()
    with torch.no_grad():
        out = model(torch.randint(TINY[name].vocab, (2, 16)))
    assert torch.isfinite(out).all()
    if TINY[name].lm_head:
        assert out.shape == (2, 16, TINY[name].vocab)
    else:  # BERT-base: pooled output
        assert out.shape == (2, TINY[name].hidden)


def test_gpt2_is_causal() -> None:
    """Changing a later token must not change earlier positions' logits."""
    model = init_random_(build_transformer(TINY["gpt2"]).double()).eval()
    ids = torch.randint(TINY["gpt2"].vocab, (1, 12))
    other = ids.clone()
    other[0, -1] = (other[0, -1] + 1) % TINY["gpt2"].vocab
    with torch.no_grad():
        a, b = model(ids), model(other)
    assert torch.allclose(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])
