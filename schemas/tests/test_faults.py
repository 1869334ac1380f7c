"""What the kit guarantees under faults (issue 32): signals with --jobs, kill -9, signals while
importing, malformed and shared checkpoints, documents of a newer major, hostile --name, file
system errors. Each test runs the kit's demo runner (tests/kitdemo.py) as a real process and
failed before the fix it guards."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mtap_schemas.toolrun as tr
from mtap_schemas import keep, kinds
from mtap_schemas.execute import Checkpoint, CheckpointBusy, plan_digest

HERE = Path(__file__).resolve().parent
DEMO = HERE / "kitdemo.py"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")


def demo_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HERE), **extra}


def demo(*args: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, env=env or demo_env(),
                          timeout=timeout, **kw)


def sleepers(tag: str) -> list[int]:
    """pids of the demo's tool processes (``sleep <tag>``) still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:2] == [b"sleep", tag.encode()]:
                found.append(int(entry.name))
    return found


def wait_for(cond, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def start_with_tools(tmp_path: Path, tag: str, jobs: int = 2) -> subprocess.Popen:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = demo_env(KITDEMO_TOOL_SLEEP=tag, KITDEMO_TMP=str(tmp))
    p = subprocess.Popen([sys.executable, str(DEMO), "run", "--output", str(tmp_path / "out"), "--cases", "6",
                          "--jobs", str(jobs)], env=env, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: len(sleepers(tag)) >= min(jobs, 2)), "the demo's tools never started"
    return p


@linux_only
@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_with_jobs_kills_the_tools_removes_temp_folders_and_prints_one_line(tmp_path: Path, jobs: int) -> None:
    tag = f"{300 + jobs}.{os.getpid()}"
    p = start_with_tools(tmp_path, tag, jobs)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == kinds.Exit.INTERRUPTED, err
    assert "Traceback" not in err, err
    assert wait_for(lambda: not sleepers(tag), 10), "a tool process outlived the run"
    assert not list((tmp_path / "tmp").iterdir()), "a unit's temp folder was left behind"


@linux_only
def test_kill_9_of_the_runner_ends_its_workers_and_their_tools(tmp_path: Path) -> None:
    tag = f"309.{os.getpid()}"
    p = start_with_tools(tmp_path, tag, 2)
    workers = [int(x) for x in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()]
    p.kill()
    p.wait(timeout=10)
    assert wait_for(lambda: not sleepers(tag), 15), "tools outlived a killed runner"
    assert wait_for(lambda: not list((tmp_path / "tmp").iterdir()), 15), "temp folders outlived a killed runner"
    def gone(pid: int) -> bool:
        try:
            return b"(Z)" in Path(f"/proc/{pid}/stat").read_bytes() or b"\tZ " in Path(f"/proc/{pid}/status").read_bytes()
        except OSError:
            return True

    for pid in workers:
        assert wait_for(lambda pid=pid: gone(pid), 15), f"process {pid} outlived the runner"


@linux_only
def test_a_signal_while_importing_exits_130_with_one_line(tmp_path: Path) -> None:
    # a runner module that is slow to import (a big library): the signal lands before main()
    slow = tmp_path / "slowrunner.py"
    slow.write_text("import mtap_schemas.cli\nimport time\nprint('importing', flush=True)\ntime.sleep(30)\n"
                    "mtap_schemas.cli.runner_group('slow', '0')(lambda: None)()\n")
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = subprocess.Popen([sys.executable, str(slow)], env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline().strip() == "importing"
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        assert p.returncode == kinds.Exit.INTERRUPTED, (sig, p.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("content", [b"[1, 2, 3]\n", b"7\n", b'{"plan": "%s"}\n[1]\n{"id": "case-000"}\n42\n"x"\n{"result": 1}\n'])
def test_a_malformed_progress_file_is_skipped_line_by_line_not_a_crash(tmp_path: Path, content: bytes) -> None:
    out = tmp_path / "out"
    out.mkdir()
    units = [{"id": f"case-{i:03d}", "i": i, "mode": "ok"} for i in range(4)]
    digest = plan_digest(units)
    (out / ".demo.progress.jsonl").write_bytes(content.replace(b"%s", digest.encode()))
    r = demo("run", "--output", str(out), "--cases", "4", "--jobs", "1", "--resume")
    assert r.returncode == 0, r.stderr
    assert b"Traceback" not in r.stderr
    assert len(json.loads((out / "demo.tool-run.json").read_bytes())["cases"]) == 4


def test_two_runs_into_one_output_and_name_never_share_a_progress_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = Checkpoint(out, "demo", "plan-a")
    try:
        r = demo("run", "--output", str(out), "--cases", "2", "--jobs", "1")
        assert r.returncode == kinds.Exit.USER_ERROR, r.stderr
        err = r.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and "another run" in err and str(os.getpid()) in err, err
        assert not (out / "demo.tool-run.json").exists()
        # another name in the same folder is fine
        assert demo("run", "--output", str(out), "--cases", "2", "--jobs", "1", "--name", "other").returncode == 0
    finally:
        first.finish()
    assert demo("run", "--output", str(out), "--cases", "2", "--jobs", "1").returncode == 0
    # in one process, a second checkpoint of the same document reuses the lock instead of refusing
    a = Checkpoint(out, "same", "p")
    b = Checkpoint(out, "same", "p")
    b.finish()
    a.finish()
    with pytest.raises(CheckpointBusy):
        held = Checkpoint(out, "busy", "p")
        try:
            subprocess.run([sys.executable, "-c", "import sys; from mtap_schemas.execute import Checkpoint; "
                            f"Checkpoint({str(out)!r}, 'busy', 'p')"], check=True, capture_output=True, env=demo_env())
        except subprocess.CalledProcessError as exc:
            assert b"CheckpointBusy" in exc.stderr
            raise CheckpointBusy("refused in the other process") from None
        finally:
            held.finish()


def test_a_document_of_a_newer_major_is_kept_whatever_its_ok_count(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    future = {"schema": "tool-run", "schema_version": f"{tr.TOOL_RUN_MAJOR + 1}.0.0", "cases": []}
    target = out / "demo.tool-run.json"
    target.write_text(json.dumps(future))
    before = target.read_bytes()
    r = demo("run", "--output", str(out), "--cases", "3", "--jobs", "1")
    assert r.returncode == kinds.Exit.KEPT_EXISTING, r.stderr
    assert target.read_bytes() == before
    assert (out / f"demo.{keep.REFUSED}.json").exists()
    assert b"newer" in r.stderr
    assert demo("run", "--output", str(out), "--cases", "3", "--jobs", "1", "--overwrite").returncode == 0


@pytest.mark.parametrize("name", ["", "../../escaped", "a/b", ".hidden", "-dash", "a\nb", "x" * 200, "..", "a..b", "ü"])
def test_hostile_names_are_refused_with_one_line(tmp_path: Path, name: str) -> None:
    out = tmp_path / "deep" / "out"
    r = demo("run", "--output", str(out), "--cases", "1", "--name", name)
    assert r.returncode == kinds.Exit.USER_ERROR, (name, r.stderr)
    err = r.stderr.decode("utf-8", "replace").strip()
    assert "--name" in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.rglob("*.tool-run.json"))


def test_plain_names_still_work(tmp_path: Path) -> None:
    for name in ("demo-2", "w5.static_v2", "0"):
        assert demo("run", "--output", str(tmp_path), "--cases", "1", "--name", name).returncode == 0
        assert (tmp_path / f"{name}.tool-run.json").exists()


@linux_only
def test_a_file_size_limit_ends_in_one_line_and_no_partial_document(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    r = demo("run", "--output", str(out), "--cases", "200", "--jobs", "1", preexec_fn=limit)
    err = r.stderr.decode()
    assert r.returncode == kinds.Exit.USER_ERROR, err
    assert "Traceback" not in err and "File too large" in err and len(err.strip().splitlines()) <= 2, err
    assert not (out / "demo.tool-run.json").exists() and not list(out.glob("*.tmp*"))


@linux_only
def test_a_non_utf8_output_path_works_or_fails_in_one_line(tmp_path: Path) -> None:
    out = os.path.join(os.fsencode(tmp_path), b"out-\xff")
    r = subprocess.run([sys.executable, str(DEMO).encode(), b"run", b"--output", out, b"--cases", b"2", b"--jobs", b"1"],
                       capture_output=True, env=demo_env(), timeout=120)
    assert b"Traceback" not in r.stderr, r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(out, b"demo.tool-run.json"))


@pytest.mark.parametrize("where", ["import", "command", "distribution"])
def test_a_missing_tool_package_is_one_line_with_the_install_hint(tmp_path: Path, where: str) -> None:
    runner = tmp_path / "toolless-runner"
    missing = "import mtap_missing_tool_package_xyz\n"
    body = {
        "import": missing + "main = None\n",
        "command": "",
        "distribution": "",
    }[where]
    command = {"import": "pass", "command": missing.strip(),
               "distribution": "from importlib import metadata; metadata.version('mtap-missing-dist-xyz')"}[where]
    runner.write_text("import mtap_schemas.cli as kit\n" + body + (
        "@kit.runner_group('toolless-runner', '0')\ndef main():\n    'demo'\n\n"
        f"@main.command()\ndef run():\n    {command}\n\nmain()\n"))
    r = subprocess.run([sys.executable, str(runner), "run"], capture_output=True, text=True, env=demo_env(), timeout=60)
    assert r.returncode == kinds.Exit.USER_ERROR, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is not installed" in r.stderr and "pip install ./packages/toolless-runner" in r.stderr
    assert ("mtap-missing-dist-xyz" if where == "distribution" else "mtap_missing_tool_package_xyz") in r.stderr


def test_a_finished_run_leaves_no_lock_or_progress_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert demo("run", "--output", str(out), "--cases", "2", "--jobs", "1").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["demo.tool-run.json"]


def test_a_truncated_or_corrupt_xz_is_refused_not_returned_in_part(tmp_path: Path) -> None:
    import lzma

    from mtap_schemas.paths import PathError, read_lzma_bounded

    whole = lzma.compress(b"x" * 100_000 + b"end")
    good = tmp_path / "good.xz"
    good.write_bytes(whole)
    assert read_lzma_bounded(good).endswith(b"end")
    cut = tmp_path / "cut.xz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PathError, match="truncated"):
        read_lzma_bounded(cut)
    bad = tmp_path / "bad.xz"
    bad.write_bytes(b"\xfd7zXZ\x00" + b"\x00" * 64)
    with pytest.raises(PathError, match="not a readable"):
        read_lzma_bounded(bad)
