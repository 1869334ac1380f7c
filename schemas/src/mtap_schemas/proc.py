"""One way to run a tool's process: its own process group, a timeout that kills the whole
group, output captured to files and capped, and an outcome that tells exit, timeout, signal
and out-of-memory apart.

    result = run_tool(["timeloop-mapper", "arch.yaml", ...], timeout=600, cwd=tmp)
    if not result.ok:
        kind, message = result.error()      # ("timeout" | "out-of-memory" | "killed-by-signal" | "tool-crashed", "...")
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: process groups started by run_tool and still running: killed on SIGINT/SIGTERM (see execute.handle_signals)
_ACTIVE: set[int] = set()
CAP = 256 << 10


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    #: "exit" (ran to its end, any code), "timeout", "signal", "out-of-memory", "not-found"
    outcome: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome == "exit" and self.returncode == 0

    def last_line(self) -> str:
        for text in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                return lines[-1][:400]
        return ""

    def error(self, timeout: float | None = None) -> tuple[str, str]:
        """(error kind, one-line message) for a run that did not succeed."""
        name = Path(self.argv[0]).name if self.argv else "tool"
        tail = self.last_line()
        if self.outcome == "timeout":
            return "timeout", f"{name} ran past {timeout or self.seconds:g} s; its process group was killed"
        if self.outcome == "out-of-memory":
            return "out-of-memory", f"{name} was killed by the out-of-memory killer after {self.seconds:.1f} s"
        if self.outcome == "signal":
            sig = -(self.returncode or 0)
            try:
                signame = signal.Signals(sig).name
            except ValueError:
                signame = f"signal {sig}"
            return "killed-by-signal", f"{name} was killed by {signame}" + (f": {tail}" if tail else "")
        if self.outcome == "not-found":
            return "binary-missing", f"{name} could not be started: {tail}"
        return "tool-crashed", f"{name} exited {self.returncode}" + (f": {tail}" if tail else "")


def _oom_kills() -> int | None:
    """The cgroup's oom_kill counter (cgroup v2), None where it cannot be read."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


def _capped(path: Path, cap: int) -> str:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size <= cap:
            data = handle.read()
        else:
            head = handle.read(cap // 4)
            handle.seek(size - (cap - cap // 4))
            data = head + f"\n[... {size - cap} bytes left out ...]\n".encode() + handle.read()
    return data.decode("utf-8", errors="replace")


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_active() -> None:
    """Kill every process group run_tool started that is still running (signal handlers call this)."""
    for pgid in list(_ACTIVE):
        kill_group(pgid)
        _ACTIVE.discard(pgid)


def run_tool(argv: Sequence[str], *, timeout: float | None = None, cwd: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, cap: int = CAP, stdin: str | None = None) -> ToolResult:
    """Run ``argv`` in a new process group; output goes to temp files and comes back capped to
    ``cap`` bytes each (head and tail kept). On timeout the whole group is killed."""
    argv = tuple(str(a) for a in argv)
    oom_before = _oom_kills()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mtap-proc-") as tmp:
        out_path, err_path = Path(tmp, "stdout"), Path(tmp, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=cwd, env=None if env is None else dict(env), stdout=out, stderr=err,
                                        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                        start_new_session=True)
            except OSError as exc:
                return ToolResult(argv, None, "", exc.strerror or str(exc), "not-found", 0.0)
            _ACTIVE.add(proc.pid)
            outcome = "exit"
            try:
                if stdin is not None:
                    try:
                        proc.stdin.write(stdin.encode())  # type: ignore[union-attr]
                        proc.stdin.close()  # type: ignore[union-attr]
                    except BrokenPipeError:
                        pass
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                outcome = "timeout"
                kill_group(proc.pid)
                proc.wait()
            finally:
                kill_group(proc.pid)  # grandchildren the tool left behind
                _ACTIVE.discard(proc.pid)
        seconds = time.monotonic() - t0
        code = proc.returncode
        if outcome == "exit" and code is not None and code < 0:
            after = _oom_kills()
            oom = code == -signal.SIGKILL and oom_before is not None and after is not None and after > oom_before
            outcome = "out-of-memory" if oom else "signal"
        return ToolResult(argv, code, _capped(out_path, cap), _capped(err_path, cap), outcome, seconds)
