"""``astra-runner setup``: build the pinned ASTRA-sim analytical backend from source into a user
cache and verify it.

Steps (each one ours, nothing of ASTRA-sim's is kept in this repository):

1. check the build prerequisites (every missing one is named with the package that provides it,
   one line each, exit 2, before any work);
2. clone ``--repo-url`` (or the offline clone ``--source``) into a temporary folder beside the
   cache folder, check out ``--commit`` and get the submodules the analytical backend needs
   (from their pinned URLs, or, for a local origin, the origin's own submodule checkouts);
3. apply the offline-build changes in :data:`PATCHES` (each only where its pattern is found),
   compile Chakra's ``et_def.proto`` with ``protoc`` and build with CMake
   (``-DBUILDTARGET=all -DCMAKE_BUILD_TYPE=Release``, as ``build/astra_analytical/build.sh``);
4. keep only ``bin/`` (the two binaries), verify them on ASTRA-sim's HGX-H100 example (all-reduce,
   8 NPUs, 1 MiB = 57426 cycles, run through ``astra-runner run``), write ``build.json`` and rename
   the temporary folder to ``<cache>/astra-sim/<commit>/``, so an interrupted or failed build never
   looks complete.

:func:`find_cached_build` returns such a verified build folder, or None.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
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
from mtap_schemas.toolcache import python_module as _python_module
from mtap_schemas.toolrun import utc_now

TOOL = "astra-sim"
REPO_URL = "https://github.com/astra-sim/astra-sim.git"
COMMIT = "518bd513ae110428cd62eb60efc0f3993fd53c70"  # the build behind the committed results
BINARIES = ("AstraSim_Analytical_Congestion_Aware", "AstraSim_Analytical_Congestion_Unaware")
# The submodules the analytical backend compiles (ns-3 and csg-htsim are other backends).
SUBMODULES = (
    "extern/graph_frontend/chakra",
    "extern/network_backend/analytical",
    "extern/remote_memory_backend/analytical",
    "extern/helper/fmt",
    "extern/helper/spdlog",
)
CMAKE_MIN = (3, 22)

VERIFY_CONFIG = {"studies": ["reference"]}
VERIFY_CASE = "reference/hgx-h100-validated/all-reduce.n8.1mib/congestion-aware"
VERIFY_CYCLES = 57426


@dataclass(frozen=True)
class Patch:
    """A textual change to one source file, applied where ``pattern`` matches (else skipped)."""

    name: str
    path: str
    pattern: str  # regular expression (re.S)
    replacement: str
    why: str


PATCHES = (
    Patch("yaml-cpp-from-system", "CMakeLists.txt",
          r"FetchContent_Declare\(\s*yaml-cpp\b.*?\)\s*FetchContent_MakeAvailable\(\s*yaml-cpp\s*\)",
          "find_package(yaml-cpp REQUIRED)",
          "yaml-cpp from the system (libyaml-cpp-dev) instead of FetchContent from GitHub: builds offline"),
    Patch("analytical-yaml-cpp-from-system", "extern/network_backend/analytical/CMakeLists.txt",
          r"add_subdirectory\(\s*\$\{CMAKE_CURRENT_SOURCE_DIR\}/extern/yaml-cpp\s+yaml-cpp\s*\)",
          "find_package(yaml-cpp REQUIRED)",
          "the network backend's yaml-cpp from the system instead of its yaml-cpp submodule"),
    Patch("chakra-etfeeder-alias", "extern/graph_frontend/chakra/src/feeder_v3/et_feeder.h",
          r"using ETFeeder = FeederV3::ETFeeder;\s*\}([ \t]*)// namespace FeederV3",
          r"}\1// namespace FeederV3\nusing ETFeeder = FeederV3::ETFeeder;",
          "Chakra::ETFeeder (used by astra-sim) declared in namespace Chakra where a newer chakra has it "
          "inside Chakra::FeederV3"),
)


# ---------------------------------------------------------------- prerequisites

@dataclass(frozen=True)
class Prereq:
    name: str  # what is missing, as the user knows it
    install: str  # how to get it
    kind: str  # "exe", "header", "lib" (lib<target>.so/.a) or "python" (importable module)
    target: str


PREREQS = (
    Prereq("git", "Debian: apt-get install git", "exe", "git"),
    Prereq("cmake", "Debian: apt-get install cmake", "exe", "cmake"),
    Prereq("make", "Debian: apt-get install make", "exe", "make"),
    Prereq("g++", "Debian: apt-get install g++", "exe", "g++"),
    Prereq("protoc", "Debian: apt-get install protobuf-compiler", "exe", "protoc"),
    Prereq("protobuf headers", "Debian: apt-get install libprotobuf-dev", "header", "google/protobuf/message.h"),
    Prereq("protobuf", "Debian: apt-get install libprotobuf-dev", "lib", "protobuf"),
    Prereq("yaml-cpp headers", "Debian: apt-get install libyaml-cpp-dev", "header", "yaml-cpp/yaml.h"),
    Prereq("yaml-cpp", "Debian: apt-get install libyaml-cpp-dev", "lib", "yaml-cpp"),
    Prereq("mlc-chakra (to verify the build)", "PyPI: pip install --no-deps mlc-chakra==1.0.0 && pip install protobuf",
           "python", "chakra.schema.protobuf.et_def_pb2"),
)


def present(p: Prereq) -> bool:
    return toolcache.present(p.kind, p.target, includes=include_dirs, libs=lib_dirs, module=_python_module)


def cmake_version() -> tuple[int, ...] | None:
    try:
        out = subprocess.run(["cmake", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    m = re.search(r"cmake version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def missing_prereqs(prereqs=None) -> list[str]:
    """One line per missing prerequisite, naming the package that provides it."""
    prereqs = PREREQS if prereqs is None else prereqs
    lines = [f"missing: {p.name} ({p.install})" for p in prereqs if not present(p)]
    if any(p.target == "cmake" for p in prereqs) and shutil.which("cmake"):
        v = cmake_version()
        if v is not None and v < CMAKE_MIN:
            lines.append(f"missing: cmake >= {'.'.join(map(str, CMAKE_MIN))} (found {'.'.join(map(str, v))}; "
                         "Debian 12: apt-get install cmake, or pip install cmake)")
    return lines


# ---------------------------------------------------------------- cache

def default_build_dir(commit: str) -> Path:
    return BUILD.build_dir(commit)


def find_cached_build(commit: str | None = None) -> Path | None:
    """A verified build under ``$MTAP_CACHE_DIR/astra-sim/`` (default ``~/.cache/mtap``): the one of
    ``commit`` (default: the pinned commit), else the most recently built verified one; None if none.
    The folder holds ``bin/AstraSim_Analytical_Congestion_{Aware,Unaware}`` and ``build.json``."""
    return BUILD.find(commit)


# ---------------------------------------------------------------- git

def local_origin(repo_url: str, source: Path | None) -> Path | None:
    """The local clone the source comes from (``--source``, a ``file://`` URL or a path), else None."""
    if source is not None:
        path = source
    elif repo_url.startswith("file://"):
        path = Path(repo_url[len("file://"):])
    elif "://" not in repo_url and not re.match(r"^[\w.-]+@[\w.-]+:", repo_url):
        path = Path(repo_url)
    else:
        return None
    path = path.expanduser()
    if not (path / ".git").exists() and not (path / "HEAD").is_file():
        raise SetupError(f"{'--source' if source is not None else '--repo-url'} {path}: not a git clone")
    return path.resolve()


def pinned_submodules(src: Path) -> dict[str, str]:
    """Submodule path -> the commit the checked-out superproject pins."""
    out = git("ls-tree", "-r", "HEAD", cwd=src).stdout
    pins = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "commit":
            pins[path] = parts[2]
    return pins


def get_submodules(src: Path, local: Path | None) -> dict[str, dict]:
    """Populate :data:`SUBMODULES` in ``src``: from ``local``'s own submodule checkouts when the
    origin is a local clone (used as checked out there, which may differ from the pin: recorded),
    else ``git submodule update --init`` from their pinned URLs. Returns path -> record."""
    pins = pinned_submodules(src)
    records = {}
    for path in SUBMODULES:
        pin = pins.get(path)
        if pin is None:
            raise SetupError(f"{path}: not a submodule at this commit")
        if local is None:
            git("submodule", "update", "--init", "--recursive", "--", path, cwd=src)
            records[path] = {"pinned": pin, "used": pin, "matches_pin": True, "from": "submodule url"}
            continue
        there = local / path
        if not (there / ".git").exists():
            raise SetupError(f"{there}: submodule not checked out in the local clone "
                             f"(run: git -C {local} submodule update --init {path})")
        used = git("rev-parse", "HEAD", cwd=there).stdout.strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", cwd=there, check=False).stdout.strip())
        dest = src / path
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(there, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        records[path] = {"pinned": pin, "used": used, "matches_pin": used == pin, "dirty": dirty, "from": str(there)}
        if used != pin:
            click.echo(f"note: {path}: the pinned {pin[:12]} is not what {there} has checked out; "
                       f"building its {used[:12]} (recorded in build.json)", err=True)
    return records


def apply_patches(src: Path, patches=PATCHES) -> list[str]:
    """Apply each patch whose pattern matches; the names of those applied."""
    applied = []
    for p in patches:
        f = src / p.path
        if not f.is_file():
            continue
        text = f.read_text()
        new, n = re.subn(p.pattern, p.replacement, text, count=1, flags=re.S)
        if n:
            f.write_text(new)
            applied.append(p.name)
    return applied


# ---------------------------------------------------------------- build and verify

def build(src: Path, out: Path, jobs: int, log: Path) -> None:
    """protoc + CMake build of the analytical backend in ``src``; the binaries copied to ``out/bin``."""
    proto = src / "extern/graph_frontend/chakra/schema/protobuf"
    run_logged(["protoc", "et_def.proto", f"--proto_path={proto}", f"--cpp_out={proto}"], cwd=src, log=log)
    bdir = src / "build/astra_analytical/build"
    bdir.mkdir(parents=True, exist_ok=True)
    run_logged(["cmake", "..", "-DBUILDTARGET=all", "-DCMAKE_BUILD_TYPE=Release"], cwd=bdir, log=log)
    run_logged(["cmake", "--build", ".", "-j", str(jobs)], cwd=bdir, log=log)
    (out / "bin").mkdir(parents=True, exist_ok=True)
    for b in BINARIES:
        built = bdir / "bin" / b
        if not built.is_file():
            raise BuildError(f"{built}: not built (log {log})")
        shutil.copy2(built, out / "bin" / b)


def verify(build_dir: Path, data_dir: Path, work: Path) -> dict:
    """Run ASTRA-sim's HGX-H100 example through ``astra-runner run`` with this build."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "verify.json"
    cfg.write_text(json.dumps(VERIFY_CONFIG))
    cmd = [sys.executable, "-c", "import sys; from mtap_astra_runner.cli import main; sys.exit(main())",
           "run", "--config", str(cfg), "--tool-path", str(build_dir / "bin"), "--data-dir", str(data_dir),
           "--output", str(work), "--name", "verify"]
    return toolcache.verify_run(cmd, work, runner="astra-runner", case=VERIFY_CASE, field="id", value=VERIFY_CASE,
                                expected=VERIFY_CYCLES)


class AstraBuild(toolcache.ToolBuild):
    tool = TOOL
    pinned = COMMIT
    required = tuple(f"bin/{b}" for b in BINARIES)

    def __init__(self, repo_url: str = REPO_URL, local: Path | None = None, data_dir: Path = Path("data")):
        self.repo_url, self.local, self.data_dir = repo_url, local, data_dir

    def prepare(self, src: Path, sha: str) -> dict:
        return {"sha": sha, "submodules": get_submodules(src, self.local), "applied": apply_patches(src)}

    def build(self, src: Path, out: Path, jobs: int, log: Path, ctx: dict) -> None:
        ctx["jobs"] = jobs
        click.echo(f"building ASTRA-sim {ctx['sha'][:12]} (analytical backend) with cmake -j {jobs}; "
                   f"changes: {', '.join(ctx['applied']) or 'none'}; log {log}")
        build(src, out, jobs, log)

    def verify(self, build_dir: Path, work: Path, ctx: dict) -> dict:
        click.echo(f"verifying on ASTRA-sim's HGX-H100 example (expect {VERIFY_CYCLES} cycles)")
        return verify(build_dir, self.data_dir, work)

    def record(self, sha: str, ctx: dict, build_seconds: float, result: dict) -> dict:
        local, applied, submodules = self.local, ctx["applied"], ctx["submodules"]
        return {
            "tool": TOOL,
            # "-dirty" (the runner's convention for modified tracked files) when the built source is not
            # exactly the pinned tree: a source change applied or a submodule other than its pin
            "version": f"git:{sha}" + ("-dirty" if applied or not all(r["matches_pin"] for r in submodules.values())
                                       else ""),
            "commit": sha,
            "pinned_commit": COMMIT,
            "repo_url": self.repo_url if local is None else None,
            "source": str(local) if local is not None else None,
            "submodules": submodules,
            "patches": {p.name: {"file": p.path, "why": p.why} for p in PATCHES if p.name in applied},
            "build": f"protoc et_def.proto; cmake -DBUILDTARGET=all -DCMAKE_BUILD_TYPE=Release; "
                     f"cmake --build -j {ctx['jobs']}",
            "compiler": toolcache.first_line(["g++", "--version"]),
            "cmake": toolcache.first_line(["cmake", "--version"]),
            "protoc": toolcache.first_line(["protoc", "--version"]),
            "platform": toolcache.first_line(["uname", "-srm"]),
            "built_at": utc_now(),
            "build_seconds": build_seconds,
            "verify": result,
            "layout": {"bin": "bin/ (" + ", ".join(BINARIES) + ")"},
        }

    def failed(self, result: dict, tmp: Path) -> str:
        return (f"verification failed: {VERIFY_CASE} gave {result['got']} cycles, expected {VERIFY_CYCLES} "
                f"({result.get('error', 'wrong value')}); the build is left in {tmp}, not installed")

    def done(self, sha: str, ctx: dict, build_seconds: float, result: dict, final: Path) -> str:
        return f"ASTRA-sim {sha[:12]} built in {build_seconds:.0f} s and verified ({result['got']} cycles): {final}"


BUILD = AstraBuild()


# ---------------------------------------------------------------- command

@click.command("setup")
@toolcache.setup_options(
    tool=TOOL, repo_url=REPO_URL, commit=COMMIT,
    repo_help="Git URL of ASTRA-sim; a file:// URL or path takes the submodules from that clone too.",
    commit_help="Commit (or tag) to build.",
    source_help="An offline local clone of ASTRA-sim, submodules checked out, to build from instead of cloning.",
    data_help="The repository's data/ folder (hardware/hardware.json), for the verification run.")
def setup_cmd(repo_url: str, commit: str, source: Path | None, cache_dir: Path | None, jobs: int, force: bool,
              data_dir: Path) -> None:
    """Build ASTRA-sim's analytical backend (pinned: 518bd51, the build behind the committed results)
    into the user cache and verify it on ASTRA-sim's HGX-H100 example (all-reduce, 8 NPUs, 1 MiB:
    57426 cycles). The runner finds the build by itself.

    \b
    Needs (each missing one is named, exit 2): git, cmake >= 3.22, make, g++, protoc and the
    protobuf and yaml-cpp headers (Debian: git cmake make g++ protobuf-compiler libprotobuf-dev
    libyaml-cpp-dev), and mlc-chakra in this Python (pip install --no-deps mlc-chakra==1.0.0)
    for the verification run. Run it from the repository root (the verification reads data/)."""
    toolcache.exit_if_missing(missing_prereqs())
    need = data_dir / "hardware" / "hardware.json"
    if not need.is_file():
        raise SetupError(f"--data-dir {data_dir}: {need} not found (run from the repository root or pass --data-dir)")
    local = local_origin(repo_url, source)
    origin = str(local) if local is not None else repo_url
    AstraBuild(repo_url, local, data_dir.resolve()).run(origin=origin, commit=commit, cache_dir=cache_dir, jobs=jobs,
                                                        force=force)
