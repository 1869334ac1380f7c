"""The plan's contract shared with zigzag-runner (mtap_schemas.accel_tests), run on timeloop-runner."""

from __future__ import annotations

from pathlib import Path

from mtap_schemas.accel_tests import PlanTests
from mtap_timeloop_runner.cases import CATALOG, DEFAULT_ARCHITECTURES


class TestPlan(PlanTests):
    module = "mtap_timeloop_runner.cli"
    catalog = CATALOG
    defaults = DEFAULT_ARCHITECTURES
    data_parts = ("workloads", "hardware", "timeloop")  # `cases` checks the spec files too
    fixtures = Path(__file__).resolve().parent / "fixtures"
