from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMITTED = DATA / "evaluation" / "aiconfigurator" / "aiconfigurator.tool-run.json"
GROUNDTRUTH = [DATA / "evaluation" / "groundtruth" / f"{g}.tool-run.json" for g in ("h100-x1", "h200-x1")]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "mtap_aiconfigurator_runner.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900
    )


def run_doc(
    tmp_path: Path, *args: str, name: str = "aiconfigurator", env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / "out"
    proc = cli("run", "--data-dir", str(DATA), "--output", str(out), "--name", name, "--jobs", "1", *args, env=env)
    target = out / f"{name}.tool-run.json"
    return proc, (json.loads(target.read_text()) if target.is_file() else None)


@pytest.fixture
def write_config(tmp_path: Path):
    def _write(**fields) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(fields))
        return path

    return _write
