from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the local LLMCompass upstream (a bare git copy): MTAP_LLMCOMPASS_SOURCE, else the fetched mirror where there is one
MIRROR = Path("/work/.mirror/PrincetonUniversity+LLMCompass/repo")
SOURCE = os.environ.get("MTAP_LLMCOMPASS_SOURCE") or (str(MIRROR) if (MIRROR / "HEAD").is_file() else None)
needs_source = pytest.mark.skipif(SOURCE is None, reason="no local LLMCompass (set MTAP_LLMCOMPASS_SOURCE to a clone; CI has none)")


@pytest.fixture(autouse=True)
def no_tool_from_the_environment(monkeypatch, tmp_path_factory):
    """Every test starts without a tool from the environment or a cached setup build."""
    monkeypatch.delenv("MTAP_LLMCOMPASS_PATH", raising=False)
    monkeypatch.delenv("MTAP_LLMCOMPASS_SOURCE", raising=False)
    monkeypatch.setenv("MTAP_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))


@pytest.fixture
def data_dir() -> Path:
    return REPO / "data"


def config(tmp_path: Path, cfg: dict, name: str = "sel.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def invoke(*args, **kw) -> Result:
    from mtap_llmcompass_runner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)
