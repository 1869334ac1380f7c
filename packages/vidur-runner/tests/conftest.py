from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PKG = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODEL = "meta-llama/Llama-2-7b-hf"
H100_PROFILE = REPO / "data" / "profiles" / "vidur" / "h100" / MODEL


def shared_dir() -> Path | None:
    env = os.environ.get("MTAP_SHARED_DIR")
    p = Path(env) if env else REPO / ".." / "shared"
    return p.resolve() if (p / "vidur" / "profiling").is_dir() else None


@pytest.fixture
def shared() -> Path:
    p = shared_dir()
    if p is None:
        pytest.skip("../shared/vidur (upstream VIDUR profiles) not present")
    return p / "vidur" / "profiling"
