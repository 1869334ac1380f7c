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
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from mtap_schemas import toolcache
from mtap_schemas.toolcache import (
    BuildError,
    SetupError,
    git,
    include_dirs,
    lib_dirs,
    run_logged,
)
from mtap_schemas.toolrun import utc_now

TOOL = "timeloop"
REPO_URL = "https://github.com/NVlabs/timeloop.git"
COMMIT = "6b41058f88bf6c70e04927f5907f20b8203e0498"  # tag v3.0.3
VERSION = "v3.0.3"
# Timeloop needs a power-area-timing model linked at src/pat. At v3.0.3 the public one
# (pat-public) is part of the Timeloop repository itself, so the Timeloop commit pins it too.
PAT_DIR = "pat-public/src/pat"
MAPPER = "timeloop-mapper"

VERIFY_SPEC = "eyeriss-like"
VERIFY_KEY = "resnet50.conv1.b1.int16"
VERIFY_CYCLES = 1_204_224
VERIFY_CONFIG = {"architectures": [VERIFY_SPEC], "models": ["resnet50"], "layers": ["conv1"]}


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


def present(p: Prereq) -> bool:
    if p.kind not in ("exe", "header", "lib"):
        raise ValueError(p.kind)
    return toolcache.present(p.kind, p.target, includes=include_dirs, libs=lib_dirs)


def missing_prereqs(prereqs=None) -> list[str]:
    """One line per missing prerequisite, naming the Debian package that provides it."""
    prereqs = PREREQS if prereqs is None else prereqs
    return [f"missing: {p.name} (Debian: apt-get install {p.debian})" for p in prereqs if not present(p)]


# ---------------------------------------------------------------- cache

def default_build_dir(commit: str) -> Path:
    return BUILD.build_dir(commit)


def find_cached_build(commit: str | None = None) -> Path | None:
    """A verified build under ``$MTAP_CACHE_DIR/timeloop/`` (default ``~/.cache/mtap``): the one of
    ``commit`` (default: the pinned commit), else the most recently built verified one; None if none.
    The folder holds ``bin/timeloop-mapper`` and ``lib/`` (put on LD_LIBRARY_PATH)."""
    return BUILD.find(commit)


# ---------------------------------------------------------------- git

def origin_of(repo_url: str, source: Path | None) -> str:
    if source is None:
        return repo_url
    if not (source / ".git").exists() and not (source / "HEAD").is_file():
        raise SetupError(f"--source {source}: not a git clone")
    return str(source.resolve())


# ---------------------------------------------------------------- build and verify

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
    return toolcache.verify_run(cmd, work, runner="timeloop-runner", case=f"{VERIFY_SPEC}/{VERIFY_KEY}", field="key",
                                value=VERIFY_KEY, expected=VERIFY_CYCLES, env=env)


class TimeloopBuild(toolcache.ToolBuild):
    tool = TOOL
    pinned = COMMIT
    required = (f"bin/{MAPPER}",)

    def __init__(self, repo_url: str = REPO_URL, source: Path | None = None, data_dir: Path = Path("data")):
        self.repo_url, self.source, self.data_dir = repo_url, source, data_dir

    def prepare(self, src: Path, sha: str) -> dict:
        return {"sha": sha, "described": git("describe", "--tags", "--always", cwd=src, check=False).stdout.strip() or sha[:12]}

    def build(self, src: Path, out: Path, jobs: int, log: Path, ctx: dict) -> None:
        ctx["jobs"] = jobs
        click.echo(f"building Timeloop {ctx['described']} ({ctx['sha']}) with scons -j{jobs}; log {log}")
        build(src, out, jobs, log)

    def verify(self, build_dir: Path, work: Path, ctx: dict) -> dict:
        click.echo(f"verifying on {VERIFY_SPEC} ResNet-50 conv1 (expect {VERIFY_CYCLES:,} cycles)")
        return verify(build_dir, self.data_dir, work, ctx["described"])

    def record(self, sha: str, ctx: dict, build_seconds: float, result: dict) -> dict:
        source = self.source
        return {
            "tool": TOOL,
            "version": ctx["described"],
            "commit": sha,
            "pinned_commit": COMMIT,
            "repo_url": self.repo_url if source is None else None,
            "source": str(source.resolve()) if source is not None else None,
            "pat": f"{PAT_DIR} of the same commit",
            "build": f"scons -j{ctx['jobs']} (Timeloop's SConstruct: dynamic linking, PAT model, no Accelergy, no ISL)",
            "compiler": toolcache.first_line(["g++", "--version"]),
            "platform": toolcache.first_line(["uname", "-srm"]),
            "built_at": utc_now(),
            "build_seconds": build_seconds,
            "verify": result,
            "layout": {"bin": "bin/", "lib": "lib/ (put on LD_LIBRARY_PATH)"},
        }

    def failed(self, result: dict, tmp: Path) -> str:
        return (f"verification failed: {VERIFY_KEY} on {VERIFY_SPEC} gave {result['got']} cycles, expected "
                f"{VERIFY_CYCLES} ({result.get('error', 'wrong value')}); the build is left in {tmp}, not installed")

    def done(self, sha: str, ctx: dict, build_seconds: float, result: dict, final: Path) -> str:
        return (f"Timeloop {ctx['described']} built in {build_seconds:.0f} s and verified ({result['got']:,} cycles): "
                f"{final}")


BUILD = TimeloopBuild()


# ---------------------------------------------------------------- command

@click.command("setup")
@toolcache.setup_options(
    tool=TOOL, repo_url=REPO_URL, commit=COMMIT, repo_help="Git URL of Timeloop (file:// works).",
    commit_help=f"Commit (or tag) to build; the pin is {VERSION}.",
    source_help="An offline local clone of Timeloop to build from instead of cloning --repo-url.",
    data_help="The repository's data/ folder (timeloop/ specs, hardware/), for the verification run.")
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
    toolcache.exit_if_missing(missing_prereqs())
    for need in (data_dir / "timeloop" / VERIFY_SPEC, data_dir / "hardware" / "hardware.json"):
        if not need.exists():
            raise SetupError(f"--data-dir {data_dir}: {need} not found (run from the repository root or pass --data-dir)")
    origin = origin_of(repo_url, source)
    TimeloopBuild(repo_url, source, data_dir.resolve()).run(origin=origin, commit=commit, cache_dir=cache_dir,
                                                            jobs=jobs, force=force)
