from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


def config(tmp_path: Path, cfg: dict | str, name: str = "sel.json") -> Path:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return p


def invoke(*args, **kw) -> Result:
    from mtap_zigzag_runner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def console(*args, cwd: Path = REPO, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The runner as a real process (`python -m mtap_zigzag_runner.cli`, what the console script runs)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mtap_zigzag_runner.cli", *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)
