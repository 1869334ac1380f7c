"""The CNNs this package counts now come from the kit (``mtap_schemas.cnn``); these tests prove
they are the computation its committed predictions counted before.

The classes below the "frozen reference" line are a FROZEN REFERENCE: ResNet-50, MobileNet-V2
and VGG-16 (and ``layer_slug``) as they stood in ``mtap_analytical_runner/models.py`` before the
move (commit e89d966), copied verbatim; ``OLD`` maps case names to them. Do not edit them to make
a test pass: a difference between them and the kit's definition is what these tests catch.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtap_analytical_runner import models
from mtap_analytical_runner.models import Shape, run_shape

# --------------------------------------------------------------------------- frozen reference (do not edit)

class Bottleneck(nn.Module):
    """torchvision's Bottleneck (expansion 4, stride on conv2)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """torchvision.models.resnet50 with the same module names and forward."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


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
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(cout)]
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


def layer_slug(name: str) -> str:
    """Module path to the case-key form: ``layer1.0.downsample.0`` -> ``layer1-0-downsample-0``."""
    return name.replace(".", "-").replace("_", "-").lower()


OLD = {"resnet50": ResNet50, "mobilenet-v2": MobileNetV2, "vgg16": VGG16}
old_layer_slug = layer_slug

# --------------------------------------------------------------------------- tests


def _old_on_meta(model: str, dtype: torch.dtype) -> nn.Module:
    with torch.device("meta"):
        return OLD[model]().eval().to(dtype)


def _tree(net: nn.Module) -> list[tuple[str, str, str]]:
    """Every module: path, class name and its constructor arguments (``extra_repr``)."""
    return [(n, type(m).__name__, m.extra_repr()) for n, m in net.named_modules()]


@pytest.mark.parametrize("model", sorted(OLD))
def test_same_module_tree_and_state_dict_as_the_frozen_copy(model: str) -> None:
    new, old = models.CNN_BUILDERS[model](torch.float32), _old_on_meta(model, torch.float32)
    assert _tree(new) == _tree(old)
    assert [(k, tuple(v.shape), v.dtype) for k, v in new.state_dict().items()] == [
        (k, tuple(v.shape), v.dtype) for k, v in old.state_dict().items()
    ]


@pytest.mark.parametrize("model", sorted(OLD))
def test_same_outputs_for_the_same_weights(model: str) -> None:
    torch.manual_seed(0)
    old = OLD[model]().eval()
    new = models.cnn.build(model).eval()
    new.load_state_dict(old.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(new(x), old(x))


@pytest.mark.parametrize(("model", "dtype"), [("resnet50", "fp32"), ("resnet50", "fp16"), ("mobilenet-v2", "fp16"), ("vgg16", "fp32")])
def test_same_operator_trace_as_the_frozen_copy(model: str, dtype: str) -> None:
    """Operator by operator (name, module, FLOPs, bytes, dtype): what the documents are made of."""
    shape = Shape(model, "model", 2, dtype)
    assert run_shape(shape) == run_shape(shape, model=_old_on_meta(model, models.DTYPES[dtype]))


def test_groundtruths_shortcut_first_forward_is_another_trace() -> None:
    """The variant groundtruth measured is a different operator sequence, so this package must
    keep torchvision's: the comparison above is not vacuous."""
    with torch.device("meta"):
        measured = models.cnn.ResNet50(shortcut_first=True).eval()
    shape = Shape("resnet50", "model", 1, "fp32")
    got, want = run_shape(shape, model=measured), run_shape(shape)
    assert got != want
    assert got.total_flops() == want.total_flops()
    assert sorted(o.op for o in got.ops if "add" in o.op) != sorted(o.op for o in want.ops if "add" in o.op)


@pytest.mark.parametrize("model", sorted(OLD))
def test_same_layer_names_and_slugs(model: str) -> None:
    with torch.device("meta"):
        want = tuple(n for n, m in OLD[model]().named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert models.cnn_layer_names(model) == want
    assert [models.layer_slug(n) for n in want] == [old_layer_slug(n) for n in want]
