"""``llmcompass-runner setup``: put the pinned LLMCompass source into the user cache and verify it.

LLMCompass is pure Python and not on PyPI. Steps (nothing of LLMCompass is kept in this repository):

1. check the prerequisites: git, and LLMCompass's Python dependencies in this Python (torch,
   numpy, pandas, scalesim: pinned in pyproject.toml) — every missing one named, exit 2;
2. clone ``--repo-url`` (or the local source ``--source`` / ``MTAP_LLMCOMPASS_SOURCE``: a git
   repository, bare or not, checked out at ``--commit``; or a plain folder, copied as it is) into a
   temporary folder beside the cache folder;
3. copy the source tree (no ``.git``) to ``<commit>.tmp-<pid>/llmcompass`` (the git submodule
   ``cost_model/supply_chain``, LLMCompass's cost model, is not fetched: the performance model
   does not import it);
4. verify it with one real prediction through ``llmcompass-runner run`` (:data:`VERIFY_KEY` on
   :data:`VERIFY_HARDWARE` must give :data:`VERIFY_LATENCY_MS`), write ``build.json`` and rename
   the folder to ``$MTAP_CACHE_DIR/llmcompass/<commit>/`` (a plain folder: the sha1 of its files,
   40 hex digits), so an interrupted or failed setup never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from mtap_schemas import toolcache
from mtap_schemas.toolcache import BuildError, SetupError
from mtap_schemas.toolrun import utc_now

from .tool import PYTHON_DEPS, REQUIRED, missing_files

TOOL = "llmcompass"
REPO_URL = "https://github.com/PrincetonUniversity/LLMCompass.git"
COMMIT = "2e015fd2ee750e6cad8d7152df52551e5b41ef20"  # master, 2025-10-24 ("Updated DDR5 cost per GB"): the committed results
ENV_SOURCE = "MTAP_LLMCOMPASS_SOURCE"
SOURCE_DIR = "llmcompass"
VERIFY_HARDWARE = "H100-SXM5-80GB"
VERIFY_KEY = "llama2-7b.decode.b1.kv512.fp16"
VERIFY_LATENCY_MS = 14.1201  # tests/fixtures/README.md: captured from a real run at COMMIT
IGNORE = shutil.ignore_patterns(".git")


def missing_prereqs() -> list[str]:
    lines = [] if shutil.which("git") else ["missing: git (Debian: apt-get install git)"]
    lines += [
        f"missing: Python package {mod} in {sys.executable} (pip install {pin})"
        for mod, pin in PYTHON_DEPS.items()
        if not toolcache.python_module(mod)
    ]
    return lines


def local_origin(repo_url: str, source: Path | None) -> tuple[Path | None, bool]:
    """(the local source, whether it is a git repository) for ``--source`` or a path/file:// ``--repo-url``."""
    if source is not None:
        path = source
    elif repo_url.startswith("file://"):
        path = Path(repo_url[len("file://") :])
    elif "://" not in repo_url and "@" not in repo_url:
        path = Path(repo_url)
    else:
        return None, False
    path = path.expanduser()
    is_git = (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
    if not is_git and not path.is_dir():
        raise SetupError(f"{'--source' if source is not None else '--repo-url'} {path}: no such folder")
    if not is_git and missing_files(path):
        raise SetupError(f"--source {path}: neither a git repository nor an LLMCompass source folder (no {missing_files(path)[0]})")
    return path.resolve(), is_git


def folder_digest(path: Path) -> str:
    """sha1 over the folder's files (path and content), 40 hex digits: the cache name of a plain-folder source."""
    h = hashlib.sha1()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        h.update(str(f.relative_to(path)).encode() + b"\0" + hashlib.sha1(f.read_bytes()).digest())
    return h.hexdigest()


def verify(build_dir: Path, data_dir: Path, work: Path) -> dict:
    """One real prediction through ``llmcompass-runner run`` with this source tree."""
    cfg = work / "verify.json"
    cfg.write_text(json.dumps({"include": [VERIFY_KEY], "hardware": [VERIFY_HARDWARE]}))
    cmd = [
        sys.executable,
        "-c",
        "import sys; from mtap_llmcompass_runner.cli import main; sys.exit(main())",
        "run",
        "--config",
        str(cfg),
        "--tool-path",
        str(build_dir / SOURCE_DIR),
        "--data-dir",
        str(data_dir),
        "--output",
        str(work),
        "--name",
        "verify",
        "--jobs",
        "1",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    result = {
        "case": f"{VERIFY_HARDWARE}:{VERIFY_KEY}",
        "metric": "latency",
        "unit": "ms",
        "expected": VERIFY_LATENCY_MS,
        "got": None,
        "ok": False,
        "seconds": round(time.monotonic() - t0, 1),
    }
    try:
        doc = json.loads((work / "verify.tool-run.json").read_text())
        case = doc["cases"][0]
    except (OSError, ValueError, KeyError, IndexError):
        result["error"] = f"llmcompass-runner run exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
        return result
    result["status"] = case["status"]
    if case["status"] != "ok":
        result["error"] = str(case.get("error"))[:500]
        return result
    result["got"] = next(m["value"] for m in case["metrics"] if m["name"] == "latency")
    result["ok"] = result["got"] == VERIFY_LATENCY_MS
    return result


class LLMCompassBuild(toolcache.ToolBuild):
    tool = TOOL
    pinned = COMMIT
    required = tuple(f"{SOURCE_DIR}/{r}" for r in REQUIRED)

    def __init__(self, repo_url: str = REPO_URL, local: Path | None = None, data_dir: Path = Path("data")):
        self.repo_url, self.local, self.data_dir = repo_url, local, data_dir

    def prepare(self, src: Path, sha: str) -> dict:
        gone = missing_files(src)
        if gone:
            raise SetupError(f"commit {sha[:12]}: not an LLMCompass tree (no {gone[0]})")
        return {"sha": sha}

    def build(self, src: Path, out: Path, jobs: int, log: Path, ctx: dict) -> None:
        click.echo(f"copying LLMCompass {ctx['sha'][:12]} (pure Python, nothing to compile)")
        shutil.copytree(src, out / SOURCE_DIR, ignore=IGNORE)
        log.write_text(f"copied {src} at {ctx['sha']} to {out / SOURCE_DIR}\n")

    def verify(self, build_dir: Path, work: Path, ctx: dict) -> dict:
        click.echo(f"verifying: {VERIFY_KEY} on {VERIFY_HARDWARE} (expect {VERIFY_LATENCY_MS} ms)")
        return verify(build_dir, self.data_dir, work)

    def record(self, sha: str, ctx: dict, build_seconds: float, result: dict) -> dict:
        folder = ctx.get("folder")
        return {
            "tool": TOOL,
            "version": f"folder:{sha}" if folder else f"git:{sha}",
            "commit": None if folder else sha,
            "pinned_commit": COMMIT,
            "repo_url": self.repo_url if self.local is None else None,
            "source": str(self.local) if self.local is not None else None,
            "source_kind": "folder" if folder else "git",
            "not_fetched": {"cost_model/supply_chain": "git submodule (ttm-cas, the cost model): not used by the performance model"},
            "python": sys.version.split()[0],
            "python_packages": {m: _dist_version(m) for m in PYTHON_DEPS},
            "built_at": utc_now(),
            "build_seconds": build_seconds,
            "verify": result,
            "layout": {SOURCE_DIR: "the LLMCompass source tree (no .git)"},
        }

    def failed(self, result: dict, tmp: Path) -> str:
        return (
            f"verification failed: {result['case']} gave {result['got']} ms, expected {VERIFY_LATENCY_MS} "
            f"({result.get('error', 'wrong value')}); the copy is left in {tmp}, not installed"
        )

    def done(self, sha: str, ctx: dict, build_seconds: float, result: dict, final: Path) -> str:
        return f"LLMCompass {sha[:12]} set up and verified ({result['got']} ms in {result['seconds']:.0f} s): {final}"

    def run_folder(self, folder: Path, cache_dir: Path | None, force: bool) -> None:
        """A plain source folder (no git): copied, verified and installed under its content digest."""
        digest = folder_digest(folder)
        final = (cache_dir or self.build_dir(digest)).expanduser()
        if self._already(final, force):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        toolcache.clean_stale(final)
        t0 = time.monotonic()
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True)
        ctx = {"sha": digest, "folder": True}
        self.build(folder, tmp, 1, tmp / "build.log", ctx)
        build_seconds = round(time.monotonic() - t0, 1)
        work = Path(tempfile.mkdtemp(prefix="verify-", dir=tmp))
        result = self.verify(tmp, work, ctx)
        shutil.rmtree(work, ignore_errors=True)
        toolcache.write_build_json(tmp, self.record(digest, ctx, build_seconds, result))
        if not result["ok"]:
            raise BuildError(self.failed(result, tmp))
        toolcache.install(tmp, final, force)
        click.echo(self.done(digest, ctx, build_seconds, result, final))


def _dist_version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


BUILD = LLMCompassBuild()


@click.command("setup")
@toolcache.setup_options(
    tool=TOOL,
    repo_url=REPO_URL,
    commit=COMMIT,
    repo_help="Git URL of LLMCompass (a path or file:// URL works too).",
    commit_help="Commit (or tag) to set up.",
    source_help=f"A local LLMCompass: a git repository (bare or not; checked out at --commit) or a plain source "
    f"folder (copied as it is). Also ${ENV_SOURCE}.",
    data_help="The repository's data/ folder (hardware/hardware.json), for the verification run.",
)
def setup_cmd(repo_url: str, commit: str, source: Path | None, cache_dir: Path | None, jobs: int, force: bool, data_dir: Path) -> None:
    """Fetch LLMCompass (pinned: 2e015fd, the source behind the committed results) into the user
    cache and verify it with one real prediction (Llama-2-7B decode, batch 1, KV 512, on the
    H100). The runner finds it by itself.

    \b
    Needs (each missing one is named, exit 2): git, and in this Python LLMCompass's dependencies
    torch, numpy, pandas and scalesim (pip install mtap-llmcompass-runner brings them; torch as
    the CPU build). Run it from the repository root (the verification reads data/)."""
    toolcache.exit_if_missing(missing_prereqs())
    need = data_dir / "hardware" / "hardware.json"
    if not need.is_file():
        raise SetupError(f"--data-dir {data_dir}: {need} not found (run from the repository root or pass --data-dir)")
    if source is None and os.environ.get(ENV_SOURCE):
        source = Path(os.environ[ENV_SOURCE])
    local, is_git = local_origin(repo_url, source)
    build = LLMCompassBuild(repo_url, local, data_dir.resolve())
    if local is not None and not is_git:
        build.run_folder(local, cache_dir, force)
        return
    origin = str(local) if local is not None else repo_url
    build.run(origin=origin, commit=commit, cache_dir=cache_dir, jobs=jobs, force=force)
