"""mtap_schemas.toolcache: the build.json record, finding the newest verified build, stale temporary
folders, and the shared setup flow (renamed into place only after a successful verification)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from mtap_schemas import toolcache as tc

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(tc.ENV_CACHE, str(root))
    return root


def fake_build(folder: Path, ok: bool = True, commit: str = "c") -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "tool").write_text("")
    tc.write_build_json(folder, {"commit": commit, "verify": {"ok": ok}})
    return folder


def test_build_json_round_trip_needs_verify_ok_and_the_required_files(tmp_path):
    info = {"tool": "t", "commit": "a" * 40, "verify": {"ok": True, "got": 1, "expected": 1}, "n": [1, 2]}
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("")
    tc.write_build_json(tmp_path, info)
    assert (tmp_path / "build.json").read_text().endswith("}\n")
    assert tc.read_build_json(tmp_path, ["bin/tool"]) == info
    assert tc.read_build_json(tmp_path, ["bin/other"]) is None
    tc.write_build_json(tmp_path, {**info, "verify": {"ok": False}})
    assert tc.read_build_json(tmp_path) is None
    (tmp_path / "build.json").write_text("{not json")
    assert tc.read_build_json(tmp_path) is None
    assert tc.read_build_json(tmp_path / "absent") is None


def test_build_version_is_the_first_record_with_a_string_version(tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    for folder in (a, b, c, d):
        folder.mkdir()
    (a / "build.json").write_text("{not json")
    (b / "build.json").write_text(json.dumps({"version": 3}))
    (c / "build.json").write_text(json.dumps({"version": "git:abc", "verify": {"ok": False}}))
    (d / "build.json").write_text(json.dumps({"version": "v2"}))
    assert tc.build_version([tmp_path / "missing", a, b, c, d]) == "git:abc"
    assert tc.build_version([d, c]) == "v2" and tc.build_version([a, b]) is None and tc.build_version([]) is None


def test_find_cached_build_prefers_the_pin_then_the_newest_verified(cache):
    base = cache / "t"
    pin, a, b = "0" * 40, "a" * 40, "b" * 40
    assert tc.find_cached_build("t", None, pin, ["bin/tool"]) is None
    fake_build(base / f"{pin}.tmp-1")  # interrupted: never found
    fake_build(base / pin, ok=False)  # failed its verification
    older, newer = fake_build(base / a), fake_build(base / b)
    os.utime(older, (1_000, 1_000))
    os.utime(newer, (2_000, 2_000))
    fake_build(base / "not-a-sha")
    assert tc.find_cached_build("t", None, pin, ["bin/tool"]) == newer
    assert tc.find_cached_build("t", a, pin, ["bin/tool"]) == older
    assert tc.find_cached_build("t", "c" * 40, pin, ["bin/tool"]) is None  # asked for one: no fallback
    assert tc.find_cached_build("t", None, pin, ["bin/missing"]) is None
    shutil.rmtree(base / pin)
    assert tc.find_cached_build("t", None, pin, ["bin/tool"]) == newer
    fake_build(base / pin)
    assert tc.find_cached_build("t", None, pin, ["bin/tool"]) == base / pin


def test_only_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = fake_build(tmp_path / f"sha.tmp-{dead.pid}")
    live = fake_build(tmp_path / f"sha.tmp-{os.getpid()}")
    odd = fake_build(tmp_path / "sha.tmp-x")
    other = fake_build(tmp_path / f"other.tmp-{dead.pid}")
    assert tc.clean_stale(tmp_path / "sha") == [stale]
    assert not stale.exists() and live.exists() and odd.exists() and other.exists()


def test_install_replaces_only_with_force(tmp_path):
    final = tmp_path / "sha"
    one = fake_build(tmp_path / "sha.tmp-1")
    tc.install(one, final, force=False)
    assert final.is_dir() and not one.exists()
    two = fake_build(tmp_path / "sha.tmp-2", commit="second")
    with pytest.raises(tc.SetupError, match="exists") as e:
        tc.install(two, final, force=False)
    assert e.value.exit_code == 2 and tc.BuildError("x").exit_code == 1
    tc.install(two, final, force=True)
    assert json.loads((final / "build.json").read_text())["commit"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["sha"]


# ---------------------------------------------------------------- git

@needs_git
def test_checkout_resolves_tags_and_short_shas_and_rejects_an_unknown_commit(tmp_path):
    repo = tmp_path / "origin"
    first = _origin(repo)
    subprocess.run(["git", "tag", "v0.1"], cwd=repo, check=True, capture_output=True)
    (repo / "a.txt").write_text("2\n")
    second = _origin(repo)
    assert tc.checkout(str(repo), tmp_path / "a", "v0.1") == first
    assert (tmp_path / "a" / "a.txt").read_text() == "1\n"
    assert tc.checkout(f"file://{repo}", tmp_path / "b", second[:7]) == second
    assert (tmp_path / "b" / "a.txt").read_text() == "2\n"
    with pytest.raises(tc.SetupError, match="not found"):
        tc.checkout(str(repo), tmp_path / "c", "f" * 40)


# ---------------------------------------------------------------- the shared setup flow

def _origin(path: Path) -> str:
    """A git repository at ``path`` with a.txt ("1\\n") committed; called again, a commit of its changes."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if not path.exists():
        path.mkdir()
        (path / "a.txt").write_text("1\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True,
                          text=True).stdout.strip()


