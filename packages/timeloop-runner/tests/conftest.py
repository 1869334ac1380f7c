from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

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
def repo() -> Path:
    return REPO


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


def config(tmp_path: Path, cfg: dict | str, name: str = "sel.json") -> Path:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return p


def invoke(*args, **kw) -> Result:
    from mtap_timeloop_runner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def console(*args, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The runner as a real process (`python -m mtap_timeloop_runner.cli`, what the console script runs)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mtap_timeloop_runner.cli", *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)
