"""``timeloop-runner setup``: build the pinned Timeloop from source into a user cache and verify it.

Steps (each one ours, nothing of Timeloop's is kept in this repository):

1. check the build prerequisites (every missing one is named with the Debian package that
   provides it, one line each, exit 2, before any work);
2. clone ``--repo-url`` (or the offline clone ``--source``) into a temporary folder beside the
   cache folder and check out ``--commit``;
3. link ``src/pat`` to the in-tree ``pat-public/src/pat`` (Timeloop's built-in PAT energy model)
   and run ``scons -j N``;
4. keep only ``bin/`` and ``lib/``, verify them on the reference case (ResNet-50 conv1 on
   ``data/timeloop/eyeriss-like`` = 1,204,224 cycles, run through ``timeloop-runner run``),
   write ``build.json`` and rename the temporary folder to ``<cache>/timeloop/<commit>/``, so an
   interrupted or failed build never looks complete.

:func:`find_cached_build` returns such a verified build folder, or None.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import click

from mtap_schemas.toolrun import utc_now

TOOL = "timeloop"
REPO_URL = "https://github.com/NVlabs/timeloop.git"
COMMIT = "6b41058f88bf6c70e04927f5907f20b8203e0498"  # tag v3.0.3
VERSION = "v3.0.3"
# Timeloop needs a power-area-timing model linked at src/pat. At v3.0.3 the public one
# (pat-public) is part of the Timeloop repository itself, so the Timeloop commit pins it too.
PAT_DIR = "pat-public/src/pat"
ENV_CACHE = "MTAP_CACHE_DIR"
MAPPER = "timeloop-mapper"

VERIFY_SPEC = "eyeriss-like"
VERIFY_KEY = "resnet50.conv1.b1.int16"
VERIFY_CYCLES = 1_204_224
VERIFY_CONFIG = {"architectures": [VERIFY_SPEC], "models": ["resnet50"], "layers": ["conv1"]}

HEX40 = re.compile(r"^[0-9a-f]{40}$")


class SetupError(click.ClickException):
    """A user or environment error: one line, exit 2."""

    exit_code = 2


class BuildError(click.ClickException):
    """The build or its verification failed: exit 1."""

    exit_code = 1


# ---------------------------------------------------------------- prerequisites

@dataclass(frozen=True)
class Prereq:
    name: str  # what is missing, as the user knows it
    debian: str  # the Debian package that provides it
    kind: str  # "exe" (on PATH), "header" (under an include dir) or "lib" (lib<name>.so under a lib dir)
    target: str  # executable name, header path or library name


PREREQS = (
    Prereq("git", "git", "exe", "git"),
    Prereq("scons", "scons", "exe", "scons"),
    Prereq("g++", "g++", "exe", "g++"),
    Prereq("gcc-ar", "gcc", "exe", "gcc-ar"),
    Prereq("libconfig++ headers", "libconfig++-dev", "header", "libconfig.h++"),
    Prereq("libconfig++", "libconfig++-dev", "lib", "config++"),
    Prereq("yaml-cpp headers", "libyaml-cpp-dev", "header", "yaml-cpp/yaml.h"),
    Prereq("yaml-cpp", "libyaml-cpp-dev", "lib", "yaml-cpp"),
    Prereq("boost headers", "libboost-dev", "header", "boost/version.hpp"),
    Prereq("boost iostreams", "libboost-iostreams-dev", "lib", "boost_iostreams"),
    Prereq("boost serialization", "libboost-serialization-dev", "lib", "boost_serialization"),
    Prereq("ncurses headers", "libncurses-dev", "header", "ncurses.h"),
    Prereq("ncurses", "libncurses-dev", "lib", "ncurses"),
    Prereq("tinfo", "libncurses-dev", "lib", "tinfo"),
)


def _env_dirs(var: str) -> list[str]:
    return [d for d in os.environ.get(var, "").split(os.pathsep) if d]


def include_dirs() -> list[str]:
    return [*_env_dirs("CPATH"), *_env_dirs("CPLUS_INCLUDE_PATH"), "/usr/local/include", "/usr/include",
            *sorted(glob("/usr/include/*-linux-gnu*"))]


def lib_dirs() -> list[str]:
    return [*_env_dirs("LIBRARY_PATH"), "/usr/local/lib", *sorted(glob("/usr/local/lib/*-linux-gnu*")),
            "/usr/lib", *sorted(glob("/usr/lib/*-linux-gnu*")), "/lib", *sorted(glob("/lib/*-linux-gnu*")),
            "/usr/lib64", "/lib64"]


def present(p: Prereq) -> bool:
    if p.kind == "exe":
        return shutil.which(p.target) is not None
    if p.kind == "header":
        return any(Path(d, p.target).is_file() for d in include_dirs())
    if p.kind == "lib":
        return any(Path(d, f"lib{p.target}{ext}").exists() for d in lib_dirs() for ext in (".so", ".a"))
    raise ValueError(p.kind)


def missing_prereqs(prereqs=None) -> list[str]:
    """One line per missing prerequisite, naming the Debian package that provides it."""
    prereqs = PREREQS if prereqs is None else prereqs
    return [f"missing: {p.name} (Debian: apt-get install {p.debian})" for p in prereqs if not present(p)]


# ---------------------------------------------------------------- cache

def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "mtap").expanduser()


def default_build_dir(commit: str) -> Path:
    return cache_root() / TOOL / commit


def read_build_json(folder: Path) -> dict | None:
    """The build record of a complete, verified build folder, else None."""
    try:
        info = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not (info.get("verify") or {}).get("ok"):
        return None
    if not (folder / "bin" / MAPPER).is_file():
        return None
    return info


def find_cached_build(commit: str | None = None) -> Path | None:
    """A verified build under ``$MTAP_CACHE_DIR/timeloop/`` (default ``~/.cache/mtap``): the one of
    ``commit`` (default: the pinned commit), else the most recently built verified one; None if none.
    The folder holds ``bin/timeloop-mapper`` and ``lib/`` (put on LD_LIBRARY_PATH)."""
    base = cache_root() / TOOL
    wanted = base / (commit or COMMIT)
    if read_build_json(wanted) is not None:
        return wanted
    if commit is not None or not base.is_dir():
        return None
    found = [(d.stat().st_mtime, d) for d in base.iterdir()
             if d.is_dir() and HEX40.match(d.name) and read_build_json(d) is not None]
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


def origin_of(repo_url: str, source: Path | None) -> str:
    if source is None:
        return repo_url
    if not (source / ".git").exists() and not (source / "HEAD").is_file():
        raise SetupError(f"--source {source}: not a git clone")
    return str(source.resolve())


# ---------------------------------------------------------------- build and verify

def run_logged(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}); full log {log}; last lines:\n" + "\n".join(tail))


def build(src: Path, out: Path, jobs: int, log: Path) -> None:
    """scons build in ``src``; ``bin/`` and ``lib/`` moved to ``out``."""
    pat = src / "src" / "pat"
    if not (src / PAT_DIR).is_dir():
        raise BuildError(f"{src / PAT_DIR}: the PAT model is not in this Timeloop checkout")
    if not pat.exists():
        pat.symlink_to(Path("..") / PAT_DIR)
    run_logged(["scons", f"-j{jobs}"], cwd=src, log=log)
    for sub in ("bin", "lib"):
        if not (src / sub).is_dir():
            raise BuildError(f"{src / sub}: missing after the build (log {log})")
        shutil.copytree(src / sub, out / sub, symlinks=True)
    if not (out / "bin" / MAPPER).is_file():
        raise BuildError(f"{out / 'bin' / MAPPER}: not built (log {log})")


def verify(build_dir: Path, data_dir: Path, work: Path, version: str) -> dict:
    """Run ResNet-50 conv1 on the Eyeriss-like spec through ``timeloop-runner run`` with this build."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "verify.json"
    cfg.write_text(json.dumps(VERIFY_CONFIG))
    cmd = [sys.executable, "-c", "import sys; from mtap_timeloop_runner.cli import main; sys.exit(main())",
           "run", "--config", str(cfg), "--tool-path", str(build_dir), "--data-dir", str(data_dir),
           "--output", str(work), "--name", "verify", "--no-save-maps"]
    env = {**os.environ, "MTAP_TIMELOOP_VERSION": version}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = round(time.monotonic() - t0, 1)
    result = {"case": f"{VERIFY_SPEC}/{VERIFY_KEY}", "metric": "cycles", "expected": VERIFY_CYCLES, "got": None,
              "ok": False, "seconds": seconds}
    try:
        doc = json.loads((work / "verify.tool-run.json").read_text())
        case = next(c for c in doc["cases"] if c.get("key") == VERIFY_KEY)
    except (OSError, ValueError, KeyError, StopIteration):
        result["error"] = f"timeloop-runner run exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
        return result
    metrics = {m["name"]: m["value"] for m in case.get("metrics") or []}
    result["got"] = metrics.get("cycles")
    result["status"] = case.get("status")
    if case.get("status") != "ok":
        result["error"] = str(case.get("error"))[:500]
    result["ok"] = result["got"] == VERIFY_CYCLES
    return result


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    return (out.strip().splitlines() or [None])[0]


