from __future__ import annotations

import os
import stat
from functools import partial
from pathlib import Path

import pytest

from mtap_schemas import accel_tests

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _real_timeloop() -> str | None:
    """A real Timeloop v3.0.3: MTAP_TIMELOOP_PATH, else a verified `timeloop-runner setup` build (read at import,
    before the autouse fixture below clears both for every test)."""
    if os.environ.get("MTAP_TIMELOOP_PATH"):
        return os.environ["MTAP_TIMELOOP_PATH"]
    from mtap_timeloop_runner.setup import find_cached_build

    found = find_cached_build()
    return str(found) if found else None


REAL_TIMELOOP = _real_timeloop()


@pytest.fixture(autouse=True)
def no_tool_from_the_environment(monkeypatch, tmp_path_factory):
    """Every test starts without a tool from the environment or a cached setup build."""
    monkeypatch.delenv("MTAP_TIMELOOP_PATH", raising=False)
    monkeypatch.setenv("MTAP_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


def fake_bin(folder: Path, script: str) -> Path:
    """``folder/timeloop-mapper`` as an executable script; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "timeloop-mapper"
    p.write_text(script)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


CLI = "mtap_timeloop_runner.cli"
config = accel_tests.config_file
invoke = partial(accel_tests.invoke, CLI)
console = partial(accel_tests.console, CLI, cwd=REPO, timeout=300)  # the runner as a real process
