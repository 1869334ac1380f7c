"""`timeloop-runner setup`: prerequisite checks, pin and commit resolution, the atomic cache layout
(all without building), and one real build from a local Timeloop clone (MTAP_TIMELOOP_SOURCE)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_schemas import toolcache
from mtap_timeloop_runner import setup as st
from mtap_timeloop_runner.cli import main

REPO = Path(__file__).resolve().parents[3]
HAS_GIT = shutil.which("git") is not None


def invoke(args, **kw):
    return CliRunner().invoke(main, ["setup", *args], **kw)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(toolcache.ENV_CACHE, str(root))
    return root


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """A small local git repository with two commits, the first tagged v0.1."""
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("1\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "tag", "v0.1")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("2\n")
    _git(repo, "commit", "-q", "-am", "two")
    return repo, first, _git(repo, "rev-parse", "HEAD")


def fake_build(folder: Path, ok: bool = True, commit: str = st.COMMIT) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "lib").mkdir()
    (folder / "bin" / st.MAPPER).write_text("#!/bin/sh\n")
    (folder / "build.json").write_text(json.dumps({"commit": commit, "verify": {"ok": ok}}))
    return folder


# ---------------------------------------------------------------- prerequisites

def test_missing_tool_is_named_with_its_package_one_line_exit_2(cache, monkeypatch):
    monkeypatch.setattr(st, "PREREQS", (st.Prereq("mtap-no-such-tool", "mtap-no-such-pkg", "exe", "mtap-no-such-tool"),
                                        st.Prereq("git", "git", "exe", "git")) if HAS_GIT else
                        (st.Prereq("mtap-no-such-tool", "mtap-no-such-pkg", "exe", "mtap-no-such-tool"),))
    r = invoke(["--data-dir", str(REPO / "data")])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == ["missing: mtap-no-such-tool (Debian: apt-get install mtap-no-such-pkg)"]
    assert not cache.exists()  # no work done


def test_every_missing_prerequisite_gets_its_own_line(monkeypatch, tmp_path):
    monkeypatch.setattr(st.shutil, "which", lambda name: None)
    monkeypatch.setattr(st, "include_dirs", lambda: [str(tmp_path)])
    monkeypatch.setattr(st, "lib_dirs", lambda: [str(tmp_path)])
    lines = st.missing_prereqs()
    assert len(lines) == len(st.PREREQS)
    for line, p in zip(lines, st.PREREQS):
        assert line == f"missing: {p.name} (Debian: apt-get install {p.debian})"
    assert "missing: scons (Debian: apt-get install scons)" in lines
    assert "missing: libconfig++ headers (Debian: apt-get install libconfig++-dev)" in lines


def test_headers_and_libraries_found_through_cpath_and_library_path(monkeypatch, tmp_path):
    inc, lib = tmp_path / "inc", tmp_path / "lib"
    (inc / "yaml-cpp").mkdir(parents=True)
    lib.mkdir()
    header = st.Prereq("yaml-cpp headers", "libyaml-cpp-dev", "header", "yaml-cpp/yaml.h")
    library = st.Prereq("yaml-cpp", "libyaml-cpp-dev", "lib", "mtap-test-yaml")
    monkeypatch.setenv("CPATH", str(inc))
    monkeypatch.setenv("LIBRARY_PATH", str(lib))
    assert st.missing_prereqs((library,)) == ["missing: yaml-cpp (Debian: apt-get install libyaml-cpp-dev)"]
    (inc / "yaml-cpp" / "yaml.h").write_text("")
    (lib / "libmtap-test-yaml.so").write_text("")
    assert st.missing_prereqs((header, library)) == []


# ---------------------------------------------------------------- pin and commit resolution

def test_pin_is_a_full_sha_and_names_the_default_cache_folder(cache):
    assert toolcache.HEX40.match(st.COMMIT) and st.VERSION == "v3.0.3"
    assert st.default_build_dir(st.COMMIT) == cache / "timeloop" / st.COMMIT
    assert st.PAT_DIR == "pat-public/src/pat"


@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_unknown_commit_is_a_one_line_user_error(origin, tmp_path, cache, monkeypatch):
    repo, _, _ = origin
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--source", str(repo), "--commit", "0" * 40, "--data-dir", str(REPO / "data")])
    assert r.exit_code == 2
    assert f"--commit {'0' * 40}: not found in {repo}" in r.output
    assert len(r.output.strip().splitlines()) == 2  # "cloning ..." then the error
    assert not list((cache / "timeloop").glob("0*"))


def test_source_must_be_a_git_clone(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--source", str(tmp_path), "--data-dir", str(REPO / "data")])
    assert r.exit_code == 2 and f"--source {tmp_path}: not a git clone" in r.output


def test_missing_data_dir_is_named(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "eyeriss-like not found" in r.output


# ---------------------------------------------------------------- the atomic cache layout

def test_find_cached_build_takes_only_complete_verified_builds(cache):
    base = cache / "timeloop"
    assert st.find_cached_build() is None
    fake_build(base / f"{st.COMMIT}.tmp-12345")  # an interrupted build: never found
    assert st.find_cached_build() is None
    fake_build(base / st.COMMIT, ok=False)  # built but failed its verification
    assert st.find_cached_build() is None
    other = fake_build(base / ("a" * 40), commit="a" * 40)
    assert st.find_cached_build() == other  # no verified pin: the verified other commit
    assert st.find_cached_build(commit="b" * 40) is None
    shutil.rmtree(base / st.COMMIT)
    pinned = fake_build(base / st.COMMIT)
    assert st.find_cached_build() == pinned  # the pin first
    (pinned / "bin" / st.MAPPER).unlink()
    assert st.find_cached_build() == other  # no binary: not a build


def test_verified_build_already_there_is_kept_without_cloning(cache, monkeypatch):
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    fake_build(cache / "timeloop" / st.COMMIT)
    r = invoke(["--repo-url", "https://invalid.invalid/timeloop.git", "--data-dir", str(REPO / "data")])
    assert r.exit_code == 0, r.output
    assert "already there" in r.output and "cloning" not in r.output


@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_failed_build_is_never_installed(origin, cache, monkeypatch):
    """A checkout without Timeloop's PAT model fails before scons: nothing appears under the commit."""
    repo, first, _ = origin
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--source", str(repo), "--commit", "v0.1", "--data-dir", str(REPO / "data")])
    assert r.exit_code == 1
    assert "pat-public/src/pat: the PAT model is not in this Timeloop checkout" in r.output
    assert not (cache / "timeloop" / first).exists()
    assert st.find_cached_build(first) is None
    assert not list((cache / "timeloop").glob("checkout-*"))  # the clone is removed


