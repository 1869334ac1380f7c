"""The case matrix: which layers run on which architecture spec, their join keys, and the
optional ``--config`` JSON that narrows it. The planning itself is the kit's
(:mod:`mtap_schemas.accel`, shared with zigzag-runner); this module is Timeloop's table of specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mtap_schemas import accel
from mtap_schemas.cli import UserError

#: Architecture specs under <data-dir>/timeloop/<spec>/: hardware id in hardware.json and the
#: data type of its datapath (the key's dtype).
ARCHITECTURES: dict[str, dict[str, str]] = {
    "eyeriss-like": {"hardware": "Eyeriss-like", "dtype": "int16"},
    "simba-like": {"hardware": "Simba-like", "dtype": "int8"},
    "eyeriss-chip": {"hardware": "Eyeriss", "dtype": "int16"},
}
#: What runs when a config does not say: the two accelerator-like specs on ResNet-50 and BERT-base.
DEFAULT_ARCHITECTURES = ("eyeriss-like", "simba-like")
SPEC_FILES = ("arch.yaml", "constraints.yaml")
MAPPER_FILE = "mapper.yaml"


@dataclass
class Config(accel.Config):
    architectures: list[str] = field(default_factory=lambda: list(DEFAULT_ARCHITECTURES))
    timeout_s: float | None = None  # None: --timeout's default


def config_from(doc: dict | None) -> Config:
    """The config as read and validated by the kit (schemas/config/timeloop-runner.v1.schema.json)."""
    return accel.config_from(Config, doc)


def spec_paths(data_dir: Path, arch: str) -> list[Path]:
    """The spec files one mapper run of ``arch`` reads: its arch and constraints, the shared mapper settings."""
    base = data_dir / "timeloop"
    return [base / arch / name for name in SPEC_FILES] + [base / MAPPER_FILE]


def _check_specs(data_dir: Path, arch: str) -> None:
    for spec in spec_paths(data_dir, arch):
        if not spec.is_file():
            raise UserError(f"{spec}: Timeloop spec file missing (expected under {data_dir}/timeloop/)")


CATALOG = accel.Catalog(ARCHITECTURES, config_field="architectures", param="architecture", check=_check_specs)

