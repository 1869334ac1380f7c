"""FLOP and byte counts against hand-computed values, on the real model definitions."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mtap_analytical_runner.models import (
    Shape,
    bert_base,
    gpt2_small,
    layer_slug,
    llama2_7b,
    parameter_count,
    resnet50,
    resnet50_layer_names,
    run_shape,
)
from mtap_analytical_runner.trace import tensor_bytes, trace


@pytest.fixture(scope="module")
def resnet_b1():
    return run_shape(Shape("resnet50", "model", 1, "fp32"))


def test_resnet50_has_torchvisions_parameter_count():
    assert parameter_count(resnet50()) == 25_557_032


def test_resnet50_matches_the_layer_table(data_dir):
    """Every conv (and fc) of the torch definition against data/workloads/layers/resnet50.layers.json:
    name and order, K, C, R, S, stride, padding, input and output size at batch 1, 224x224."""
    import mtap_schemas as ms

    path = data_dir / "workloads" / "layers" / "resnet50.layers.json"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    table = ms.read(path, "layers")
    model = resnet50()
    seen: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [m.register_forward_hook(lambda m, a, o, name=n: seen.__setitem__(name, (tuple(a[0].shape), tuple(o.shape))))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    modules = dict(model.named_modules())
    assert [layer_slug(n) for n in resnet50_layer_names()] == [layer["name"] for layer in table["layers"]]
    for name, layer in zip(resnet50_layer_names(), table["layers"]):
        mod, shape = modules[name], layer["shape"]
        (x, y) = seen[name]
        assert shape["N"] == "batch" and y[0] == table["parameters"]["batch"] == 1
        if isinstance(mod, nn.Linear):  # fc as a 1x1 convolution over a 1x1 map
            assert (shape["K"], shape["C"], shape["R"], shape["S"], shape["P"], shape["Q"]) == (
                mod.out_features, mod.in_features, 1, 1, 1, 1), name
            continue
        assert (shape["K"], shape["C"]) == (mod.out_channels, mod.in_channels), name
        assert (shape["R"], shape["S"]) == mod.kernel_size, name
        assert layer.get("stride", 1) == mod.stride[0] == mod.stride[1], name
        assert layer.get("padding", 0) == mod.padding[0] == mod.padding[1], name
        assert (shape["P"], shape["Q"]) == (y[2], y[3]) and layer["input_hw"] == x[2] == x[3], name


def test_resnet50_layers_are_53_convs_and_fc():
    names = resnet50_layer_names()
    assert len(names) == 54
    assert names[0] == "conv1" and names[-1] == "fc"
    assert "layer1.0.downsample.0" in names
    assert layer_slug("layer1.0.downsample.0") == "layer1-0-downsample-0"


def test_conv1_macs_and_bytes_at_batch_1(resnet_b1):
    (op,) = resnet_b1.of_module("conv1")
    assert op.op == "convolution"
    assert op.flops == 2 * 118_013_952  # 64 x 112 x 112 outputs x (3 x 7 x 7) MACs
    # input 3x224x224 + weight 64x3x7x7 + output 64x112x112, fp32
    assert op.bytes == 4 * (3 * 224 * 224 + 64 * 3 * 7 * 7 + 64 * 112 * 112)


def test_conv1_scales_with_batch_and_dtype():
    (op,) = run_shape(Shape("resnet50", "model", 32, "fp16")).of_module("conv1")
    assert op.flops == 32 * 2 * 118_013_952
    assert op.bytes == 2 * (32 * 3 * 224 * 224 + 64 * 3 * 7 * 7 + 32 * 64 * 112 * 112)
    assert op.dtype == "fp16"


def test_fc_linear_layer(resnet_b1):
    ops = resnet_b1.of_module("fc")
    assert [o.op for o in ops] == ["addmm"]  # the weight transpose is a view: not counted
    (op,) = ops
    assert op.flops == 2 * 2048 * 1000
    assert op.bytes == 4 * (1000 + 2048 + 2048 * 1000 + 1000)  # bias, input, weight, output


def test_resnet50_total_matches_flop_counter_mode(resnet_b1):
    model = resnet50()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert resnet_b1.total_flops() == counter.get_total_flops()
    assert 4.08e9 < resnet_b1.total_flops() / 2 < 4.12e9  # ResNet-50: 4.1 GMACs


def test_views_move_nothing():
    class Reshape(nn.Module):
        def forward(self, x):
            return x.view(4, 6).t().transpose(0, 1).expand(2, 4, 6)

    x = torch.empty(24, device="meta")
    m = Reshape()
    assert trace(m, lambda: m(x)).ops == []


def test_broadcast_dimensions_are_read_once():
    t = torch.empty(1, 4, device="meta", dtype=torch.float16).expand(1000, 4)
    assert tensor_bytes(t) == 4 * 2


@pytest.fixture(scope="module")
def bert_trace():
    return run_shape(Shape("bert-base", "model", 1, "fp16", seq=128))


def test_bert_base_parameters_and_attention_matmuls(bert_trace):
    assert parameter_count(bert_base(torch.float32)) == 109_482_240
    attn = [o for o in bert_trace.ops if o.op == "_scaled_dot_product_efficient_attention"]
    assert len(attn) == 12
    b, h, s, d = 1, 12, 128, 64
    # QK^T and PV: two (s x d) @ (d x s)-sized matmuls per head, 2 FLOPs per MAC
    assert attn[0].flops == 2 * (2 * b * h * s * s * d)
    # fused: reads q, k, v and writes the output (fp16); no s x s score matrix in memory
    assert attn[0].bytes == 2 * 4 * b * h * s * d


def test_bert_query_projection_linear(bert_trace):
    (op,) = bert_trace.of_module("encoder.layer.0.attention.self.query")
    assert op.op == "addmm"
    assert op.flops == 2 * 128 * 768 * 768
    assert op.bytes == 2 * (768 + 128 * 768 + 768 * 768 + 128 * 768)


def test_bert_total_matches_flop_counter_mode(bert_trace):
    """Routing attention to the fused operator keeps torch's FLOP total (math path: two bmm)."""
    model = bert_base(torch.float16)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=torch.zeros(1, 128, dtype=torch.long, device="meta"))
    assert bert_trace.total_flops() == counter.get_total_flops()


