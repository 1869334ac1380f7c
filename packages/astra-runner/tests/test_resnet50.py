from mtap_astra_runner import resnet50


def test_parameter_count_matches_torchvision():
    # torchvision.models.resnet50(): 25,557,032 parameters
    assert resnet50.total_params() == 25_557_032


def test_layers_in_execution_order_with_torchvision_names():
    layers = resnet50.layers()
    names = [layer.name for layer in layers]
    assert len(layers) == 54  # 53 Conv2d + 1 Linear
    assert names[:5] == ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3", "layer1.0.downsample.0"]
    assert names[-1] == "fc"
    assert sum(1 for n in names if "downsample" in n) == 4
    assert layers[4].slug == "layer1-0-downsample-0"


def test_macs():
    layers = resnet50.layers()
    assert layers[0].macs(1) == 118_013_952  # W1: conv1 at batch 1
    assert sum(layer.macs(1) for layer in layers) == 4_089_184_256  # torchvision's 4.09 GMACs
    assert layers[-1].macs(32) == 32 * 2048 * 1000
    assert [layer.out_hw for layer in layers if layer.name.endswith("conv3")][-1] == 7
