"""The layer shapes both accelerator models run: every ResNet-50 convolution (and its fc as a
1x1 convolution) and BERT-base's encoder matmuls as 1x1 convolutions.

Shapes follow torchvision's ``resnet50`` (v1.5: stride on the 3x3 convolution) and the
original BERT-base (12 layers, hidden 768, 12 heads of 64, FFN 3072). Layer names are the
model definition's module names with ``.`` replaced by ``-``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Timeloop's CNN-layer dimensions: batch, input/output channels, filter width/height,
#: output width/height.
DIMS = ("N", "C", "M", "R", "S", "P", "Q")

RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # planes, blocks, stride
BERT_BASE = {"layers": 12, "hidden": 768, "heads": 12, "head_dim": 64, "ffn": 3072}


@dataclass(frozen=True)
class Layer:
    """One convolution (or matmul written as a 1x1 convolution)."""

    model: str
    name: str
    workload: str
    dims: dict[str, int]
    stride: int = 1
    padding: int = 0
    in_hw: int = 0  # input height = width before padding (convolutions only)
    instances: int = 1  # independent runs of this shape that make up the case (attention heads)
    repeats: int = 1  # how often the case occurs in the model (BERT: once per encoder layer)
    note: str = field(default="", compare=False)

    @property
    def macs(self) -> int:
        out = 1
        for d in DIMS:
            out *= self.dims[d]
        return out

    @property
    def case_macs(self) -> int:
        """MACs of the whole case: ``instances`` runs of the tool's problem."""
        return self.macs * self.instances

    @property
    def shape(self) -> tuple:
        """What the tool sees: equal shapes are the same problem."""
        return (tuple(self.dims[d] for d in DIMS), self.stride)

    def shape_text(self) -> str:
        text = " ".join(f"{d}={self.dims[d]}" for d in DIMS)
        return f"{text} stride={self.stride}"


def _conv(name: str, n: int, c: int, m: int, k: int, h_in: int, stride: int, padding: int) -> Layer:
    h_out = (h_in + 2 * padding - k) // stride + 1
    dims = {"N": n, "C": c, "M": m, "R": k, "S": k, "P": h_out, "Q": h_out}
    return Layer("resnet50", name, "W1", dims, stride=stride, padding=padding, in_hw=h_in)


def resnet50_layers(batch: int = 1) -> list[Layer]:
    """The 53 convolutions and the fc layer of ResNet-50 at 224x224, in forward order."""
    layers = [_conv("conv1", batch, 3, 64, 7, 224, 2, 3)]
    h = 56  # after the stride-2 3x3 max pool
    in_ch = 64
    for stage, (planes, blocks, stride) in enumerate(RESNET50_STAGES, start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            prefix = f"layer{stage}-{block}"
            layers.append(_conv(f"{prefix}-conv1", batch, in_ch, planes, 1, h, 1, 0))
            layers.append(_conv(f"{prefix}-conv2", batch, planes, planes, 3, h, s, 1))
            h_out = (h + 2 - 3) // s + 1
            layers.append(_conv(f"{prefix}-conv3", batch, planes, planes * 4, 1, h_out, 1, 0))
            if block == 0:
                layers.append(_conv(f"{prefix}-downsample-0", batch, in_ch, planes * 4, 1, h, s, 0))
            in_ch = planes * 4
            h = h_out
    fc = Layer("resnet50", "fc", "W1", {"N": batch, "C": 2048, "M": 1000, "R": 1, "S": 1, "P": 1, "Q": 1},
               note="fully connected 2048->1000 as a 1x1 convolution")
    layers.append(fc)
    return layers


def resnet50_parameter_count() -> int:
    """Weights of every convolution, the fc layer with its bias and every batch norm (weight and
    bias): the figure torchvision publishes (25,557,032), computed from the shapes above."""
    total = 0
    bn_channels = 0
    for layer in resnet50_layers():
        d = layer.dims
        total += d["C"] * d["M"] * d["R"] * d["S"]
        if layer.name == "fc":
            total += d["M"]
        else:
            bn_channels += d["M"]
    return total + 2 * bn_channels


def bert_base_layers(batch: int = 1, seq_len: int = 128) -> list[Layer]:
    """One encoder layer's matmuls (each repeated 12 times in the model) as 1x1 convolutions:
    tokens along P, contraction along C, outputs along M, batch along N. The two attention
    matmuls have no shared weights across heads or sequences, so the tool runs one head of one
    sequence and the case is that run times heads x batch (``instances``)."""
    b = BERT_BASE
    hid, heads, hd, ffn = b["hidden"], b["heads"], b["head_dim"], b["ffn"]

    def mm(name: str, n: int, c: int, m: int, p: int, note: str, instances: int = 1) -> Layer:
        dims = {"N": n, "C": c, "M": m, "R": 1, "S": 1, "P": p, "Q": 1}
        return Layer("bert-base", name, "W4", dims, instances=instances, repeats=b["layers"], note=note)

    return [
        mm("attention-qkv", batch, hid, 3 * hid, seq_len, "fused query/key/value projection 768->3x768"),
        mm("attention-score", 1, hd, seq_len, seq_len, "Q K^T of one head, run once per head and sequence", heads * batch),
        mm("attention-context", 1, seq_len, hd, seq_len, "softmax(QK^T) V of one head, run once per head and sequence", heads * batch),
        mm("attention-output", batch, hid, hid, seq_len, "attention output projection 768->768"),
        mm("ffn-intermediate", batch, hid, ffn, seq_len, "feed-forward up-projection 768->3072"),
        mm("ffn-output", batch, ffn, hid, seq_len, "feed-forward down-projection 3072->768"),
    ]
