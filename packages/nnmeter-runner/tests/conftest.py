from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data"


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "nn-meter") -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run the real console entry point in a subprocess; return the process and the document."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mtap_nnmeter_runner.cli", "run", "--data-dir", str(DATA), "--output", str(out),
           "--name", name, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    target = out / f"{name}.tool-run.json"
    return proc, (json.loads(target.read_text()) if target.is_file() else None)


def by_id(doc: dict) -> dict[str, dict]:
    return {c["id"]: c for c in doc["cases"]}


def metrics(case: dict) -> dict[str, float]:
    return {m["name"]: m["value"] for m in case["metrics"]}


@pytest.fixture
def write_config(tmp_path: Path):
    def _write(**fields) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(fields))
        return path

    return _write
