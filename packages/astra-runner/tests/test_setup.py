"""`astra-runner setup`: prerequisite checks, pin and commit resolution, submodules from a local
clone, the offline-build changes, the atomic cache layout (all without building), and one real
build from a local ASTRA-sim clone (MTAP_ASTRA_SOURCE)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_astra_runner import setup as st
from mtap_astra_runner.cli import main
from mtap_schemas import toolcache

REPO = Path(__file__).resolve().parents[3]
HAS_GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not HAS_GIT, reason="needs git")


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


def _repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "c")
    return _git(path, "rev-parse", "HEAD")


@pytest.fixture
def superproject(tmp_path):
    """A local clone laid out like ASTRA-sim: gitlinks for every needed submodule, each checked out
    as a repository of its own; the chakra one at a commit other than the pinned one."""
    top = tmp_path / "astra"
    _repo(top, {"README": "top\n"})
    pins, used = {}, {}
    for path in st.SUBMODULES:
        sub = top / path
        pins[path] = _repo(sub, {"x.txt": f"{path} pinned\n"})
        used[path] = pins[path]
    chakra = top / st.SUBMODULES[0]
    (chakra / "x.txt").write_text("newer\n")
    _git(chakra, "commit", "-q", "-am", "newer")
    used[st.SUBMODULES[0]] = _git(chakra, "rev-parse", "HEAD")
    for path, sha in pins.items():
        _git(top, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    _git(top, "commit", "-q", "-m", "submodules")
    return top, _git(top, "rev-parse", "HEAD"), pins, used


def fake_build(folder: Path, ok: bool = True, commit: str = st.COMMIT) -> Path:
    (folder / "bin").mkdir(parents=True)
    for b in st.BINARIES:
        (folder / "bin" / b).write_text("#!/bin/sh\n")
    (folder / "build.json").write_text(json.dumps({"commit": commit, "verify": {"ok": ok}}))
    return folder


# ---------------------------------------------------------------- prerequisites

def test_missing_tool_is_named_with_its_package_one_line_exit_2(cache, monkeypatch):
    monkeypatch.setattr(st, "PREREQS", (st.Prereq("mtap-no-such-tool", "Debian: apt-get install mtap-no-such-pkg",
                                                  "exe", "mtap-no-such-tool"),))
    r = invoke(["--data-dir", str(REPO / "data")])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == ["missing: mtap-no-such-tool (Debian: apt-get install mtap-no-such-pkg)"]
    assert not cache.exists()  # no work done


def test_every_missing_prerequisite_gets_its_own_line(monkeypatch, tmp_path):
    monkeypatch.setattr(st.shutil, "which", lambda name: None)
    monkeypatch.setattr(st, "include_dirs", lambda: [str(tmp_path)])
    monkeypatch.setattr(st, "lib_dirs", lambda: [str(tmp_path)])
    monkeypatch.setattr(st, "_python_module", lambda name: False)
    lines = st.missing_prereqs()
    assert lines == [f"missing: {p.name} ({p.install})" for p in st.PREREQS]
    assert "missing: protoc (Debian: apt-get install protobuf-compiler)" in lines
    assert "missing: yaml-cpp headers (Debian: apt-get install libyaml-cpp-dev)" in lines
    assert any(line.startswith("missing: mlc-chakra") and "pip install --no-deps mlc-chakra==1.0.0" in line
               for line in lines)


def test_old_cmake_is_named(monkeypatch):
    monkeypatch.setattr(st, "cmake_version", lambda: (3, 18))
    monkeypatch.setattr(st, "present", lambda p: True)
    assert st.missing_prereqs() == [
        "missing: cmake >= 3.22 (found 3.18; Debian 12: apt-get install cmake, or pip install cmake)"]


def test_headers_and_libraries_found_through_cpath_and_library_path(monkeypatch, tmp_path):
    inc, lib = tmp_path / "inc", tmp_path / "lib"
    (inc / "mtap-test").mkdir(parents=True)
    lib.mkdir()
    header = st.Prereq("protobuf headers", "x", "header", "mtap-test/message.h")
    library = st.Prereq("protobuf", "x", "lib", "mtap-test-protobuf")
    monkeypatch.setenv("CPATH", str(inc))
    monkeypatch.setenv("LIBRARY_PATH", str(lib))
    assert st.missing_prereqs((header, library)) == ["missing: protobuf headers (x)", "missing: protobuf (x)"]
    (inc / "mtap-test" / "message.h").write_text("")
    (lib / "libmtap-test-protobuf.a").write_text("")
    assert st.missing_prereqs((header, library)) == []


# ---------------------------------------------------------------- pin, origin and commit resolution

def test_pin_is_the_full_sha_of_the_committed_build(cache):
    assert st.COMMIT == "518bd513ae110428cd62eb60efc0f3993fd53c70"
    assert st.default_build_dir(st.COMMIT) == cache / "astra-sim" / st.COMMIT


@needs_git
def test_local_origins(superproject, tmp_path):
    top = superproject[0]
    assert st.local_origin(st.REPO_URL, None) is None
    assert st.local_origin("git@github.com:astra-sim/astra-sim.git", None) is None
    assert st.local_origin(f"file://{top}", None) == top
    assert st.local_origin(str(top), None) == top
    assert st.local_origin(st.REPO_URL, top) == top
    with pytest.raises(st.SetupError, match=f"--source {tmp_path}: not a git clone"):
        st.local_origin(st.REPO_URL, tmp_path)


@needs_git
def test_submodules_from_a_local_clone_record_pin_and_used_commit(superproject, tmp_path, capsys):
    top, sha, pins, used = superproject
    src = tmp_path / "src"
    toolcache.checkout(str(top), src, sha)
    assert st.pinned_submodules(src) == pins
    records = st.get_submodules(src, top)
    assert set(records) == set(st.SUBMODULES)
    for path in st.SUBMODULES:
        rec = records[path]
        assert rec["pinned"] == pins[path] and rec["used"] == used[path]
        assert rec["matches_pin"] is (used[path] == pins[path]) and rec["dirty"] is False
        assert (src / path / "x.txt").is_file() and not (src / path / ".git").exists()
    assert records[st.SUBMODULES[0]]["matches_pin"] is False
    assert (src / st.SUBMODULES[0] / "x.txt").read_text() == "newer\n"
    assert "is not what" in capsys.readouterr().err


@needs_git
def test_submodule_not_checked_out_locally_is_a_user_error(superproject, tmp_path):
    top, sha, _, _ = superproject
    shutil.rmtree(top / st.SUBMODULES[1] / ".git")
    src = tmp_path / "src"
    toolcache.checkout(str(top), src, sha)
    with pytest.raises(st.SetupError, match="submodule not checked out"):
        st.get_submodules(src, top)


# ---------------------------------------------------------------- the offline-build changes

def test_patches_apply_where_their_pattern_is_and_nowhere_else(tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "include(FetchContent)\nFetchContent_Declare(\n    yaml-cpp\n    GIT_REPOSITORY https://example/yaml-cpp.git\n"
        "    GIT_TAG abc\n)\nFetchContent_MakeAvailable(yaml-cpp)\n\nfind_package(Protobuf REQUIRED)\n")
    net = tmp_path / "extern/network_backend/analytical/CMakeLists.txt"
    net.parent.mkdir(parents=True)
    net.write_text("project(Analytical)\nadd_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/extern/yaml-cpp yaml-cpp)\n")
    feeder = tmp_path / "extern/graph_frontend/chakra/src/feeder_v3/et_feeder.h"
    feeder.parent.mkdir(parents=True)
    feeder.write_text("namespace Chakra {\nnamespace FeederV3 {\nclass ETFeeder {};\n"
                      "using ETFeeder = FeederV3::ETFeeder;\n\n} // namespace FeederV3\n} // namespace Chakra\n")
    assert st.apply_patches(tmp_path) == [p.name for p in st.PATCHES]
    top = (tmp_path / "CMakeLists.txt").read_text()
    assert "FetchContent_Declare" not in top and "find_package(yaml-cpp REQUIRED)\n\nfind_package(Protobuf" in top
    assert net.read_text() == "project(Analytical)\nfind_package(yaml-cpp REQUIRED)\n"
    assert feeder.read_text().endswith(
        "class ETFeeder {};\n} // namespace FeederV3\nusing ETFeeder = FeederV3::ETFeeder;\n} // namespace Chakra\n")
    assert st.apply_patches(tmp_path) == []  # applied once; sources that need none are left alone


# ---------------------------------------------------------------- the atomic cache layout

def test_find_cached_build_takes_only_complete_verified_builds(cache):
    base = cache / "astra-sim"
    assert st.find_cached_build() is None
    fake_build(base / f"{st.COMMIT}.tmp-12345")  # an interrupted build: never found
    assert st.find_cached_build() is None
    fake_build(base / st.COMMIT, ok=False)
    assert st.find_cached_build() is None
    other = fake_build(base / ("a" * 40), commit="a" * 40)
    assert st.find_cached_build() == other
    shutil.rmtree(base / st.COMMIT)
    pinned = fake_build(base / st.COMMIT)
    assert st.find_cached_build() == pinned
    (pinned / "bin" / st.BINARIES[1]).unlink()
    assert st.find_cached_build() == other  # one binary missing: not a build


def test_verified_build_already_there_is_kept_without_cloning(cache, monkeypatch):
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    fake_build(cache / "astra-sim" / st.COMMIT)
    r = invoke(["--repo-url", "https://invalid.invalid/astra-sim.git", "--data-dir", str(REPO / "data")])
    assert r.exit_code == 0, r.output
    assert "already there" in r.output and "cloning" not in r.output


@needs_git
def test_failed_build_is_never_installed(superproject, cache, monkeypatch):
    """The stand-in superproject has no Chakra protobuf schema: protoc fails, nothing is installed."""
    if not shutil.which("protoc"):
        pytest.skip("needs protoc")
    top, sha, _, _ = superproject
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--source", str(top), "--commit", sha, "--data-dir", str(REPO / "data")])
    assert r.exit_code == 1, r.output
    assert "protoc et_def.proto" in r.output and "failed" in r.output
    assert not (cache / "astra-sim" / sha).exists() and st.find_cached_build(sha) is None
    assert not list((cache / "astra-sim").glob("checkout-*"))


def test_missing_hardware_catalog_is_named(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(st, "missing_prereqs", lambda: [])
    r = invoke(["--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "hardware.json not found" in r.output


# ---------------------------------------------------------------- the real build

SOURCE = os.environ.get("MTAP_ASTRA_SOURCE")


@pytest.mark.skipif(not SOURCE, reason="set MTAP_ASTRA_SOURCE to a local ASTRA-sim clone (submodules checked out) "
                                       "to build it (10-30 min)")
def test_real_build_from_local_clone_reproduces_57426_cycles(cache):
    jobs = os.environ.get("MTAP_SETUP_JOBS", "2")
    r = invoke(["--repo-url", f"file://{SOURCE}", "--jobs", jobs, "--data-dir", str(REPO / "data")],
               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    found = st.find_cached_build()
    assert found == cache / "astra-sim" / st.COMMIT
    info = json.loads((found / "build.json").read_text())
    assert info["commit"] == st.COMMIT and set(info["submodules"]) == set(st.SUBMODULES)
    exact = not info["patches"] and all(r["matches_pin"] for r in info["submodules"].values())
    assert info["version"] == f"git:{st.COMMIT}" + ("" if exact else "-dirty")
    assert info["verify"] == {**info["verify"], "ok": True, "got": 57426, "expected": 57426}
    assert info["build_seconds"] > 0
    assert sorted(p.name for p in (found / "bin").iterdir()) == sorted(st.BINARIES)
    assert not list(found.parent.glob("*.tmp-*")) and not list(found.parent.glob("checkout-*"))
    again = invoke(["--source", SOURCE, "--data-dir", str(REPO / "data")])
    assert again.exit_code == 0 and "already there" in again.output
