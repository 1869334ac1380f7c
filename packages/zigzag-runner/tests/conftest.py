from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from mtap_schemas import accel_tests

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


CLI = "mtap_zigzag_runner.cli"
config = accel_tests.config_file
invoke = partial(accel_tests.invoke, CLI)
console = partial(accel_tests.console, CLI, cwd=REPO, timeout=600)  # the runner as a real process
