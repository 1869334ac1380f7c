"""Where ASTRA-sim comes from and how it is run: a native binary, or a Docker image.

ASTRA-sim 2.0 is C++ and on no package registry; the user builds it
(https://github.com/astra-sim/astra-sim, ``build/astra_analytical/build.sh``) and tells the
runner where the analytical backend binaries are:

- ``--tool-path PATH`` (alias ``--binary``; env ``ASTRA_SIM_BIN``, then ``MTAP_ASTRA_SIM_PATH``):
  a binary (``AstraSim_Analytical_Congestion_Aware`` or ``..._Congestion_Unaware``; the other
  one is looked up beside it), a folder holding them, or an ASTRA-sim checkout (its
  ``build/astra_analytical/build/bin``). Cases of a binary that is not found are ``unavailable``.
- ``--image NAME``: the same binaries inside a Docker image, through the ``docker`` Python SDK;
  ``--tool-path`` then names their folder inside the image (default
  ``/app/astra-sim/build/astra_analytical/build/bin``: ASTRA-sim's own Dockerfile works in
  /app/astra-sim).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

BINARY_NAMES = {
    "congestion-aware": "AstraSim_Analytical_Congestion_Aware",
    "congestion-unaware": "AstraSim_Analytical_Congestion_Unaware",
}
ENV_VARS = ("ASTRA_SIM_BIN", "MTAP_ASTRA_SIM_PATH")
IMAGE_BIN_DIR = "/app/astra-sim/build/astra_analytical/build/bin"
CHECKOUT_BIN = Path("build/astra_analytical/build/bin")

HOW_TO = (
    "give the ASTRA-sim 2.0 analytical backend with --tool-path/--binary PATH (a binary "
    "AstraSim_Analytical_Congestion_Aware or _Congestion_Unaware, their folder, or an astra-sim "
    "checkout built with build/astra_analytical/build.sh; or set ASTRA_SIM_BIN), or --image NAME "
    "for a Docker image holding them (https://github.com/astra-sim/astra-sim)"
)


class Unavailable(Exception):
    """The tool (or one binary of it) cannot be used here: (kind, message)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class RunResult:
    returncode: int | None  #: None: timed out
    output: str  #: stdout and stderr, interleaved


@dataclass
class Tool:
    backend: str  #: native | docker
    location: str | None
    binaries: dict[str, str] = field(default_factory=dict)  #: kind -> path (native) or path in the image
    missing: dict[str, Unavailable] = field(default_factory=dict)
    version: str | None = None
    packages: dict[str, str] = field(default_factory=dict)

    def check(self, binary: str) -> None:
        if binary in self.missing:
            raise self.missing[binary]

    def run(self, binary: str, workdir: Path, args: list[str], timeout: float) -> RunResult:  # pragma: no cover - abstract
        raise NotImplementedError


class NoTool(Tool):
    def __init__(self) -> None:
        super().__init__("native", None)
        self.missing = {b: Unavailable("binary-missing", f"ASTRA-sim not given: {HOW_TO}") for b in BINARY_NAMES}


