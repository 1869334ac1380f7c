"""The image workloads' models, defined once: ResNet-50 (W1), MobileNet-V2 (W8), VGG-16 (W9).

Plain-PyTorch copies of ``torchvision.models.resnet50`` (v1.5: stride on the 3x3 conv;
25,557,032 parameters), ``mobilenet_v2`` (width 1.0; 3,504,872) and ``vgg16`` (configuration D,
no batch norm; 138,357,544), with torchvision's module names, so a layer's case key
(``resnet50.layer.layer1-0-downsample-0``, ``vgg16.layer.classifier-6``) names the same module in
every package. torchvision itself is not used: its PyPI wheel does not import beside torch 2.13.0
in the analytical and groundtruth environments, and its zero-initialised VGG biases change the
ONNX graph nn-Meter reads. analytical-runner counts these models, groundtruth times them on the
GPU and nnmeter-runner parses VGG-16: one definition keeps prediction and measurement of the
same computation. Module creation order (hence default initialisation under a seed) is the
earlier copies'.

One named variant, ``shortcut_first`` (ResNet-50 only): groundtruth's measurements (committed
in ``data/evaluation/groundtruth/``) ran a Bottleneck that computes the downsample shortcut
before the main path and adds out of place (``relu(out + identity)``); analytical-runner's
predictions traced torchvision's order (main path, then shortcut, ``out += identity``). The
values are the same; the operator order (and so groundtruth's execution-order layer list and
case order) and the in-place add differ, so each package passes the flag its data was made with.

This kit module needs torch and imports it at its top: only packages that have torch import it
(analytical-runner, groundtruth, nnmeter-runner); the rest of the kit does not depend on torch.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- ResNet-50


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (expansion 4, ResNet v1.5: the stride sits on the 3x3 conv).

    ``shortcut_first``: compute the shortcut before the main path and add out of place (the
    forward groundtruth measured); otherwise torchvision's forward (shortcut after, ``+=``).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 shortcut_first: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.shortcut_first = shortcut_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_first:
            identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut_first:
            return self.relu(out + identity)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """torchvision.models.resnet50: same module tree, names and forward (see ``shortcut_first``
    in the module docstring for the one variant)."""

    def __init__(self, num_classes: int = 1000, shortcut_first: bool = False) -> None:
        super().__init__()
        self.shortcut_first = shortcut_first
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
        width = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != width:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self.shortcut_first)]
        self.inplanes = width
        layers += [Bottleneck(self.inplanes, planes, shortcut_first=self.shortcut_first) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------- MobileNet-V2


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
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
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


# --------------------------------------------------------------------------- VGG-16


class VGG16(nn.Module):
    """torchvision.models.vgg16 (configuration D, no batch norm): same module tree and names,
    PyTorch's default initialisation (torchvision's zeroes the biases)."""

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


# --------------------------------------------------------------------------- by name, layers

#: The image models (224x224 input) by case-key name: W1 ResNet-50, W8 MobileNet-V2, W9 VGG-16.
CNNS: dict[str, type[nn.Module]] = {"resnet50": ResNet50, "mobilenet-v2": MobileNetV2, "vgg16": VGG16}

#: Published parameter counts (torchvision), checked in the kit's tests.
PARAMETERS = {"resnet50": 25_557_032, "mobilenet-v2": 3_504_872, "vgg16": 138_357_544}


def build(model: str, *, shortcut_first: bool = False) -> nn.Module:
    """A fresh model (default initialisation, train mode, current default device).

    ``shortcut_first`` selects ResNet-50's measured forward (module docstring); MobileNet-V2's
    residual adds the block's own input and VGG-16 has none, so it changes nothing for them.
    """
    if model == "resnet50":
        return ResNet50(shortcut_first=shortcut_first)
    return CNNS[model]()


def is_layer(module: nn.Module) -> bool:
    """A per-layer case: every Conv2d and Linear."""
    return isinstance(module, (nn.Conv2d, nn.Linear))


def layer_names(model: str) -> tuple[str, ...]:
    """Every Conv2d and Linear in definition order (``named_modules``: a block's downsample after
    its conv3), without running the model."""
    with torch.device("meta"):
        return tuple(n for n, m in build(model).named_modules() if is_layer(m))


@lru_cache(maxsize=16)
def cnn_layers(model: str, batch: int = 1, image: int = 224, *, shortcut_first: bool = False
               ) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """Every Conv2d and Linear in execution order: (name, module, input shape).

    Shapes come from a forward pass on the meta device, so this costs nothing. The order follows
    the forward (``shortcut_first`` puts a block's downsample before its conv1). The modules are
    meta modules shared between calls: copy them before use.
    """
    with torch.device("meta"):
        net = build(model, shortcut_first=shortcut_first).eval()
        seen: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        hooks = [
            mod.register_forward_pre_hook(lambda m, args, name=name: seen.append((name, m, tuple(args[0].shape))))
            for name, mod in net.named_modules()
            if is_layer(mod)
        ]
        with torch.no_grad():
            net(torch.empty(batch, 3, image, image))
        for h in hooks:
            h.remove()
    return seen


def layer_slug(name: str) -> str:
    """Module path to the case-key form: ``layer1.0.downsample.0`` -> ``layer1-0-downsample-0``."""
    return name.replace(".", "-").replace("_", "-").lower()

