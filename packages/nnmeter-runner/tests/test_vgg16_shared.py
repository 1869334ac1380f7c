"""VGG-16 now comes from the kit (``mtap_schemas.cnn.VGG16``); these tests prove it is the model
this package parsed before.

The class below the "frozen reference" line is a FROZEN REFERENCE: ``VGG16`` as it stood in
``mtap_nnmeter_runner/models.py`` before the move (commit e89d966), copied verbatim. Do not edit
it to make a test pass: a difference between it and the kit's definition is what these tests catch.
"""

from __future__ import annotations

import torch
from torch import nn

from mtap_nnmeter_runner import models

# --------------------------------------------------------------------------- frozen reference (do not edit)

class VGG16(nn.Module):
    """torchvision.models.vgg16 (configuration D, no batch norm), kept in plain PyTorch: torchvision's own
    zero-initialises every bias, and torch.onnx's exporter then merges those equal initialisers into
    ``Identity`` nodes, so nn-Meter would read a different graph (38 nodes here, 48 from torchvision)."""

    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

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
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- tests


def _tree(net: nn.Module) -> list[tuple[str, str, str]]:
    return [(n, type(m).__name__, m.extra_repr()) for n, m in net.named_modules()]


def test_vgg16_is_the_frozen_copy_with_the_same_default_weights_and_outputs() -> None:
    """Same tree; under one seed the same default initialisation (random biases: the ONNX
    exporter has no equal initialisers to merge) and the same outputs."""
    torch.manual_seed(0)
    new = models.build("vgg16")
    torch.manual_seed(0)
    old = VGG16().eval()
    assert type(new) is models.VGG16 and not new.training
    assert _tree(new) == _tree(old)
    assert list(new.state_dict()) == list(old.state_dict())
    for (k, a), (_, b) in zip(new.state_dict().items(), old.state_dict().items()):
        assert torch.equal(a, b), k
    assert new.features[0].bias.abs().sum() > 0
    x = models.example_input("vgg16")
    with torch.no_grad():
        assert torch.equal(new(x), old(x))
