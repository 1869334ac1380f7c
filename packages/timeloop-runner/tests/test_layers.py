"""The layer table against published figures, and the Timeloop problem files made from it."""

from mtap_timeloop_runner.layers import bert_base_layers, resnet50_layers, resnet50_parameter_count
from mtap_timeloop_runner.problem import problem_yaml


def test_resnet50_has_53_convolutions_and_fc():
    layers = resnet50_layers()
    assert len(layers) == 54
    assert layers[0].name == "conv1" and layers[-1].name == "fc"
    assert len({la.name for la in layers}) == 54
    assert len({la.shape for la in layers}) == 24  # distinct problems the mapper runs


def test_resnet50_macs_and_parameters_match_torchvision():
    layers = resnet50_layers()
    assert layers[0].macs == 118_013_952  # W1: conv1 at batch 1
    assert sum(la.macs for la in layers) == 4_089_184_256
    assert resnet50_parameter_count() == 25_557_032  # torchvision resnet50


def test_bert_base_encoder_macs():
    layers = bert_base_layers(1, 128)
    assert sum(la.case_macs * la.repeats for la in layers) == 12 * (128 * 768 * 9216 + 12 * 2 * 128 * 128 * 64)


def test_conv1_problem_file():
    text = problem_yaml(resnet50_layers()[0])
    assert "instance: {C: 3, M: 64, R: 7, S: 7, N: 1, P: 112, Q: 112, Wstride: 2, Hstride: 2" in text
    assert "[[R, Wdilation], [P, Wstride]]" in text and "read-write: True" in text
