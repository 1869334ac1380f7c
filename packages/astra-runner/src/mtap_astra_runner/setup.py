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

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from glob import glob
from pathlib import Path

import click

TOOL = "astra-sim"
REPO_URL = "https://github.com/astra-sim/astra-sim.git"
COMMIT = "518bd513ae110428cd62eb60efc0f3993fd53c70"  # the build behind the committed results
ENV_CACHE = "MTAP_CACHE_DIR"
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

HEX40 = re.compile(r"^[0-9a-f]{40}$")


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


def _env_dirs(var: str) -> list[str]:
    return [d for d in os.environ.get(var, "").split(os.pathsep) if d]


def include_dirs() -> list[str]:
    return [*_env_dirs("CPATH"), *_env_dirs("CPLUS_INCLUDE_PATH"), "/usr/local/include", "/usr/include",
            *sorted(glob("/usr/include/*-linux-gnu*"))]


def lib_dirs() -> list[str]:
    return [*_env_dirs("LIBRARY_PATH"), "/usr/local/lib", *sorted(glob("/usr/local/lib/*-linux-gnu*")),
            "/usr/lib", *sorted(glob("/usr/lib/*-linux-gnu*")), "/lib", *sorted(glob("/lib/*-linux-gnu*")),
            "/usr/lib64", "/lib64"]


def _python_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def present(p: Prereq) -> bool:
    if p.kind == "exe":
        return shutil.which(p.target) is not None
    if p.kind == "header":
        return any(Path(d, p.target).is_file() for d in include_dirs())
    if p.kind == "lib":
        return any(Path(d, f"lib{p.target}{ext}").exists() for d in lib_dirs() for ext in (".so", ".a"))
    if p.kind == "python":
        return _python_module(p.target)
    raise ValueError(p.kind)


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
    if not all((folder / "bin" / b).is_file() for b in BINARIES):
        return None
    return info


def find_cached_build(commit: str | None = None) -> Path | None:
    """A verified build under ``$MTAP_CACHE_DIR/astra-sim/`` (default ``~/.cache/mtap``): the one of
    ``commit`` (default: the pinned commit), else the most recently built verified one; None if none.
    The folder holds ``bin/AstraSim_Analytical_Congestion_{Aware,Unaware}`` and ``build.json``."""
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

def run_logged(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}); full log {log}; last lines:\n" + "\n".join(tail))


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
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = round(time.monotonic() - t0, 1)
    result = {"case": VERIFY_CASE, "metric": "cycles", "expected": VERIFY_CYCLES, "got": None, "ok": False,
              "seconds": seconds}
    try:
        doc = json.loads((work / "verify.tool-run.json").read_text())
        case = next(c for c in doc["cases"] if c.get("id") == VERIFY_CASE)
    except (OSError, ValueError, KeyError, StopIteration):
        result["error"] = f"astra-runner run exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
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
@click.option("--repo-url", default=REPO_URL, show_default=True,
              help="Git URL of ASTRA-sim; a file:// URL or path takes the submodules from that clone too.")
@click.option("--commit", default=COMMIT, show_default=True, help="Commit (or tag) to build.")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="An offline local clone of ASTRA-sim, submodules checked out, to build from instead of cloning.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Build folder.  [default: ${ENV_CACHE}/astra-sim/<commit>, ${ENV_CACHE} defaulting to ~/.cache/mtap]")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Parallel compile jobs.")
@click.option("--force", is_flag=True, help="Rebuild even if a verified build is already there.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="The repository's data/ folder (hardware/hardware.json), for the verification run.")
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
    missing = missing_prereqs()
    if missing:
        for line in missing:
            click.echo(line, err=True)
        raise SystemExit(2)
    need = data_dir / "hardware" / "hardware.json"
    if not need.is_file():
        raise SetupError(f"--data-dir {data_dir}: {need} not found (run from the repository root or pass --data-dir)")
    local = local_origin(repo_url, source)
    origin = str(local) if local is not None else repo_url
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
        src = staging / "astra-sim"
        sha = checkout(origin, src, commit)
        final = (cache_dir or default_build_dir(sha)).expanduser()
        if not force and read_build_json(final) is not None:
            click.echo(f"{final}: verified build already there (use --force to rebuild)")
            return
        clean_stale(final)
        submodules = get_submodules(src, local)
        applied = apply_patches(src)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True)
        log = tmp / "build.log"
        click.echo(f"building ASTRA-sim {sha[:12]} (analytical backend) with cmake -j {jobs}; "
                   f"changes: {', '.join(applied) or 'none'}; log {log}")
        build(src, tmp, jobs, log)
        build_seconds = round(time.monotonic() - t0, 1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    click.echo(f"verifying on ASTRA-sim's HGX-H100 example (expect {VERIFY_CYCLES} cycles)")
    vwork = Path(tempfile.mkdtemp(prefix="verify-", dir=tmp))
    result = verify(tmp, data_dir, vwork)
    shutil.rmtree(vwork, ignore_errors=True)
    info = {
        "tool": TOOL,
        # "-dirty" (the runner's convention for modified tracked files) when the built source is not
        # exactly the pinned tree: a source change applied or a submodule other than its pin
        "version": f"git:{sha}" + ("-dirty" if applied or not all(r["matches_pin"] for r in submodules.values()) else ""),
        "commit": sha,
        "pinned_commit": COMMIT,
        "repo_url": repo_url if local is None else None,
        "source": str(local) if local is not None else None,
        "submodules": submodules,
        "patches": {p.name: {"file": p.path, "why": p.why} for p in PATCHES if p.name in applied},
        "build": f"protoc et_def.proto; cmake -DBUILDTARGET=all -DCMAKE_BUILD_TYPE=Release; cmake --build -j {jobs}",
        "compiler": _first_line(["g++", "--version"]),
        "cmake": _first_line(["cmake", "--version"]),
        "protoc": _first_line(["protoc", "--version"]),
        "platform": _first_line(["uname", "-srm"]),
        "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": build_seconds,
        "verify": result,
        "layout": {"bin": "bin/ (" + ", ".join(BINARIES) + ")"},
    }
    (tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    if not result["ok"]:
        raise BuildError(f"verification failed: {VERIFY_CASE} gave {result['got']} cycles, expected {VERIFY_CYCLES} "
                         f"({result.get('error', 'wrong value')}); the build is left in {tmp}, not installed")
    install(tmp, final, force)
    click.echo(f"ASTRA-sim {sha[:12]} built in {build_seconds:.0f} s and verified ({result['got']} cycles): {final}")