# ---------------------------------------------------------------- the real build

SOURCE = os.environ.get("MTAP_TIMELOOP_SOURCE")


@pytest.mark.skipif(not SOURCE, reason="set MTAP_TIMELOOP_SOURCE to a local Timeloop clone to build it (20-60 min)")
def test_real_build_from_local_clone_reproduces_conv1(cache, tmp_path):
    jobs = os.environ.get("MTAP_SETUP_JOBS", "2")
    r = invoke(["--source", SOURCE, "--jobs", jobs, "--data-dir", str(REPO / "data")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    found = st.find_cached_build()
    assert found == cache / "timeloop" / st.COMMIT
    info = json.loads((found / "build.json").read_text())
    assert info["commit"] == st.COMMIT and info["version"] == st.VERSION
    assert info["verify"] == {**info["verify"], "ok": True, "got": 1_204_224, "expected": 1_204_224}
    assert info["build_seconds"] > 0
    assert (found / "bin" / st.MAPPER).is_file() and list((found / "lib").glob("libtimeloop-mapper*"))
    assert not list(found.parent.glob("*.tmp-*")) and not list(found.parent.glob("checkout-*"))
    again = invoke(["--source", SOURCE, "--data-dir", str(REPO / "data")])
    assert again.exit_code == 0 and "already there" in again.output
