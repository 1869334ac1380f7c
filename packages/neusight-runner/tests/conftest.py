from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
FIXTURES = HERE / "fixtures"


def shared_dir() -> Path:
    return Path(os.environ.get("MTAP_SHARED_DIR") or (REPO / ".." / "shared")).resolve()


@pytest.fixture
def shared_neusight() -> Path:
    path = shared_dir() / "neusight"
    if not (path / "label").is_dir():
        pytest.skip(f"{path}: NeuSight artifact data not present")
    return path


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A writable copy of the few real artifact files in fixtures/artifact-mini."""
    dst = tmp_path / "artifact"
    shutil.copytree(FIXTURES / "artifact-mini", dst)
    return dst


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


@pytest.fixture
def repo() -> Path:
    return REPO
