"""The CNNs this package measures now come from the kit (``mtap_schemas.cnn``); these tests prove
they are the computation the committed measurements (``data/evaluation/groundtruth/``) timed.

The classes below the "frozen reference" line are a FROZEN REFERENCE: ResNet-50, MobileNet-V2,
VGG-16, ``layer_slug`` and ``cnn_layers`` as they stood in ``mtap_groundtruth/models.py`` before
the move (commit e89d966), copied verbatim; ``CNNS`` maps case names to them as it did there. Do
not edit them to make a test pass: a difference between them and the kit's definition is what
these tests catch.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtap_groundtruth import models
from mtap_groundtruth.measure import Bench, Settings

# --------------------------------------------------------------------------- frozen reference (do not edit)

class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """Module names and shapes as torchvision.models.resnet50 (so layer names match)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def layer_slug(name: str) -> str:
    """Module path to the case-key form: ``layer1.0.downsample.0`` -> ``layer1-0-downsample-0``."""
    return name.replace(".", "-").replace("_", "-").lower()


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (to a multiple of 8, never more than 10% down)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation with ReLU6 (children 0 conv, 1 bn, 2 act)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """torchvision's MobileNet-V2 block: optional 1x1 expansion, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 (width 1.0, 224x224): same module tree and names."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        cin = _make_divisible(32)
        last = _make_divisible(1280)
        features: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU6(cin, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class VGG16(nn.Module):
    """torchvision.models.vgg16 (configuration D, no batch norm): same module tree and names."""

    CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@lru_cache(maxsize=16)
def cnn_layers(model: str, batch: int = 1, image: int = 224) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """Every Conv2d and Linear of an image model in execution order: (name, module, input shape).

    Shapes come from a forward pass on the meta device, so this costs nothing. The modules
    are meta modules shared between calls: copy them before use.
    """
    with torch.device("meta"):
        net = CNNS[model]().eval()
        seen: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        hooks = []
        for name, mod in net.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                hooks.append(
                    mod.register_forward_pre_hook(
                        lambda m, args, name=name: seen.append((name, m, tuple(args[0].shape)))
                    )
                )
        with torch.no_grad():
            net(torch.empty(batch, 3, image, image))
        for h in hooks:
            h.remove()
    return seen


CNNS: dict[str, type[nn.Module]] = {"resnet50": ResNet50, "mobilenet-v2": MobileNetV2, "vgg16": VGG16}
old_cnn_layers, old_layer_slug = cnn_layers, layer_slug

# --------------------------------------------------------------------------- tests


def _tree(net: nn.Module) -> list[tuple[str, str, str]]:
    """Every module: path, class name and its constructor arguments (``extra_repr``)."""
    return [(n, type(m).__name__, m.extra_repr()) for n, m in net.named_modules()]


@pytest.mark.parametrize("model", sorted(CNNS))
def test_same_module_tree_and_state_dict_as_the_frozen_copy(model: str) -> None:
    with torch.device("meta"):
        new, old = models.CNNS[model](), CNNS[model]()
    assert _tree(new) == _tree(old)
    assert [(k, tuple(v.shape)) for k, v in new.state_dict().items()] == [(k, tuple(v.shape)) for k, v in old.state_dict().items()]


@pytest.mark.parametrize("model", sorted(CNNS))
def test_same_weights_from_init_random_and_same_outputs(model: str) -> None:
    """The package's initialisation gives both the same weights; the forward the same values,
    in eval mode and in a training step's forward and backward (the DDP cases train ResNet-50)."""
    new, old = models.init_random_(models.CNNS[model]()), models.init_random_(CNNS[model]())
    for (k, a), (_, b) in zip(new.state_dict().items(), old.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(new.eval()(x), old.eval()(x))
    new.train(), old.train()
    torch.manual_seed(2)
    loss_new = new(x).square().mean()
    loss_new.backward()
    torch.manual_seed(2)
    loss_old = old(x).square().mean()
    loss_old.backward()
    assert torch.equal(loss_new, loss_old)
    for (k, a), (_, b) in zip(new.named_parameters(), old.named_parameters()):
        assert torch.equal(a.grad, b.grad), k


@pytest.mark.parametrize("model", sorted(CNNS))
@pytest.mark.parametrize(("batch", "image"), [(1, 224), (2, 32)])
def test_same_layers_in_the_same_execution_order(model: str, batch: int, image: int) -> None:
    """Name, module and input shape of every per-layer case, in the order the cases are planned
    (ResNet-50: a block's downsample before its conv1, as the committed documents list them)."""
    new, old = models.cnn_layers(model, batch, image), old_cnn_layers(model, batch, image)
    assert [(n, repr(m), s) for n, m, s in new] == [(n, repr(m), s) for n, m, s in old]
    assert [models.layer_slug(n) for n, _, _ in new] == [old_layer_slug(n) for n, _, _ in old]


def test_measured_resnet_runs_the_shortcut_first() -> None:
    """The flag is not vacuous: torchvision's order puts layer1.0's downsample after conv3."""
    names = [n for n, _, _ in models.cnn_layers("resnet50")]
    assert names.index("layer1.0.downsample.0") < names.index("layer1.0.conv1")
    torchvision_order = [n for n, _, _ in models.cnn.cnn_layers("resnet50")]
    assert torchvision_order.index("layer1.0.downsample.0") > torchvision_order.index("layer1.0.conv3")
    assert sorted(names) == sorted(torchvision_order)


def test_benchs_model_is_the_frozen_copys() -> None:
    """What measure.Bench builds for a model case: same tree as the frozen ResNet-50 on meta."""
    bench = Bench(Settings(torch.device("cpu")))
    net = bench.model("resnet50", torch.float16, torch.device("meta"))
    with torch.device("meta"):
        old = CNNS["resnet50"]().to(torch.float16).eval()
    assert _tree(net) == _tree(old) and not net.training
    assert all(b.shortcut_first for b in net.modules() if isinstance(b, models.cnn.Bottleneck))
