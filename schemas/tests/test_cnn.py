"""The kit's one definition of the image workloads (``mtap_schemas.cnn``).

Needs torch (the kit's module imports it at its top); where torch is absent, as in the light
environment the kit's own tests run in under nox, the module is skipped. The packages that build
these models (analytical-runner, groundtruth, nnmeter-runner) check the definition against
frozen copies of their former classes in their own tests.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mtap_schemas import cnn  # noqa: E402  (after the torch check)


@pytest.mark.parametrize("model", sorted(cnn.CNNS))
def test_parameter_counts_are_torchvisions(model: str) -> None:
    with torch.device("meta"):
        assert sum(p.numel() for p in cnn.build(model).parameters()) == cnn.PARAMETERS[model]


def test_layer_counts_and_names() -> None:
    assert [len(cnn.layer_names(m)) for m in ("resnet50", "mobilenet-v2", "vgg16")] == [54, 53, 16]
    assert cnn.layer_names("resnet50")[:5] == ("conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3",
                                               "layer1.0.downsample.0")
    assert cnn.layer_slug("layer1.0.downsample.0") == "layer1-0-downsample-0"
    assert cnn.layer_slug("features.1.conv_0.Weird") == "features-1-conv-0-weird"


def test_shortcut_first_same_values_other_order() -> None:
    """Both ResNet-50 forwards compute the same numbers; only the shortcut's place differs."""
    torch.manual_seed(0)
    tv = cnn.ResNet50().eval()
    torch.manual_seed(0)
    measured = cnn.ResNet50(shortcut_first=True).eval()
    for (k, a), (_, b) in zip(tv.state_dict().items(), measured.state_dict().items()):
        assert torch.equal(a, b), k  # same creation order: same default initialisation
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(tv(x), measured(x))
    first = [n for n, _, _ in cnn.cnn_layers("resnet50", shortcut_first=True)]
    after = [n for n, _, _ in cnn.cnn_layers("resnet50")]
    assert first[1:3] == ["layer1.0.downsample.0", "layer1.0.conv1"]
    assert after[1:5] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3", "layer1.0.downsample.0"]
    assert tuple(after) == cnn.layer_names("resnet50")  # torchvision's forward runs in definition order


def test_cnn_layers_shapes() -> None:
    layers = {n: s for n, _, s in cnn.cnn_layers("resnet50", 4, 224)}
    assert layers["conv1"] == (4, 3, 224, 224) and layers["layer4.2.conv3"] == (4, 512, 7, 7) and layers["fc"] == (4, 2048)
    assert dict((n, s) for n, _, s in cnn.cnn_layers("vgg16", 1))["classifier.0"] == (1, 25088)


def test_shortcut_first_changes_nothing_without_a_separate_shortcut() -> None:
    for model in ("mobilenet-v2", "vgg16"):
        assert cnn.cnn_layers(model, shortcut_first=True) is not cnn.cnn_layers(model)
        assert [n for n, _, _ in cnn.cnn_layers(model, shortcut_first=True)] == [n for n, _, _ in cnn.cnn_layers(model)]