class Fake(tc.ToolBuild):
    tool = "t"
    pinned = "0" * 40
    required = ("bin/tool",)

    def __init__(self, ok: bool):
        self.ok, self.seen = ok, {}

    def build(self, src, out, jobs, log, ctx):
        self.seen["tmp"] = out
        assert out.name.endswith(f".tmp-{os.getpid()}") and (src / "a.txt").is_file()
        (out / "bin").mkdir()
        (out / "bin" / "tool").write_text("")

    def verify(self, build_dir, work, ctx):
        # verified in the temporary folder: nothing under the final name yet
        assert build_dir == self.seen["tmp"] and not build_dir.with_name(build_dir.name.split(".tmp-")[0]).exists()
        return {"ok": self.ok, "got": 1 if self.ok else 2}

    def record(self, sha, ctx, build_seconds, result):
        return {"tool": self.tool, "commit": sha, "verify": result}

    def failed(self, result, tmp):
        return f"verification failed: got {result['got']}; left in {tmp}"

    def done(self, sha, ctx, build_seconds, result, final):
        return f"done: {final}"


@needs_git
def test_setup_renames_into_place_only_after_verification(tmp_path, cache, capsys):
    sha = _origin(tmp_path / "origin")
    with pytest.raises(click.ClickException, match="verification failed: got 2") as e:
        Fake(ok=False).run(origin=str(tmp_path / "origin"), commit=sha, cache_dir=None, jobs=1, force=False)
    assert e.value.exit_code == 1
    base = cache / "t"
    assert not (base / sha).exists() and tc.find_cached_build("t", sha, Fake.pinned, Fake.required) is None
    [left] = base.glob(f"{sha}.tmp-*")  # the failed build is left aside, not installed
    assert json.loads((left / "build.json").read_text())["verify"]["ok"] is False
    assert not list(base.glob("checkout-*"))
    shutil.rmtree(left)  # (a later setup, in another process, removes it as stale)

    fake = Fake(ok=True)
    fake.run(origin=str(tmp_path / "origin"), commit=sha, cache_dir=None, jobs=1, force=False)
    assert fake.find(sha) == base / sha == fake.find()
    assert json.loads((base / sha / "build.json").read_text()) == {"tool": "t", "commit": sha,
                                                                    "verify": {"ok": True, "got": 1}}
    assert [p.name for p in base.iterdir()] == [sha] and not list((base / sha).glob("verify-*"))
    assert capsys.readouterr().out.splitlines()[-1] == f"done: {base / sha}"

    Fake(ok=True).run(origin="/nonexistent", commit=sha, cache_dir=None, jobs=1, force=False)  # no clone needed
    assert capsys.readouterr().out == f"{base / sha}: verified build already there (use --force to rebuild)\n"


def test_missing_prerequisites_exit_2_one_line_each(capsys):
    tc.exit_if_missing([])
    with pytest.raises(SystemExit) as e:
        tc.exit_if_missing(["missing: a (x)", "missing: b (y)"])
    assert e.value.code == 2 and capsys.readouterr().err == "missing: a (x)\nmissing: b (y)\n"
    assert tc.present("exe", "sh") and not tc.present("exe", "mtap-no-such-tool")
    assert tc.present("python", "json") and not tc.present("python", "mtap_no_such_module")
