"""`llmcompass-runner setup` from the local LLMCompass upstream (the fetched bare mirror, or
MTAP_LLMCOMPASS_SOURCE) at the pinned commit, and one real prediction that must reproduce the
value captured from the committed run (fixtures/README.md). Skipped where there is no local
LLMCompass (CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, SOURCE, config, invoke, needs_source

from mtap_llmcompass_runner import setup as st
from mtap_schemas import toolcache


def test_pin_is_a_full_sha():
    assert toolcache.HEX40.match(st.COMMIT)


def test_local_origin_kinds(tmp_path):
    with pytest.raises(toolcache.SetupError, match="no such folder"):
        st.local_origin(st.REPO_URL, tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(toolcache.SetupError, match="neither a git repository nor an LLMCompass source folder"):
        st.local_origin(st.REPO_URL, tmp_path / "plain")
    assert st.local_origin(st.REPO_URL, None) == (None, False)


def test_missing_prerequisites_are_named(monkeypatch):
    monkeypatch.setattr(toolcache, "python_module", lambda name: name != "scalesim")
    assert st.missing_prereqs() == [f"missing: Python package scalesim in {__import__('sys').executable} (pip install scalesim==2.0.2)"]


@pytest.fixture(scope="module")
def setup_build(tmp_path_factory):
    """One real setup from the local upstream into a cache of its own (verification included)."""
    if SOURCE is None:
        pytest.skip("no local LLMCompass")
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(toolcache.ENV_CACHE, str(cache))
    mp.chdir(REPO)
    r = invoke("setup", "--source", SOURCE)
    yield cache, r
    mp.undo()


@needs_source
def test_setup_from_the_local_upstream_at_the_pin(setup_build, monkeypatch):
    cache, r = setup_build
    monkeypatch.setenv(toolcache.ENV_CACHE, str(cache))  # the autouse fixture points every test at an empty cache
    assert r.exit_code == 0, r.output
    folder = cache / "llmcompass" / st.COMMIT
    info = json.loads((folder / "build.json").read_text())
    assert info["commit"] == st.COMMIT and info["version"] == f"git:{st.COMMIT}"
    assert info["verify"]["ok"] is True and info["verify"]["got"] == st.VERIFY_LATENCY_MS
    assert (folder / "llmcompass/software_model/transformer.py").is_file()
    assert not (folder / "llmcompass/.git").exists()
    assert not list((cache / "llmcompass").glob("*.tmp-*"))
    again = invoke("setup", "--source", SOURCE)
    assert again.exit_code == 0 and "already there" in again.output


@needs_source
def test_unknown_commit_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    r = invoke("setup", "--source", SOURCE, "--commit", "0" * 40)
    assert r.exit_code == 2 and "not found" in r.output


@needs_source
def test_a_real_prediction_reproduces_the_captured_value(setup_build, tmp_path, monkeypatch):
    """The runner finds the setup build by itself; LLMCompass's prediction equals the fixture's."""
    cache, _ = setup_build
    monkeypatch.setenv(toolcache.ENV_CACHE, str(cache))
    monkeypatch.chdir(REPO)
    fixture = json.loads((FIXTURES / "h200.decode.b1.kv512.case.json").read_text())
    cfg = config(tmp_path, {"include": [fixture["key"]], "hardware": [fixture["hardware"]]})
    r = invoke("run", "--config", cfg, "--output", tmp_path / "out", "--jobs", "1")
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "out" / "llmcompass.tool-run.json").read_text())
    assert d["tool"]["version"] == f"git:{st.COMMIT}"
    (c,) = d["cases"]
    assert c["status"] == "ok", c["error"]
    assert c["metrics"] == fixture["metrics"]
    assert c["parameters"] == fixture["parameters"]


@needs_source
def test_setup_from_a_plain_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(toolcache.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    folder = tmp_path / "src"
    folder.mkdir()
    archive = subprocess.run(["git", "-C", SOURCE, "archive", st.COMMIT], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    monkeypatch.setenv(st.ENV_SOURCE, str(folder))
    r = invoke("setup")
    assert r.exit_code == 0, r.output
    (built,) = [p for p in (tmp_path / "cache" / "llmcompass").iterdir() if p.is_dir()]
    assert toolcache.HEX40.match(built.name)
    info = json.loads((built / "build.json").read_text())
    assert info["source_kind"] == "folder" and info["commit"] is None and info["verify"]["ok"]
    shutil.rmtree(folder)
    assert Path(built / "llmcompass/configs/GA100.json").is_file()
