from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


@pytest.fixture
def tiny_trace() -> Path:
    return HERE / "fixtures" / "tiny-trace.json"


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """Engine settings a CPU run needs (the engine sizes its cache from GPU memory otherwise)."""
    path = tmp_path / "engine.json"
    path.write_text('{"engine": {"num_blocks": 64, "block_size": 32, "max_batch_tokens": 256}}')
    return path
