"""The model definitions that are counted, all built on the meta device (no weights, no memory).

* ResNet-50: a plain-PyTorch copy of ``torchvision.models.resnet50`` (v1.5: stride on the 3x3
  conv; module names as torchvision's), because PyPI torchvision does not import beside
  torch 2.13.0 here. 25,557,032 parameters, as torchvision publishes.
* MobileNet-V2 (W8) and VGG-16 (W9): plain-PyTorch copies of ``torchvision.models.mobilenet_v2``
  (width 1.0; 3,504,872 parameters) and ``torchvision.models.vgg16`` (configuration D, no batch
  norm; 138,357,544 parameters) with torchvision's module names, so their layer keys are the
  groundtruth package's (``mobilenet-v2.layer.features-1-conv-0-0``, ``vgg16.layer.classifier-6``).
* BERT-base: ``transformers.BertModel`` (encoder + pooler, no task head) from ``BertConfig()``.
* GPT-2 small: ``transformers.GPT2LMHeadModel`` (tied LM head, logits for every position) from
  ``GPT2Config()``.
* Llama-2-7B: ``transformers.LlamaForCausalLM`` from Llama-2-7B's published config. Prefill
  computes logits for the last token only (``logits_to_keep=1``, as serving engines do); a
  decode step appends one token per sequence to a ``StaticCache`` that already holds ``kv``
  tokens (the write is an ``index_copy_`` of the new K/V) and attends to ``kv + 1`` entries.

Every model runs in eval mode under ``torch.no_grad``; fp16 models are ``.half()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .trace import Trace, trace

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}

# --------------------------------------------------------------------------- ResNet-50


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


def resnet50(dtype: torch.dtype = torch.float32) -> ResNet50:
    with torch.device("meta"):
        return ResNet50().eval().to(dtype)


@cache
def resnet50_layer_names() -> tuple[str, ...]:
    """Every Conv2d and Linear of ResNet-50 (the per-layer cases), in definition order."""
    return tuple(n for n, m in resnet50().named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


# --------------------------------------------------------------------------- MobileNet-V2, VGG-16


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


def mobilenet_v2(dtype: torch.dtype = torch.float32) -> MobileNetV2:
    with torch.device("meta"):
        return MobileNetV2().eval().to(dtype)


def vgg16(dtype: torch.dtype = torch.float32) -> VGG16:
    with torch.device("meta"):
        return VGG16().eval().to(dtype)


#: The image models (224x224 input) by case-key name: W1 ResNet-50, W8 MobileNet-V2, W9 VGG-16.
CNN_BUILDERS: dict[str, Callable[[torch.dtype], nn.Module]] = {"resnet50": resnet50, "mobilenet-v2": mobilenet_v2, "vgg16": vgg16}


@cache
def cnn_layer_names(model: str) -> tuple[str, ...]:
    """Every Conv2d and Linear of an image model (its per-layer cases), in definition order."""
    return tuple(n for n, m in CNN_BUILDERS[model]().named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def layer_slug(name: str) -> str:
    """Module path to the case-key form: ``layer1.0.downsample.0`` -> ``layer1-0-downsample-0``."""
    return name.replace(".", "-").replace("_", "-").lower()


# --------------------------------------------------------------------------- transformers


def bert_base(dtype: torch.dtype) -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(attn_implementation="sdpa")  # bert-base-uncased: 12 x 768, 12 heads, 3072
    with torch.device("meta"):
        return BertModel(cfg, add_pooling_layer=True).eval().to(dtype)


def gpt2_small(dtype: torch.dtype) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(attn_implementation="sdpa")  # gpt2: 12 x 768, 12 heads, vocab 50257
    with torch.device("meta"):
        return GPT2LMHeadModel(cfg).eval().to(dtype)


def llama2_7b_config(layers: int = 32):
    from transformers import LlamaConfig

    return LlamaConfig(  # meta-llama/Llama-2-7b-hf config.json
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )


def llama2_7b(dtype: torch.dtype, layers: int = 32) -> nn.Module:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(llama2_7b_config(layers)).eval().to(dtype)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Shape:
    """One computation to trace: model, scope (model | prefill | decode) and its sizes."""

    model: str  # resnet50 | mobilenet-v2 | vgg16 | bert-base | gpt2 | llama2-7b
    scope: str
    batch: int
    dtype: str  # fp32 | fp16 (tf32 cases reuse the fp32 trace)
    seq: int | None = None
    tokens: int | None = None
    kv: int | None = None


def _ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long, device="meta")


_BUILDERS: dict[str, Callable[[torch.dtype], nn.Module]] = {
    "resnet50": resnet50,
    "mobilenet-v2": mobilenet_v2,
    "vgg16": vgg16,
    "bert-base": bert_base,
    "gpt2": gpt2_small,
    "llama2-7b": llama2_7b,
}


@lru_cache(maxsize=8)
def build(model: str, dtype: str) -> nn.Module:
    return _BUILDERS[model](DTYPES[dtype])


def run_shape(shape: Shape, model: nn.Module | None = None) -> Trace:
    """Trace one computation; ``model`` overrides the standard definition (tests use small ones)."""
    dtype = DTYPES[shape.dtype]
    m = model if model is not None else build(shape.model, shape.dtype)
    if shape.model in CNN_BUILDERS:
        x = torch.empty(shape.batch, 3, 224, 224, dtype=dtype, device="meta")
        return trace(m, lambda: m(x))
    if shape.model in ("bert-base", "gpt2"):
        ids = _ids(shape.batch, shape.seq)
        # use_cache=True keeps transformers' mask code off its data-dependent packed-sequence
        # check (which cannot run on meta tensors); the first cache write costs no copy.
        kwargs: dict[str, Any] = {} if shape.model == "bert-base" else {"use_cache": True}
        return trace(m, lambda: m(input_ids=ids, **kwargs))
    if shape.model == "llama2-7b" and shape.scope == "prefill":
        ids = _ids(shape.batch, shape.tokens)
        return trace(m, lambda: m(input_ids=ids, use_cache=True, logits_to_keep=1))
    if shape.model == "llama2-7b" and shape.scope == "decode":
        from transformers import StaticCache

        cache = StaticCache(config=m.config, max_cache_len=shape.kv + 1)
        heads = m.config.num_key_value_heads
        head_dim = m.config.hidden_size // m.config.num_attention_heads
        past = torch.empty(shape.batch, heads, shape.kv, head_dim, dtype=dtype, device="meta")
        positions = torch.arange(shape.kv, device="meta")
        for layer in range(m.config.num_hidden_layers):  # fill the cache outside the trace
            cache.update(past, past, layer, {"cache_position": positions})
        ids = _ids(shape.batch, 1)
        step = torch.tensor([shape.kv], device="meta")
        return trace(m, lambda: m(input_ids=ids, cache=cache, use_cache=True, cache_position=step))
    raise ValueError(f"unknown model/scope {shape.model}/{shape.scope}")
