import json

import pytest

from mtap_astra_runner import inputs


def test_link_bandwidth_keeps_injection_bandwidth():
    b = 450e9  # HGX H100 NVLink, bytes/s per GPU
    assert inputs.link_bandwidth_gbps("Switch", 8, b) == pytest.approx(419.0951585769653)
    assert inputs.link_bandwidth_gbps("Ring", 8, b) == pytest.approx(419.0951585769653 / 2)
    assert inputs.link_bandwidth_gbps("FullyConnected", 8, b) == pytest.approx(419.0951585769653 / 7)
    with pytest.raises(ValueError):
        inputs.link_bandwidth_gbps("Tree", 8, b)


def test_network_yaml_of_the_reference():
    assert inputs.network_yaml("Switch", 8, 400.0, 936.25) == (
        "topology: [ Switch ]\nnpus_count: [ 8 ]\nbandwidth: [ 400 ]  # GB/s (2^30 bytes/s)\nlatency: [ 936.25 ]  # ns\n"
    )


def test_system_json_double_binary_tree_is_all_reduce_only():
    doc = json.loads(inputs.system_json("doubleBinaryTree", 3350))
    assert doc["all-reduce-implementation"] == ["doubleBinaryTree"]
    assert doc["all-gather-implementation"] == ["ring"]
    assert doc["local-mem-bw"] == 3350
    assert doc["active-chunks-per-dimension"] == 2
