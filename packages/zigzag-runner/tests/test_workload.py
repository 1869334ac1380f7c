"""The layer tables' layers as ZigZag workload layers and the Eyeriss chip's row-stationary
unrolling (the plan made from the tables and its errors: test_plan.py, shared with
timeloop-runner; the tables themselves: schemas/tests/test_layers.py)."""

from __future__ import annotations

from mtap_schemas.layers import load_table
from mtap_zigzag_runner.run import rs_mapping
from mtap_zigzag_runner.workload import zigzag_layer


def test_conv1_as_zigzag_layer(data_dir):
    conv1 = load_table(data_dir, "resnet50").layers()[0]
    z = zigzag_layer(conv1, {"W": 16, "I": 16, "O": 16, "O_final": 16})
    assert dict(zip(z["loop_dims"], z["loop_sizes"])) == {"B": 1, "K": 64, "C": 3, "OY": 112, "OX": 112, "FY": 7, "FX": 7}
    assert z["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert z["pr_loop_sizes"] == [224, 224] and z["padding"] == [[3, 2], [3, 2]]


def test_strided_3x3_padding_reads_only_what_it_needs(data_dir):
    conv = next(la for la in load_table(data_dir, "resnet50").layers() if la.name == "layer2-0-conv2")
    assert conv.dims["P"] == 28 and conv.in_hw == 56
    assert zigzag_layer(conv, {})["padding"] == [[1, 0], [1, 0]]


def test_row_stationary_unrolling(data_dir):
    alex = {la.name: la for la in load_table(data_dir, "alexnet").layers()}
    # AlexNet conv1: 11 filter rows down a column, output rows across the 14 columns.
    assert rs_mapping(alex["conv1"])[0]["spatial_mapping"] == {"D1": ["FY, 11"], "D2": ["OY, 14"]}
    # conv3: 3 filter rows x 4 channels down a column (12 PEs), 13 output rows + 1 spare column.
    assert rs_mapping(alex["conv3"])[0]["spatial_mapping"] == {"D1": ["FY, 3", "C, 4"], "D2": ["OY, 13"]}
    fc = load_table(data_dir, "resnet50").layers()[-1]  # 1x1, one output row: channels and filters
    assert rs_mapping(fc)[0]["spatial_mapping"] == {"D1": ["C, 12"], "D2": ["K, 14"]}
