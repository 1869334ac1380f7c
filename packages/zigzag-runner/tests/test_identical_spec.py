"""Timeloop and ZigZag on one Eyeriss spec: the two spec files describe the same hardware, and
the ResNet-50 table regenerated from the committed documents equals the committed table."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO

from mtap_zigzag_runner import eyeriss
from mtap_zigzag_runner.run import own_inputs_dir

TIMELOOP = REPO / "data" / "timeloop"


def _timeloop_levels(arch: dict) -> dict[str, dict]:
    """Every named level of a Timeloop v0.3 architecture tree, with its attributes."""
    out = {}

    def walk(node):
        for level in node.get("local", []):
            out[level["name"].split("[")[0]] = {**level.get("attributes", {}), "_name": level["name"], "class": level.get("class")}
        for sub in node.get("subtree", []):
            if "[" in sub["name"]:
                out[sub["name"].split("[")[0]] = {"_name": sub["name"]}
            walk(sub)

    walk(arch["architecture"])
    return out


def test_timeloops_eyeriss_like_spec_is_the_chip_spec():
    for name in ("arch.yaml", "constraints.yaml"):
        like = yaml.safe_load((TIMELOOP / "eyeriss-like" / name).read_text())
        chip = yaml.safe_load((TIMELOOP / "eyeriss-chip" / name).read_text())
        assert like == chip, name  # the same file but for its comments


def test_zigzags_chip_file_transcribes_timeloops_spec():
    tl = _timeloop_levels(yaml.safe_load((TIMELOOP / "eyeriss-like" / "arch.yaml").read_text()))
    zz = yaml.safe_load((own_inputs_dir() / "eyeriss_chip.yaml").read_text())
    mem = zz["memories"]
    # 168 PEs as 12 rows x 14 columns
    assert tl["PE"]["_name"] == "PE[0..167]" and tl["IfmapSpad"]["meshX"] == 14
    assert zz["operational_array"]["sizes"] == [168 // 14, 14]
    # scratch pads and global buffer: words x 16 bits = ZigZag's size in bits
    for tl_name, zz_name in (("IfmapSpad", "ifmap_spad"), ("FilterSpad", "filter_spad"), ("PsumSpad", "psum_spad")):
        assert tl[tl_name]["depth"] * tl[tl_name]["word-bits"] == mem[zz_name]["size"], tl_name
        assert mem[zz_name]["served_dimensions"] == []  # one per PE
    glb = tl["GlobalBuffer"]
    assert glb["depth"] * glb["width"] == mem["global_buffer"]["size"] == 108 * 1024 * 8
    assert glb["read_bandwidth"] * glb["word-bits"] == mem["global_buffer"]["ports"][0]["bandwidth_max"] == 256
    assert tl["DRAM"]["width"] == mem["dram"]["ports"][0]["bandwidth_max"] == 64
    # the global buffer holds ifmaps and psums, filters bypass it (Timeloop's constraints)
    cons = yaml.safe_load((TIMELOOP / "eyeriss-like" / "constraints.yaml").read_text())
    (keep,) = [t for t in cons["architecture_constraints"]["targets"] if t["target"] == "GlobalBuffer" and t["type"] == "bypass"]
    assert keep["keep"] == ["Inputs", "Outputs"] and keep["bypass"] == ["Weights"]
    assert mem["global_buffer"]["operands"] == ["I1", "O"]
    # Eyeriss's relative energies per 16 bits: MAC 1, scratch pad 1, global buffer 6, DRAM 200
    assert zz["operational_array"]["unit_energy"] == 1.0
    per16 = {n: m["r_cost"] * 16 / m["ports"][0]["bandwidth_max"] for n, m in mem.items()}
    assert per16 == {"ifmap_spad": 1, "filter_spad": 1, "psum_spad": 1, "global_buffer": 6, "dram": 200}
    # what reads alike but differs (the table says so): Timeloop's DRAM has no bandwidth limit (width
    # is its access size), ZigZag's port moves 64 bits a cycle; Timeloop's spads 2 words a cycle, ZigZag's 1
    assert "read_bandwidth" not in tl["DRAM"] and "write_bandwidth" not in tl["DRAM"]
    assert {tl[n]["read_bandwidth"] for n in ("IfmapSpad", "FilterSpad", "PsumSpad")} == {2}
    assert {mem[n]["ports"][0]["bandwidth_max"] for n in ("ifmap_spad", "filter_spad", "psum_spad")} == {16}
    # one clock: the catalog's 200 MHz for both hardware ids
    hw = {h["id"]: h for h in json.loads((REPO / "data" / "hardware" / "hardware.json").read_text())["hardware"]}
    assert hw["Eyeriss-like"]["clock_hz"] == hw["Eyeriss"]["clock_hz"] == 200e6


def test_timeloop_map_spatial_unrolling():
    text = (REPO / "data/evaluation/timeloop/timeloop.maps/eyeriss-like/conv1.map.txt").read_text()
    assert eyeriss.timeloop_spatial(text) == ("FY7 K2 OY7", 98)
    assert eyeriss.zigzag_pes("FY3 C4 OY14") == 168


def test_identical_spec_table_from_the_committed_documents(tmp_path):
    out = tmp_path / "t.md"
    r = CliRunner().invoke(
        eyeriss.main,
        [
            "identical-spec",
            "--timeloop",
            str(REPO / eyeriss.TIMELOOP_RESNET),
            "--zigzag",
            str(REPO / eyeriss.ZIGZAG_SPEC),
            "--shipped",
            str(REPO / eyeriss.ZIGZAG_SHIPPED),
            "--repo",
            str(REPO),
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert out.read_text() == (REPO / eyeriss.IDENTICAL_TABLE).read_text()
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 54 + 1  # header, the 54 layers, the total


@pytest.mark.parametrize("missing", ["--timeloop", "--zigzag", "--shipped"])
def test_identical_spec_table_needs_its_documents(tmp_path, missing):
    args = {
        "--timeloop": str(REPO / eyeriss.TIMELOOP_RESNET),
        "--zigzag": str(REPO / eyeriss.ZIGZAG_SPEC),
        "--shipped": str(REPO / eyeriss.ZIGZAG_SHIPPED),
    }
    args[missing] = str(tmp_path / "none.tool-run.json")
    r = CliRunner().invoke(
        eyeriss.main, ["identical-spec", *sum(args.items(), ()), "--repo", str(REPO), "--output", str(tmp_path / "t.md")]
    )
    assert r.exit_code == 2 and "none.tool-run.json: cannot read" in r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "t.md").exists()