class NativeTool(Tool):
    def run(self, binary: str, workdir: Path, args: list[str], timeout: float) -> RunResult:
        self.check(binary)
        try:
            proc = subprocess.run(
                [self.binaries[binary], *args],
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode("utf-8", "replace") if exc.stdout else ""
            return RunResult(None, out)
        except OSError as exc:  # not executable, wrong architecture, ...
            return RunResult(127, f"could not start {self.binaries[binary]}: {exc}")
        return RunResult(proc.returncode, proc.stdout.decode("utf-8", "replace"))


class DockerTool(Tool):
    client = None
    image = ""

    def run(self, binary: str, workdir: Path, args: list[str], timeout: float) -> RunResult:
        self.check(binary)
        from docker.errors import APIError
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        mount = "/mtap"
        try:
            container = self.client.containers.run(
                self.image,
                [self.binaries[binary], *[a.replace(str(workdir), mount) for a in args]],
                volumes={str(workdir): {"bind": mount, "mode": "rw"}},
                working_dir=mount,
                detach=True,
            )
        except APIError as exc:  # e.g. the binary is not at that path in the image
            return RunResult(127, f"could not start {self.binaries[binary]} in image {self.image}: {exc}")
        try:
            try:
                status = container.wait(timeout=timeout)
            except (ReadTimeout, RequestsConnectionError):
                container.kill()
                return RunResult(None, container.logs(stdout=True, stderr=True).decode("utf-8", "replace"))
            return RunResult(int(status.get("StatusCode", 1)), container.logs(stdout=True, stderr=True).decode("utf-8", "replace"))
        finally:
            try:
                container.remove(force=True)
            except Exception:
                pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_version(start: Path) -> str | None:
    """``<commit>`` (plus ``-dirty``) of the git checkout holding ``start``, when there is one."""
    git = shutil.which("git")
    if git is None:
        return None
    for d in [start, *start.parents]:
        if (d / ".git").exists():
            try:
                sha = subprocess.run([git, "-C", str(d), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
                if sha.returncode != 0:
                    return None
                dirty = subprocess.run(
                    [git, "-C", str(d), "status", "--porcelain", "--untracked-files=no", "--ignore-submodules=all"],
                    capture_output=True, text=True, timeout=30,
                )
                return f"git:{sha.stdout.strip()}" + ("-dirty" if dirty.stdout.strip() else "")
            except (OSError, subprocess.SubprocessError):
                return None
    return None


def _kind_of(name: str) -> str:
    return "congestion-unaware" if name.endswith("Unaware") else "congestion-aware"


def native_tool(path: str) -> Tool:
    """Resolve a user-given path. Raises FileNotFoundError when the path does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(path)
    p = p.resolve()
    found: dict[str, Path] = {}
    if p.is_file():
        found[_kind_of(p.name)] = p
        folders = [p.parent]
    else:
        folders = [p, p / "bin", p / CHECKOUT_BIN]
    for kind, name in BINARY_NAMES.items():
        if kind in found:
            continue
        for folder in folders:
            cand = folder / name
            if cand.is_file():
                found[kind] = cand
                break
    tool = NativeTool("native", str(p))
    for kind, name in BINARY_NAMES.items():
        if kind not in found:
            where = ", ".join(str(f) for f in folders)
            tool.missing[kind] = Unavailable("binary-missing", f"{name} not found in {where}: {HOW_TO}")
        elif not os.access(found[kind], os.X_OK):
            tool.missing[kind] = Unavailable("binary-missing", f"{found[kind]} is not executable")
        else:
            tool.binaries[kind] = str(found[kind])
            tool.packages[f"astra-sim:{BINARY_NAMES[kind]}:sha256"] = sha256(found[kind])
    tool.version = _git_version(next(iter(found.values())).parent) if found else None
    return tool


def docker_tool(image: str, bin_dir: str | None) -> Tool:
    folder = PurePosixPath(bin_dir or IMAGE_BIN_DIR)
    tool = DockerTool("docker", image)
    tool.image = image
    reason: Unavailable | None = None
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        try:
            tool.client = docker.from_env()
            tool.client.ping()
            img = tool.client.images.get(image)
            tool.packages["astra-sim:image-id"] = img.id
            tool.packages["docker-sdk"] = docker.__version__
        except ImageNotFound:
            reason = Unavailable("image-missing", f"Docker image {image!r} not found locally (build it or `docker pull {image}`); or {HOW_TO}")
        except DockerException as exc:
            reason = Unavailable("docker-unavailable", f"no Docker daemon reachable for image {image!r} ({str(exc).splitlines()[0][:200]}); or {HOW_TO}")
    except ImportError:
        reason = Unavailable("docker-unavailable", f"the docker Python SDK is not installed (pip install docker) for image {image!r}")
    for kind, name in BINARY_NAMES.items():
        if reason:
            tool.missing[kind] = reason
        else:
            tool.binaries[kind] = str(folder / name)
    return tool


def resolve(tool_path: str | None, image: str | None) -> Tool:
    if image:
        return docker_tool(image, tool_path)
    if tool_path is None:
        for var in ENV_VARS:
            if os.environ.get(var):
                tool_path = os.environ[var]
                break
    if not tool_path:
        return NoTool()
    return native_tool(tool_path)
