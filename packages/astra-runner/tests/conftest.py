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
BINARIES = ("AstraSim_Analytical_Congestion_Aware", "AstraSim_Analytical_Congestion_Unaware")

#: a real ASTRA-sim analytical binary or folder, read before the autouse fixture below clears the variables
REAL_BIN = os.environ.get("MTAP_ASTRA_SIM_PATH") or os.environ.get("ASTRA_SIM_BIN")


@pytest.fixture(autouse=True)
def no_tool_from_the_environment(monkeypatch, tmp_path_factory):
    """Every test starts without a tool from the environment or a cached setup build."""
    for var in ("ASTRA_SIM_BIN", "MTAP_ASTRA_SIM_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MTAP_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


def fake_bin(folder: Path, script: str) -> Path:
    """Both analytical binaries as the same executable script."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in BINARIES:
        p = folder / name
        p.write_text(script)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def config(tmp_path: Path, cfg: dict, name: str = "sel.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def invoke(*args: str, **kw) -> Result:
    from mtap_astra_runner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def console(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The runner as a real process (`python -m mtap_astra_runner.cli`, what the console script runs)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mtap_astra_runner.cli", *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)