# ---------------------------------------------------------------- command

@click.command("setup")
@click.option("--repo-url", default=REPO_URL, show_default=True, help="Git URL of Timeloop (file:// works).")
@click.option("--commit", default=COMMIT, show_default=True, help=f"Commit (or tag) to build; the pin is {VERSION}.")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="An offline local clone of Timeloop to build from instead of cloning --repo-url.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Build folder.  [default: ${ENV_CACHE}/timeloop/<commit>, ${ENV_CACHE} defaulting to ~/.cache/mtap]")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Parallel compile jobs.")
@click.option("--force", is_flag=True, help="Rebuild even if a verified build is already there.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="The repository's data/ folder (timeloop/ specs, hardware/), for the verification run.")
def setup_cmd(repo_url: str, commit: str, source: Path | None, cache_dir: Path | None, jobs: int, force: bool,
              data_dir: Path) -> None:
    """Build Timeloop (pinned: v3.0.3 with its in-tree PAT model) into the user cache and verify it on
    ResNet-50 conv1 (Eyeriss-like spec, 1,204,224 cycles). The runner finds the build by itself.

    \b
    Needs (each missing one is named, exit 2): git, scons, g++ and the libconfig++, yaml-cpp,
    boost (iostreams, serialization) and ncurses development files (Debian: git scons g++
    libconfig++-dev libyaml-cpp-dev libboost-dev libboost-iostreams-dev
    libboost-serialization-dev libncurses-dev). Run it from the repository root (the
    verification reads data/)."""
    missing = missing_prereqs()
    if missing:
        for line in missing:
            click.echo(line, err=True)
        raise SystemExit(2)
    for need in (data_dir / "timeloop" / VERIFY_SPEC, data_dir / "hardware" / "hardware.json"):
        if not need.exists():
            raise SetupError(f"--data-dir {data_dir}: {need} not found (run from the repository root or pass --data-dir)")
    origin = origin_of(repo_url, source)
    data_dir = data_dir.resolve()

    if HEX40.match(commit):
        final = (cache_dir or default_build_dir(commit)).expanduser()
        if not force and read_build_json(final) is not None:
            click.echo(f"{final}: verified build already there (use --force to rebuild)")
            return
    t0 = time.monotonic()
    parent = (cache_dir.expanduser().parent if cache_dir else cache_root() / TOOL)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="checkout-", dir=parent))
    try:
        click.echo(f"cloning {origin} at {commit}")
        src = staging / "timeloop"
        sha = checkout(origin, src, commit)
        final = (cache_dir or default_build_dir(sha)).expanduser()
        if not force and read_build_json(final) is not None:
            click.echo(f"{final}: verified build already there (use --force to rebuild)")
            return
        clean_stale(final)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True)
        described = git("describe", "--tags", "--always", cwd=src, check=False).stdout.strip() or sha[:12]
        log = tmp / "build.log"
        click.echo(f"building Timeloop {described} ({sha}) with scons -j{jobs}; log {log}")
        build(src, tmp, jobs, log)
        build_seconds = round(time.monotonic() - t0, 1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    click.echo(f"verifying on {VERIFY_SPEC} ResNet-50 conv1 (expect {VERIFY_CYCLES:,} cycles)")
    vwork = Path(tempfile.mkdtemp(prefix="verify-", dir=tmp))
    result = verify(tmp, data_dir, vwork, described)
    shutil.rmtree(vwork, ignore_errors=True)
    info = {
        "tool": TOOL,
        "version": described,
        "commit": sha,
        "pinned_commit": COMMIT,
        "repo_url": repo_url if source is None else None,
        "source": str(source.resolve()) if source is not None else None,
        "pat": f"{PAT_DIR} of the same commit",
        "build": f"scons -j{jobs} (Timeloop's SConstruct: dynamic linking, PAT model, no Accelergy, no ISL)",
        "compiler": _first_line(["g++", "--version"]),
        "platform": _first_line(["uname", "-srm"]),
        "built_at": utc_now(),
        "build_seconds": build_seconds,
        "verify": result,
        "layout": {"bin": "bin/", "lib": "lib/ (put on LD_LIBRARY_PATH)"},
    }
    (tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    if not result["ok"]:
        raise BuildError(f"verification failed: {VERIFY_KEY} on {VERIFY_SPEC} gave {result['got']} cycles, expected "
                         f"{VERIFY_CYCLES} ({result.get('error', 'wrong value')}); the build is left in {tmp}, "
                         "not installed")
    install(tmp, final, force)
    click.echo(f"Timeloop {described} built in {build_seconds:.0f} s and verified ({result['got']:,} cycles): {final}")
