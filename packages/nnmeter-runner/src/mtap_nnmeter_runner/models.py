"""The models nn-Meter parses, without weights.

nn-Meter only looks at the graph (operator types and tensor shapes), so randomly initialised
modules are enough. The CNNs (ResNet-50, MobileNet-V2 and the further ones of issue #19) are
torchvision's own Python model definitions (:data:`TORCHVISION`, :func:`torchvision_models`; their
ONNX graphs equal those of the plain-PyTorch copies they replaced). Written here in plain PyTorch
are ResNet-50's conv1 alone (workload W1) and BERT-base, which follows the Hugging Face
``BertModel`` layout (bert-base-uncased: 109,482,240 parameters with the pooler). VGG-16 is the
kit's plain-PyTorch definition (``mtap_schemas.cnn.VGG16``, see the note at its import).
Parameter counts equal the reference implementations' (checked in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mtap_schemas.cnn import VGG16

# ----------------------------------------------------------------------------- ResNet-50 conv1


class ResNet50Conv1(nn.Module):
    """Workload W1: conv1 of ResNet-50 alone (3->64, 7x7, stride 2, padding 3, no bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(x)


# ----------------------------------------------------------------------------- VGG-16

# VGG-16 is the kit's definition (mtap_schemas.cnn.VGG16, shared with analytical-runner and
# groundtruth), kept in plain PyTorch rather than torchvision's: torchvision's own zero-initialises
# every bias, and torch.onnx's exporter then merges those equal initialisers into ``Identity``
# nodes, so nn-Meter would read a different graph (38 nodes here, 48 from torchvision). The
# kit's keeps PyTorch's default (random) initialisation.


# ----------------------------------------------------------------------------- BERT-base


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, h)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.output(nn.functional.gelu(self.intermediate(x))))


class BertBase(nn.Module):
    """BERT-base encoder (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522) with pooler."""

    def __init__(self, vocab: int = 30522, hidden: int = 768, layers: int = 12, heads: int = 12,
                 intermediate: int = 3072, max_positions: int = 512, type_vocab: int = 2) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        positions = torch.arange(seq, dtype=torch.long).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.emb_norm(x + self.token_type_embeddings(torch.zeros_like(input_ids)))
        for layer in self.layers:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


#: model name -> (constructor, input kind). Input kinds: "image" (float NCHW 1x3x224x224), "tokens".
MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet50-conv1": ResNet50Conv1,
    "vgg16": VGG16,
    "bert-base": BertBase,
}

#: Parameter counts of the reference implementations (torchvision / Hugging Face).
REFERENCE_PARAMETERS = {
    "resnet50": 25_557_032,
    "resnet50-conv1": 9_408,
    "mobilenet-v2": 3_504_872,
    "vgg16": 138_357_544,
    "bert-base": 109_482_240,
}


#: Further torchvision CNNs (issue #19), built from torchvision's own Python model definitions
#: (random weights): name -> (torchvision.models function, keyword arguments). Parameter counts
#: as torchvision states them (checked in the tests).
TORCHVISION: dict[str, tuple[str, dict[str, object]]] = {
    "resnet50": ("resnet50", {}),
    "mobilenet-v2": ("mobilenet_v2", {}),
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet101": ("resnet101", {}),
    "mobilenet-v3-large": ("mobilenet_v3_large", {}),
    "mobilenet-v3-small": ("mobilenet_v3_small", {}),
    "shufflenet-v2": ("shufflenet_v2_x1_0", {}),
    "efficientnet-b0": ("efficientnet_b0", {}),
    "squeezenet": ("squeezenet1_0", {}),
    "densenet121": ("densenet121", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": False}),
    "regnet-y-400mf": ("regnet_y_400mf", {}),
    "mnasnet": ("mnasnet1_0", {}),
    "alexnet": ("alexnet", {}),
}
REFERENCE_PARAMETERS.update({
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet101": 44_549_160,
    "mobilenet-v3-large": 5_483_032,
    "mobilenet-v3-small": 2_542_856,
    "shufflenet-v2": 2_278_604,
    "efficientnet-b0": 5_288_548,
    "squeezenet": 1_248_424,
    "densenet121": 7_978_856,
    "googlenet": 6_624_904,
    "regnet-y-400mf": 4_344_144,
    "mnasnet": 4_383_312,
    "alexnet": 61_100_840,
})


def torchvision_models():
    """``torchvision.models``. Where torchvision's compiled operators do not load (the PyPI wheel is
    built for CUDA torch; a CPU torch then fails with ``operator torchvision::nms does not exist``),
    its pure-Python model package is imported without running ``torchvision/__init__.py``: the
    classification models need none of the compiled operators."""
    import importlib
    import importlib.util
    import sys
    import types

    try:
        return importlib.import_module("torchvision.models")
    except (RuntimeError, ImportError, AttributeError):
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            raise
        pkg = types.ModuleType("torchvision")
        pkg.__path__ = list(spec.submodule_search_locations)  # type: ignore[attr-defined]
        sys.modules["torchvision"] = pkg
        return importlib.import_module("torchvision.models")


def build(name: str) -> nn.Module:
    if name in TORCHVISION:
        fn, kwargs = TORCHVISION[name]
        model = getattr(torchvision_models(), fn)(weights=None, **kwargs)
    else:
        model = MODELS[name]()
    model.eval()
    return model


def example_input(name: str) -> torch.Tensor:
    """The batch-1 input: token ids (1, 128) for BERT-base, else a 1x3x224x224 image."""
    if name == "bert-base":
        return torch.zeros((1, 128), dtype=torch.long)
    return torch.randn(1, 3, 224, 224)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
