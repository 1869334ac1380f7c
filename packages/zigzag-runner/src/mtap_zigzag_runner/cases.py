"""The case matrix: which layers run on which ZigZag example accelerator, their join keys, and the
optional ``--config`` JSON that narrows it. The planning itself is the kit's
(:mod:`mtap_schemas.accel`, shared with timeloop-runner); this module is ZigZag's table of
accelerators and the spec files every case names."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtap_schemas import accel, sha256_file

#: The accelerators: hardware id in hardware.json, the key's dtype, the accelerator and mapping
#: files and the operand precisions (bits) given to ZigZag. ``own`` files are this package's
#: (src/mtap_zigzag_runner/inputs/), the others ZigZag's shipped examples (zigzag/inputs/).
HARDWARE: dict[str, dict] = {
    "eyeriss-like": {"hardware": "Eyeriss-like", "dtype": "int16", "accelerator": "hardware/eyeriss_like.yaml",
                     "mapping": "mapping/default.yaml", "precision": {"W": 16, "I": 16, "O": 16, "O_final": 16}},
    "tpu-like": {"hardware": "TPU-like", "dtype": "int8", "accelerator": "hardware/tpu_like.yaml",
                 "mapping": "mapping/tpu_like.yaml", "precision": {"W": 8, "I": 8, "O": 16, "O_final": 8}},
    # ZigZag's Edge-TPU-like example: 8x8x4x4 MACs (K, C, OX, OY), the pairing of its own tests
    # (tests/main/test_origin/test_edge_tpu_like.py); 8-bit operands as its example workloads.
    "edge-tpu-like": {"hardware": "Edge-TPU-like", "dtype": "int8", "accelerator": "hardware/edge_tpu_like.yaml",
                      "mapping": "mapping/edge_tpu_like.yaml", "precision": {"W": 8, "I": 8, "O": 16, "O_final": 8}},
    # The chip's row-stationary unrolling is written per layer (run.rs_mapping): no mapping file.
    "eyeriss-chip": {"hardware": "Eyeriss", "dtype": "int16", "accelerator": "eyeriss_chip.yaml",
                     "mapping": None, "precision": {"W": 16, "I": 16, "O": 16, "O_final": 16}, "own": True},
}
#: What runs when a config does not say: ZigZag's three shipped examples (on the kit's default models).
DEFAULT_HARDWARE = ("eyeriss-like", "tpu-like", "edge-tpu-like")


@dataclass
class Config(accel.Config):
    hardware: list[str] = field(default_factory=lambda: list(DEFAULT_HARDWARE))


def config_from(doc: dict | None) -> Config:
    """The config as read and validated by the kit (schemas/config/zigzag-runner.v1.schema.json)."""
    return accel.config_from(Config, doc)


def spec_params(arch: str) -> dict:
    """Which accelerator and mapping files a case of ``arch`` runs on and their sha256: ZigZag's
    shipped examples (``spec: zigzag-shipped``, files of the installed zigzag-dse) or this
    package's own (``spec: ours``)."""
    from .run import spec_file, spec_where  # run imports this module

    hw = HARDWARE[arch]
    p = {"spec": "ours" if hw.get("own") else "zigzag-shipped",
         "accelerator_file": spec_where(arch, "accelerator"),
         "accelerator_sha256": sha256_file(spec_file(arch, "accelerator"))}
    if hw["mapping"] is None:
        p["mapping_file"] = "ours: row-stationary spatial unrolling written per layer (mtap_zigzag_runner.run.rs_mapping)"
    else:
        p["mapping_file"] = spec_where(arch, "mapping")
        p["mapping_sha256"] = sha256_file(spec_file(arch, "mapping"))
    return p


CATALOG = accel.Catalog(HARDWARE, config_field="hardware", param="accelerator", spec_params=spec_params,
                        needed="needed for ZigZag's {arch}")
