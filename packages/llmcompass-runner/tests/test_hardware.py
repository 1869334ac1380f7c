"""The H100/H200 descriptions: the catalog's datasheet figures where it has them, the rest kept
from the template, every field's source named; LLMCompass's own derived figures equal the datasheet."""

from __future__ import annotations

import json

import pytest
from conftest import MIRROR, REPO

from mtap_llmcompass_runner import hardware as hw

CATALOG = {e["id"]: e for e in json.loads((REPO / "data/hardware/hardware.json").read_text())["hardware"]}


def synthetic_template() -> dict:
    """Laid out like LLMCompass's configs/GA100.json (our own numbers: the file itself is not kept here)."""
    return {
        "name": "template",
        "device_count": 4,
        "interconnect": {"link": {"name": "L", "bandwidth_per_direction_byte": 1.0}, "link_count_per_device": 2, "topology": "FC"},
        "device": {
            "frequency_Hz": 1e9,
            "compute_chiplet_count": 1,
            "compute_chiplet": {
                "physical_core_count": 10,
                "core_count": 10,
                "process_node": "7nm",
                "core": {
                    "sublane_count": 4,
                    "systolic_array": {"array_width": 16, "array_height": 16, "data_type": "fp16", "mac_per_cycle": 1},
                    "vector_unit": {"vector_width": 32, "flop_per_cycle": 4, "data_type": "fp16"},
                    "SRAM_KB": 100,
                },
            },
            "memory_protocol": "HBM2e",
            "_memory_protocol_list": ["HBM2e"],
            "io": {
                "global_buffer_MB": 10,
                "physical_global_buffer_MB": 10,
                "global_buffer_bandwidth_per_cycle_byte": 1000,
                "memory_channel_physical_count": 6,
                "memory_channel_active_count": 5,
                "pin_count_per_channel": 1024,
                "bandwidth_per_pin_bit": 1e9,
            },
            "memory": {"total_capacity_GB": 8},
        },
    }


@pytest.mark.parametrize("hid", ["H100-SXM5-80GB", "H200-SXM-141GB"])
def test_datasheet_figures_reach_llmcompass(hid):
    entry = CATALOG[hid]
    spec, sources = hw.describe(synthetic_template(), entry)
    s = hw.summary(spec)
    assert s["systolic_peak_flops_per_s"] == pytest.approx(entry["peak_flops"]["fp16"], rel=1e-12)
    assert s["memory_bandwidth_bytes_per_s"] == pytest.approx(entry["memory"]["bandwidth_bytes_per_s"], rel=1e-12)
    assert s["l2_bytes"] == pytest.approx(entry["memory"]["on_chip_bytes"], rel=1e-12)
    assert spec["device"]["frequency_Hz"] == entry["clock_hz"]
    assert spec["device"]["compute_chiplet"]["core_count"] == entry["compute_units"]
    assert spec["device_count"] == 1
    # kept from the template, and said so
    assert spec["device"]["compute_chiplet"]["core"]["SRAM_KB"] == 100
    assert sources["device.compute_chiplet.core.SRAM_KB"].startswith("kept from LLMCompass configs/GA100.json")
    assert sources["device.frequency_Hz"] == f"data/hardware/hardware.json#{hid} clock_hz"
    assert "derived" in sources["device.compute_chiplet.core.systolic_array.mac_per_cycle"]
    # every leaf of the description has a source; the template is not changed
    assert set(sources) == set(hw._leaves(spec))
    assert synthetic_template()["device"]["frequency_Hz"] == 1e9


def test_h200_differs_from_h100_only_in_memory():
    a, _ = hw.describe(synthetic_template(), CATALOG["H100-SXM5-80GB"])
    b, _ = hw.describe(synthetic_template(), CATALOG["H200-SXM-141GB"])
    diff = {k for k in hw._leaves(a) if hw._get(a, k) != hw._get(b, k)}
    assert diff == {
        "name",
        "device.io.bandwidth_per_pin_bit",
        "device.io.global_buffer_MB",
        "device.io.physical_global_buffer_MB",
        "device.memory.total_capacity_GB",
    }


@pytest.mark.skipif(not (MIRROR / "HEAD").is_file(), reason="no LLMCompass mirror")
def test_the_real_template_has_the_fields_we_set():
    import subprocess

    from mtap_llmcompass_runner.setup import COMMIT

    text = subprocess.run(
        ["git", "-C", str(MIRROR), "show", f"{COMMIT}:configs/GA100.json"], capture_output=True, text=True, check=True
    ).stdout
    spec, sources = hw.describe(json.loads(text), CATALOG["H100-SXM5-80GB"])
    assert hw.summary(spec)["systolic_peak_flops_per_s"] == pytest.approx(989.4e12)
    assert sum(not v.startswith("kept") for v in sources.values()) == 10
