"""Where Timeloop comes from: a native build (``--tool-path``/``MTAP_TIMELOOP_PATH``) or the
official accelergy-timeloop-infrastructure Docker image (``--image``, through the docker SDK)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ENV_PATH = "MTAP_TIMELOOP_PATH"
ENV_VERSION = "MTAP_TIMELOOP_VERSION"
MAPPER = "timeloop-mapper"
DEFAULT_IMAGE = "timeloopaccelergy/accelergy-timeloop-infrastructure:latest"
HOW_TO_PROVIDE = (
    f"pass --tool-path DIR (a Timeloop v3.0.3 build: DIR/bin/{MAPPER} and DIR/lib), set {ENV_PATH}, "
    f"or pass --image {DEFAULT_IMAGE} (needs Docker and the docker Python package: pip install 'mtap-timeloop-runner[docker]')"
)


class ToolPathError(ValueError):
    """A tool path was given but holds no timeloop-mapper (a user error)."""


@dataclass
class Unavailable:
    kind: str  # error.kind slug
    message: str
    location: str | None = None


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr of the tool
    timed_out: bool = False


@dataclass
class NativeTool:
    binary: Path
    lib_dirs: list[Path] = field(default_factory=list)
    version: str | None = None
    backend: str = "native"
    energy_model: str = (
        "PAT-public (Timeloop's built-in model): relative energies normalised to Eyeriss "
        "(16-bit MAC = 1 pJ, 0.5 kB buffer access = 1, 100 kB = 6, DRAM = 200 per 16 bits), no area"
    )

    @property
    def location(self) -> str:
        return str(self.binary)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.lib_dirs:
            extra = os.pathsep.join(str(p) for p in self.lib_dirs)
            env["LD_LIBRARY_PATH"] = extra + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        return env

    def run(self, workdir: Path, inputs: list[str], timeout: float) -> Result:
        try:
            proc = subprocess.run(
                [str(self.binary), *inputs],
                cwd=workdir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return Result(returncode=-1, output=out, timed_out=True)
        return Result(returncode=proc.returncode, output=proc.stdout.decode(errors="replace"))


@dataclass
class DockerTool:
    image: str
    client: object
    version: str | None = None
    backend: str = "docker"
    energy_model: str = "the image's Timeloop build (Accelergy-backed where the image provides it)"

    @property
    def location(self) -> str:
        return self.image

    def run(self, workdir: Path, inputs: list[str], timeout: float) -> Result:
        mount = "/mtap-work"
        container = self.client.containers.run(  # type: ignore[attr-defined]
            self.image,
            entrypoint=[MAPPER],
            command=inputs,
            working_dir=mount,
            volumes={str(workdir): {"bind": mount, "mode": "rw"}},
            user=f"{os.getuid()}:{os.getgid()}",
            detach=True,
        )
        try:
            try:
                status = container.wait(timeout=timeout)
                timed_out = False
            except Exception:  # requests' ReadTimeout: the container outlived the timeout
                container.kill()
                status, timed_out = {"StatusCode": -1}, True
            output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        return Result(returncode=int(status.get("StatusCode", -1)), output=output, timed_out=timed_out)


def _git_version(path: Path) -> str | None:
    """``git describe`` of the checkout a binary was built in, if it is one."""
    for parent in [path.parent, *path.parents]:
        if (parent / ".git").exists():
            git = shutil.which("git")
            if not git:
                return None
            proc = subprocess.run(
                [git, "-C", str(parent), "describe", "--tags", "--always", "--dirty"],
                capture_output=True, text=True, check=False,
            )
            return proc.stdout.strip() or None
    return None


def find_native(tool_path: str, source: str) -> NativeTool:
    """``tool_path`` is the binary, a folder holding it, or a build tree with bin/ and lib/."""
    path = Path(tool_path).expanduser()
    candidates = [path] if path.is_file() else [path / MAPPER, path / "bin" / MAPPER]
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            binary = cand.resolve()
            libs = [d for d in (binary.parent / "lib", binary.parent.parent / "lib") if d.is_dir()]
            version = os.environ.get(ENV_VERSION) or _git_version(binary)
            return NativeTool(binary=binary, lib_dirs=libs, version=version)
    raise ToolPathError(f"{source} {tool_path}: no executable {MAPPER} there or in its bin/ ({HOW_TO_PROVIDE})")


def find_docker(image: str) -> DockerTool | Unavailable:
    try:
        import docker  # type: ignore[import-not-found]
    except ImportError:
        return Unavailable("docker-missing", f"--image {image}: the docker Python package is not installed "
                           "(pip install 'mtap-timeloop-runner[docker]')", image)
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        return Unavailable("docker-unavailable", f"--image {image}: no Docker daemon reachable ({str(exc).splitlines()[0][:200]})", image)
    try:
        try:
            img = client.images.get(image)
        except docker.errors.ImageNotFound:
            img = client.images.pull(image)
    except Exception as exc:
        return Unavailable("image-missing", f"--image {image}: image not present and could not be pulled ({str(exc).splitlines()[0][:200]})", image)
    digest = (img.attrs.get("RepoDigests") or [img.id])[0]
    return DockerTool(image=digest, client=client, version=os.environ.get(ENV_VERSION))


def locate(tool_path: str | None, image: str | None) -> NativeTool | DockerTool | Unavailable:
    """The tool to run, or why there is none. A path that was given but is wrong raises ToolPathError."""
    if tool_path:
        return find_native(tool_path, "--tool-path")
    if image:
        return find_docker(image)
    env_path = os.environ.get(ENV_PATH)
    if env_path:
        return find_native(env_path, f"{ENV_PATH}=")
    return Unavailable("binary-missing", f"Timeloop is not available here: {HOW_TO_PROVIDE}")
