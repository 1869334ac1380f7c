"""The user cache of tools built from source by ``<runner> setup`` (ASTRA-sim, Timeloop).

Layout: ``$MTAP_CACHE_DIR/<tool>/<commit>/`` (``MTAP_CACHE_DIR`` defaulting to ``~/.cache/mtap``),
holding the build and its ``build.json``. A build is made in ``<commit>.tmp-<pid>`` beside it,
verified, recorded and only then renamed, so an interrupted or failed build never looks complete;
the temporary folders of dead processes are removed by the next setup of that commit.

:class:`ToolBuild` is the shared ``setup`` flow; a runner subclasses it with what is its own
(prepare the checkout, build, verify, the record and messages). Pure Python, click only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from glob import glob
from pathlib import Path

import click

ENV_CACHE = "MTAP_CACHE_DIR"
HEX40 = re.compile(r"^[0-9a-f]{40}$")


class SetupError(click.ClickException):
    """A user or environment error: one line, exit 2."""

    exit_code = 2


class BuildError(click.ClickException):
    """The build or its verification failed: exit 1."""

    exit_code = 1


# ---------------------------------------------------------------- prerequisites

def _env_dirs(var: str) -> list[str]:
    return [d for d in os.environ.get(var, "").split(os.pathsep) if d]


def include_dirs() -> list[str]:
    return [*_env_dirs("CPATH"), *_env_dirs("CPLUS_INCLUDE_PATH"), "/usr/local/include", "/usr/include",
            *sorted(glob("/usr/include/*-linux-gnu*"))]


def lib_dirs() -> list[str]:
    return [*_env_dirs("LIBRARY_PATH"), "/usr/local/lib", *sorted(glob("/usr/local/lib/*-linux-gnu*")),
            "/usr/lib", *sorted(glob("/usr/lib/*-linux-gnu*")), "/lib", *sorted(glob("/lib/*-linux-gnu*")),
            "/usr/lib64", "/lib64"]


def python_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def present(kind: str, target: str, *, includes: Callable[[], list[str]] = include_dirs,
            libs: Callable[[], list[str]] = lib_dirs, module: Callable[[str], bool] = python_module) -> bool:
    """Whether a prerequisite is there: ``kind`` "exe" (on PATH), "header" (under an include dir),
    "lib" (lib<target>.so/.a under a lib dir) or "python" (an importable module)."""
    if kind == "exe":
        return shutil.which(target) is not None
    if kind == "header":
        return any(Path(d, target).is_file() for d in includes())
    if kind == "lib":
        return any(Path(d, f"lib{target}{ext}").exists() for d in libs() for ext in (".so", ".a"))
    if kind == "python":
        return module(target)
    raise ValueError(kind)


def exit_if_missing(lines: list[str]) -> None:
    """Each missing prerequisite on its own line (stderr), exit 2, before any work."""
    if lines:
        for line in lines:
            click.echo(line, err=True)
        raise SystemExit(2)


# ---------------------------------------------------------------- cache

def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "mtap").expanduser()


def read_build_json(folder: Path, required: Iterable[str] = ()) -> dict | None:
    """The build record of a complete, verified build folder (every ``required`` file there), else None."""
    try:
        info = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not (info.get("verify") or {}).get("ok"):
        return None
    if not all((folder / r).is_file() for r in required):
        return None
    return info


def build_version(folders: Iterable[Path]) -> str | None:
    """``version`` of the first setup build record (``build.json``, verified or not) among ``folders``
    that has one: how a runner names a tool binary found in (or one level under) a build folder."""
    for d in folders:
        try:
            info = json.loads((d / "build.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("version"), str):
            return info["version"]
    return None


def write_build_json(folder: Path, info: dict) -> None:
    (folder / "build.json").write_text(json.dumps(info, indent=2) + "\n")


def find_cached_build(tool: str, commit: str | None, pinned: str, required: Iterable[str] = ()) -> Path | None:
    """The verified build of ``commit`` (default ``pinned``) under ``<cache>/<tool>/``, else (no
    commit asked for) the most recently built verified one; None if none."""
    required = tuple(required)
    base = cache_root() / tool
    wanted = base / (commit or pinned)
    if read_build_json(wanted, required) is not None:
        return wanted
    if commit is not None or not base.is_dir():
        return None
    found = [(d.stat().st_mtime, d) for d in base.iterdir()
             if d.is_dir() and HEX40.match(d.name) and read_build_json(d, required) is not None]
    return max(found)[1] if found else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(final: Path) -> list[Path]:
    """Remove temporary folders of earlier setups of this build that were interrupted."""
    removed = []
    for d in final.parent.glob(f"{final.name}.tmp-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def install(tmp: Path, final: Path, force: bool) -> None:
    """Rename the finished temporary folder to its final name (replacing an old build with --force)."""
    old = None
    if final.exists():
        if not force:
            raise SetupError(f"{final}: exists (pass --force to replace it)")
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- git

def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SetupError(f"git {' '.join(args)}: {msg}")
    return proc


def resolve_commit(repo: Path, commit: str) -> str | None:
    proc = git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", cwd=repo, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def checkout(origin: str, dest: Path, commit: str) -> str:
    """Clone ``origin`` into ``dest`` and check out ``commit``; the full sha."""
    git("clone", "--quiet", "--no-checkout", origin, str(dest))
    sha = resolve_commit(dest, commit)
    if sha is None:  # not reachable from the origin's branches or tags: ask for it by name
        git("fetch", "--quiet", "origin", commit, cwd=dest, check=False)
        sha = resolve_commit(dest, commit) or (resolve_commit(dest, "FETCH_HEAD") if HEX40.match(commit) else None)
    if sha is None or (HEX40.match(commit) and sha != commit):
        raise SetupError(f"--commit {commit}: not found in {origin}")
    git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha, cwd=dest)
    return sha


# ---------------------------------------------------------------- build and verify helpers

def run_logged(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> None:
    """Run ``cmd`` with its output appended to ``log``; a :class:`BuildError` with the log's tail if it fails."""
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}); full log {log}; last lines:\n" + "\n".join(tail))


