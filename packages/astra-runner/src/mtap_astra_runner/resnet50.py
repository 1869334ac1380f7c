"""ResNet-50 (torchvision ``resnet50``, v1.5: stride on the 3x3 conv) as a plain-Python layer table.

One row per Conv2d / Linear in execution order, named like torchvision's module paths
(``conv1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``). Each row carries the
parameters it owns: a conv's weight plus its BatchNorm's weight and bias (the gradients that
data-parallel training all-reduces), the fc's weight and bias. The sum is torchvision's
published 25,557,032 parameters (tested).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str  #: torchvision module path
    kind: str  #: "conv" or "linear"
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    in_hw: int  #: input height = width (224 image); 1 for fc
    bn: bool  #: followed by a BatchNorm2d whose weight and bias are counted here

    @property
    def out_hw(self) -> int:
        if self.kind == "linear":
            return 1
        return (self.in_hw + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def params(self) -> int:
        if self.kind == "linear":
            return self.cin * self.cout + self.cout
        return self.cin * self.cout * self.kernel * self.kernel + (2 * self.cout if self.bn else 0)

    def macs(self, batch: int) -> int:
        if self.kind == "linear":
            return batch * self.cin * self.cout
        return batch * self.cout * self.out_hw * self.out_hw * self.cin * self.kernel * self.kernel

    def activation_elements(self, batch: int) -> tuple[int, int]:
        """(input, output) element counts of one forward call."""
        if self.kind == "linear":
            return batch * self.cin, batch * self.cout
        return batch * self.cin * self.in_hw * self.in_hw, batch * self.cout * self.out_hw * self.out_hw

    @property
    def slug(self) -> str:
        """Case-key form of the name (schemas/README.md): ``layer1.0.conv1`` -> ``layer1-0-conv1``."""
        return self.name.replace(".", "-").replace("_", "-").lower()


def layers(image: int = 224) -> list[Layer]:
    out = [Layer("conv1", "conv", 3, 64, 7, 2, 3, image, True)]
    hw = out[0].out_hw
    hw = (hw + 2 * 1 - 3) // 2 + 1  # maxpool 3x3 stride 2 padding 1
    inplanes = 64
    for stage, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            p = f"layer{stage}.{block}"
            out.append(Layer(f"{p}.conv1", "conv", inplanes, planes, 1, 1, 0, hw, True))
            out.append(Layer(f"{p}.conv2", "conv", planes, planes, 3, s, 1, hw, True))
            hw2 = out[-1].out_hw
            out.append(Layer(f"{p}.conv3", "conv", planes, planes * 4, 1, 1, 0, hw2, True))
            if block == 0 and (s != 1 or inplanes != planes * 4):
                out.append(Layer(f"{p}.downsample.0", "conv", inplanes, planes * 4, 1, s, 0, hw, True))
            inplanes = planes * 4
            hw = hw2
    out.append(Layer("fc", "linear", 2048, 1000, 1, 1, 0, 1, False))
    return out


def total_params() -> int:
    return sum(layer.params for layer in layers())
