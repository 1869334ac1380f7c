"""The layer table against published figures of the two models."""

from mtap_zigzag_runner.layers import bert_base_layers, resnet50_layers, resnet50_parameter_count
from mtap_zigzag_runner.workload import zigzag_layer


def test_resnet50_has_53_convolutions_and_fc():
    layers = resnet50_layers()
    assert len(layers) == 54
    assert sum(la.name.startswith(("conv", "layer")) for la in layers) == 53
    assert layers[0].name == "conv1" and layers[-1].name == "fc"
    assert len({la.name for la in layers}) == 54


def test_resnet50_macs_and_parameters_match_torchvision():
    layers = resnet50_layers()
    assert layers[0].macs == 118_013_952  # W1: conv1 at batch 1
    assert sum(la.macs for la in layers) == 4_089_184_256
    assert resnet50_parameter_count() == 25_557_032  # torchvision resnet50


def test_resnet50_scales_with_batch():
    assert sum(la.macs for la in resnet50_layers(8)) == 8 * 4_089_184_256


def test_bert_base_encoder_macs():
    layers = bert_base_layers(1, 128)
    # 12 layers x (128 tokens x 768 x (2304 + 768 + 3072 + 3072) + 12 heads x 2 x 128 x 128 x 64)
    assert sum(la.case_macs * la.repeats for la in layers) == 12 * (128 * 768 * 9216 + 12 * 2 * 128 * 128 * 64)
    score = next(la for la in layers if la.name == "attention-score")
    assert score.instances == 12 and score.dims["N"] == 1


def test_conv1_as_zigzag_layer():
    conv1 = resnet50_layers()[0]
    z = zigzag_layer(conv1, {"W": 16, "I": 16, "O": 16, "O_final": 16})
    assert dict(zip(z["loop_dims"], z["loop_sizes"])) == {"B": 1, "K": 64, "C": 3, "OY": 112, "OX": 112, "FY": 7, "FX": 7}
    assert z["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert z["pr_loop_sizes"] == [224, 224] and z["padding"] == [[3, 2], [3, 2]]


def test_strided_3x3_padding_reads_only_what_it_needs():
    conv = next(la for la in resnet50_layers() if la.name == "layer2-0-conv2")
    assert conv.dims["P"] == 28 and conv.in_hw == 56
    assert zigzag_layer(conv, {})["padding"] == [[1, 0], [1, 0]]