def first_line(cmd: list[str]) -> str | None:
    """The first line ``cmd`` prints (a tool's version), or None."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    return (out.strip().splitlines() or [None])[0]


def verify_run(cmd: list[str], work: Path, *, runner: str, case: str, field: str, value: str, expected,
               env: dict | None = None) -> dict:
    """Run a runner's ``run`` (``cmd``, writing ``work/verify.tool-run.json``) and compare the cycles of
    the case whose ``field`` is ``value`` with ``expected``: the ``verify`` record of ``build.json``."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = round(time.monotonic() - t0, 1)
    result = {"case": case, "metric": "cycles", "expected": expected, "got": None, "ok": False, "seconds": seconds}
    try:
        doc = json.loads((work / "verify.tool-run.json").read_text())
        found = next(c for c in doc["cases"] if c.get(field) == value)
    except (OSError, ValueError, KeyError, StopIteration):
        result["error"] = f"{runner} run exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
        return result
    metrics = {m["name"]: m["value"] for m in found.get("metrics") or []}
    result["got"] = metrics.get("cycles")
    result["status"] = found.get("status")
    if found.get("status") != "ok":
        result["error"] = str(found.get("error"))[:500]
    result["ok"] = result["got"] == expected
    return result


# ---------------------------------------------------------------- the setup command

def setup_options(*, tool: str, repo_url: str, commit: str, repo_help: str, commit_help: str, source_help: str,
                  data_help: str):
    """The options every ``setup`` command has, in this order."""
    options = (
        click.option("--repo-url", default=repo_url, show_default=True, help=repo_help),
        click.option("--commit", default=commit, show_default=True, help=commit_help),
        click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None, help=source_help),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=f"Build folder.  [default: ${ENV_CACHE}/{tool}/<commit>, ${ENV_CACHE} defaulting to "
                          "~/.cache/mtap]"),
        click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
                     help="Parallel compile jobs."),
        click.option("--force", is_flag=True, help="Rebuild even if a verified build is already there."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
                     show_default=True, help=data_help),
    )

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


class ToolBuild:
    """One tool's ``setup``: :meth:`run` is the shared flow, the other methods are the tool's own."""

    tool: str  # the cache folder's name, e.g. "timeloop"
    pinned: str  # the pinned commit (full sha)
    required: tuple[str, ...] = ()  # files (relative to the build folder) a complete build has

    def build_dir(self, commit: str) -> Path:
        return cache_root() / self.tool / commit

    def read(self, folder: Path) -> dict | None:
        return read_build_json(folder, self.required)

    def find(self, commit: str | None = None) -> Path | None:
        return find_cached_build(self.tool, commit, self.pinned, self.required)

    # -- the tool's own steps
    def prepare(self, src: Path, sha: str) -> dict:
        """Get the checkout ready to build (before the temporary build folder exists); a context."""
        return {}

    def build(self, src: Path, out: Path, jobs: int, log: Path, ctx: dict) -> None:
        raise NotImplementedError

    def verify(self, build_dir: Path, work: Path, ctx: dict) -> dict:
        raise NotImplementedError

    def record(self, sha: str, ctx: dict, build_seconds: float, result: dict) -> dict:
        raise NotImplementedError

    def failed(self, result: dict, tmp: Path) -> str:
        raise NotImplementedError

    def done(self, sha: str, ctx: dict, build_seconds: float, result: dict, final: Path) -> str:
        raise NotImplementedError

    # -- the shared flow
    def _already(self, final: Path, force: bool) -> bool:
        if not force and self.read(final) is not None:
            click.echo(f"{final}: verified build already there (use --force to rebuild)")
            return True
        return False

    def run(self, *, origin: str, commit: str, cache_dir: Path | None, jobs: int, force: bool) -> None:
        """Clone, build in ``<commit>.tmp-<pid>``, verify, write ``build.json`` and rename into place."""
        if HEX40.match(commit) and self._already((cache_dir or self.build_dir(commit)).expanduser(), force):
            return
        t0 = time.monotonic()
        parent = (cache_dir.expanduser().parent if cache_dir else cache_root() / self.tool)
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="checkout-", dir=parent))
        try:
            click.echo(f"cloning {origin} at {commit}")
            src = staging / self.tool
            sha = checkout(origin, src, commit)
            final = (cache_dir or self.build_dir(sha)).expanduser()
            if self._already(final, force):
                return
            clean_stale(final)
            ctx = self.prepare(src, sha)
            tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
            tmp.mkdir(parents=True)
            self.build(src, tmp, jobs, tmp / "build.log", ctx)
            build_seconds = round(time.monotonic() - t0, 1)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        vwork = Path(tempfile.mkdtemp(prefix="verify-", dir=tmp))
        vwork.mkdir(parents=True, exist_ok=True)
        result = self.verify(tmp, vwork, ctx)
        shutil.rmtree(vwork, ignore_errors=True)
        write_build_json(tmp, self.record(sha, ctx, build_seconds, result))
        if not result["ok"]:
            raise BuildError(self.failed(result, tmp))
        install(tmp, final, force)
        click.echo(self.done(sha, ctx, build_seconds, result, final))
