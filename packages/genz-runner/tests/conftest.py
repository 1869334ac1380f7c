from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The repository's data/ folder (hardware and workload catalogs, ground truth)."""
    return REPO / "data"


@pytest.fixture(scope="session")
def reference() -> dict:
    """GenZ's latencies captured from a real run (fixtures/README.md says how)."""
    return json.loads((FIXTURES / "reference-latencies.json").read_text())