def test_gpt2_parameters():
    assert parameter_count(gpt2_small(torch.float16)) == 124_439_808


def test_llama2_7b_parameters():
    assert parameter_count(llama2_7b(torch.float16)) == 6_738_415_616


def test_llama_decode_reads_weights_and_kv_cache_once():
    """Decode step b=2, kv=16 on a 2-layer Llama-2-7B: linear layers read every weight once;
    attention reads the cache of kv+1 entries; the cache append writes only the new token."""
    b, kv, layers = 2, 16, 2
    model = llama2_7b(torch.float16, layers=layers)
    tr = run_shape(Shape("llama2-7b", "decode", b, "fp16", kv=kv), model=model)
    mm = [o for o in tr.ops if o.op == "mm"]
    assert len(mm) == 7 * layers + 1  # q k v o gate up down per layer, lm_head
    weights = 4 * 4096 * 4096 + 3 * 4096 * 11008
    assert sum(o.flops for o in mm) == 2 * b * (layers * weights + 4096 * 32000)
    attn = [o for o in tr.ops if o.op == "_scaled_dot_product_efficient_attention"]
    assert len(attn) == layers
    q = b * 32 * 1 * 128
    cache = b * 32 * (kv + 1) * 128
    mask = b * (kv + 1)  # one additive bias row per sequence, broadcast over heads
    assert attn[0].bytes == 2 * (q + 2 * cache + mask + q)
    assert attn[0].flops == 2 * 2 * b * 32 * 1 * (kv + 1) * 128
    writes = [o for o in tr.ops if o.op == "index_copy_"]
    assert len(writes) == 2 * layers
    assert writes[0].bytes == 8 * 1 + 2 * 2 * q  # int64 position + new K read and written


def test_llama_prefill_lm_head_on_last_token_only():
    t, layers = 64, 1
    model = llama2_7b(torch.float16, layers=layers)
    tr = run_shape(Shape("llama2-7b", "prefill", 1, "fp16", tokens=t), model=model)
    (head,) = tr.of_module("lm_head")
    assert head.flops == 2 * 1 * 4096 * 32000
    attn = [o for o in tr.ops if o.op == "_scaled_dot_product_efficient_attention"]
    assert attn[0].flops == 2 * 2 * 32 * t * t * 128  # torch counts causal attention as full
