"""The plan's contract shared with timeloop-runner (mtap_schemas.accel_tests), run on zigzag-runner."""

from __future__ import annotations

from pathlib import Path

from mtap_schemas.accel_tests import PlanTests
from mtap_zigzag_runner.cases import CATALOG, DEFAULT_HARDWARE


class TestPlan(PlanTests):
    module = "mtap_zigzag_runner.cli"
    catalog = CATALOG
    defaults = DEFAULT_HARDWARE
    fixtures = Path(__file__).resolve().parent / "fixtures"
    # the fixtures hold the two accelerators of then (edge-tpu-like came later) and not the
    # parameters naming a case's files (zigzag-runner 2.1.0)
    fixture_config = {"hardware": ["eyeriss-like", "tpu-like"]}
    fixture_added = frozenset({"spec", "accelerator_file", "accelerator_sha256", "mapping_file", "mapping_sha256"})
