"""The layer tables (data/workloads/layers/, read by mtap_schemas.layers) against published figures:
torchvision's parameter count, the BERT-base and Eyeriss papers' MAC counts. The runners' own
tests check the plans they make from the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtap_schemas.layers import LayerTableError, key_tail, load_table, model_total, select_tables

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def data_dir() -> Path:
    if not (DATA / "workloads" / "layers").is_dir():
        pytest.skip("the repository's data/ is not beside schemas/")
    return DATA


def _params(layers):
    """Weights of every convolution, the fc layer with its bias and every batch norm."""
    total = bn = 0
    for la in layers:
        d = la.dims
        total += d["C"] * d["M"] * d["R"] * d["S"] * la.instances
        if la.name == "fc":
            total += d["M"]
        else:
            bn += d["M"]
    return total + 2 * bn


def test_resnet50_table(data_dir):
    layers = load_table(data_dir, "resnet50").layers()
    assert len(layers) == 54 and layers[0].name == "conv1" and layers[-1].name == "fc"
    assert sum(la.name.startswith(("conv", "layer")) for la in layers) == 53
    assert layers[0].macs == 118_013_952  # W1: conv1 at batch 1
    assert sum(la.macs for la in layers) == 4_089_184_256
    assert _params(layers) == 25_557_032  # torchvision resnet50's published count
    assert sum(la.macs for la in load_table(data_dir, "resnet50").layers(batch=8)) == 8 * 4_089_184_256


def test_bert_base_table(data_dir):
    table = load_table(data_dir, "bert-base")
    layers = table.layers()
    # 12 layers x (128 tokens x 768 x (2304 + 768 + 3072 + 3072) + 12 heads x 2 x 128 x 128 x 64)
    assert sum(la.case_macs * la.repeats for la in layers) == 12 * (128 * 768 * 9216 + 12 * 2 * 128 * 128 * 64)
    score = next(la for la in table.layers(batch=2, seq_len=64) if la.name == "attention-score")
    assert score.instances == 24 and score.dims["N"] == 1 and score.dims["M"] == 64 and score.dims["P"] == 64


def test_alexnet_and_vgg16_macs_match_the_eyeriss_paper(data_dir):
    # JSSC 2017 Table V (batch 4) and Table VI (batch 3), in GMACs to the paper's precision.
    alex = load_table(data_dir, "alexnet").layers()
    assert [la.dims["N"] for la in alex] == [4] * 5
    assert [round(la.case_macs / 1e9, 2) for la in alex] == [0.42, 0.90, 0.60, 0.45, 0.30]
    assert sum(la.case_macs for la in alex) == 2_663_139_456
    vgg = load_table(data_dir, "vgg16").layers()
    assert [round(la.case_macs / 1e9, 2) for la in vgg] == [0.26, 5.55, 2.77, 5.55, 2.77, 5.55, 5.55, 2.77, 5.55,
                                                            5.55, 1.39, 1.39, 1.39]
    assert round(sum(la.case_macs for la in vgg) / 1e9, 2) == 46.04


def test_a_table_naming_another_model_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "workloads" / "layers"
    folder.mkdir(parents=True)
    (folder / "vgg16.layers.json").write_text((data_dir / "workloads" / "layers" / "alexnet.layers.json").read_text())
    with pytest.raises(LayerTableError, match="field model: got 'alexnet', expected 'vgg16'"):
        load_table(tmp_path, "vgg16")


def test_case_keys_and_totals_from_the_tables(data_dir):
    resnet, bert, alex = (load_table(data_dir, m) for m in ("resnet50", "bert-base", "alexnet"))
    assert key_tail(resnet, 1, None, "int16") == "b1.int16" and key_tail(bert, 2, 64, "int8") == "b2.s64.int8"
    assert model_total(resnet, resnet.layers(), "b1.int16")[0] == "resnet50.model.b1.int16"
    assert model_total(bert, bert.layers(), "b1.s128.int8")[0] == "bert-base.model.b1.s128.int8"
    key, scope = model_total(alex, alex.layers(), "b4.int16")
    assert key == "alexnet.conv-layers.b4.int16" and scope.startswith("sum of the 5 convolutions;")


def test_select_tables_checks_the_config_layer_names(data_dir):
    tables = select_tables(data_dir, ["resnet50", "bert-base"], ["conv1", "attention-qkv"], "c.json")
    assert list(tables) == ["resnet50", "bert-base"] and select_tables(data_dir, ["alexnet"], None, None)
    with pytest.raises(LayerTableError, match=r"^c\.json: field layers: unknown layer name\(s\) \['conv9'\] for models "
                                              r"resnet50, expected names like conv1, "):
        select_tables(data_dir, ["resnet50"], ["conv1", "conv9"], "c.json")
