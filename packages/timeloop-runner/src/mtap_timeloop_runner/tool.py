"""Where Timeloop comes from and how timeloop-mapper is run.

Timeloop is C++ and on no package registry. The runner takes the first of:

1. ``--tool-path PATH`` (hidden alias ``--timeloop-bin``): the ``timeloop-mapper`` binary, its
   folder, or a build tree with ``bin/`` and ``lib/`` (``lib/`` goes on ``LD_LIBRARY_PATH``);
2. ``--image NAME``: ``timeloop-mapper`` inside a Docker image (the docker Python SDK; any engine
   serving the Docker API: ``DOCKER_HOST``, e.g. podman's service), found on the image's PATH; an
   image made by mtap's Dockerfile (its ``MTAP_TIMELOOP_PATH`` variable names a ``setup`` build)
   gives its build's version and the PAT energy model;
3. ``MTAP_TIMELOOP_PATH``, like ``--tool-path``;
4. a verified build made by ``timeloop-runner setup`` (``~/.cache/mtap/timeloop/<commit>/``).

Without any of them every case is ``unavailable`` (``binary-missing``) with a message saying how
to provide the tool. A :class:`Tool` is a plain, picklable description: worker processes run the
mapper (a Docker client is made in the worker when needed). The document records the tool as
what it is (binary name + sha256, or the image digest), never a machine path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mtap_schemas.proc import ToolResult, run_tool
from mtap_schemas.toolcache import build_version
from mtap_schemas.toolrun import location_of

ENV_VERSION = "MTAP_TIMELOOP_VERSION"
MAPPER = "timeloop-mapper"
DEFAULT_IMAGE = "timeloopaccelergy/accelergy-timeloop-infrastructure:latest"
HOW_TO_PROVIDE = (
    "build and cache Timeloop v3.0.3 with `timeloop-runner setup`, or pass --tool-path DIR (a Timeloop v3.0.3 build: "
    f"DIR/bin/{MAPPER} and DIR/lib) or set MTAP_TIMELOOP_PATH, or pass --image {DEFAULT_IMAGE} (needs Docker and "
    "the docker Python package: pip install 'mtap-timeloop-runner[docker]')"
)
PAT_ENERGY_MODEL = (
    "PAT-public (Timeloop's built-in model): relative energies normalised to Eyeriss "
    "(16-bit MAC = 1 pJ, 0.5 kB buffer access = 1, 100 kB = 6, DRAM = 200 per 16 bits), no area"
)
IMAGE_ENERGY_MODEL = "the image's Timeloop build (Accelergy-backed where the image provides it)"


class ToolPathError(ValueError):
    """A tool path was given but holds no timeloop-mapper (a user error)."""


@dataclass(frozen=True)
class Tool:
    """The mapper to run, or why there is none (``missing`` = (error kind, message))."""

    backend: str  #: native | docker
    location: str | None  #: as the document records it
    version: str | None = None
    binary: str | None = None
    lib_dirs: tuple[str, ...] = ()
    image: str | None = None
    energy_model: str | None = None
    missing: tuple[str, str] | None = None
    found_by: str = "none"

    def identity(self) -> dict[str, object]:
        """What a checkpoint's plan digest depends on."""
        return {"backend": self.backend, "location": self.location, "version": self.version, "missing": self.missing}

    def run(self, workdir: Path, inputs: list[str], timeout: float) -> ToolResult:
        if self.backend == "docker":
            return _docker_run(self, workdir, inputs, timeout)
        env = dict(os.environ)
        if self.lib_dirs:
            extra = os.pathsep.join(self.lib_dirs)
            env["LD_LIBRARY_PATH"] = extra + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        assert self.binary is not None
        return run_tool([self.binary, *inputs], timeout=timeout, cwd=workdir, env=env)


def unavailable(kind: str, message: str, backend: str = "native", location: str | None = None) -> Tool:
    return Tool(backend, location, missing=(kind, message))


def no_tool() -> Tool:
    return unavailable("binary-missing", f"Timeloop is not available here: {HOW_TO_PROVIDE}")


def _git_version(path: Path) -> str | None:
    """``git describe`` of the checkout a binary was built in, if it is one."""
    for parent in [path.parent, *path.parents]:
        if (parent / ".git").exists():
            res = run_tool(["git", "-C", str(parent), "describe", "--tags", "--always", "--dirty"], timeout=30)
            return res.stdout.strip() or None if res.ok else None
    return None


def find_native(tool_path: str | os.PathLike[str], source: str) -> Tool:
    """``tool_path`` is the binary, a folder holding it, or a build tree with bin/ and lib/."""
    path = Path(tool_path).expanduser()
    candidates = [path] if path.is_file() else [path / MAPPER, path / "bin" / MAPPER]
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            binary = cand.resolve()
            libs = tuple(str(d) for d in (binary.parent / "lib", binary.parent.parent / "lib") if d.is_dir())
            version = os.environ.get(ENV_VERSION) or build_version([binary.parent, binary.parent.parent]) or _git_version(binary)
            return Tool("native", location_of(binary, version), version, str(binary), libs,
                        energy_model=PAT_ENERGY_MODEL, found_by=source)
    raise ToolPathError(f"{source} {tool_path}: no executable {MAPPER} there or in its bin/ ({HOW_TO_PROVIDE})")


def find_docker(image: str) -> Tool:
    try:
        import docker  # type: ignore[import-not-found]
    except ImportError:
        return unavailable("docker-missing", f"--image {image}: the docker Python package is not installed "
                           "(pip install 'mtap-timeloop-runner[docker]')", "docker", image)
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        return unavailable("docker-unavailable", f"--image {image}: no Docker daemon reachable "
                           f"({str(exc).splitlines()[0][:200]})", "docker", image)
    try:
        try:
            img = client.images.get(image)
        except docker.errors.ImageNotFound:
            img = client.images.pull(image)
    except Exception as exc:
        return unavailable("image-missing", f"--image {image}: image not present and could not be pulled "
                           f"({str(exc).splitlines()[0][:200]})", "docker", image)
    digest = (img.attrs.get("RepoDigests") or [img.id])[0]
    env = dict(e.split("=", 1) for e in (img.attrs.get("Config") or {}).get("Env") or [] if "=" in e)
    build = _image_build(client, img.id, env.get("MTAP_TIMELOOP_PATH"))
    version = os.environ.get(ENV_VERSION) or (build or {}).get("version")
    # mtap's image holds a `timeloop-runner setup` build: the same PAT model as a native setup build
    energy = PAT_ENERGY_MODEL if build else IMAGE_ENERGY_MODEL
    return Tool("docker", digest, version, image=img.id, energy_model=energy, found_by="--image")


def _image_build(client: object, image: str, path: str | None) -> dict | None:
    """The ``build.json`` of the ``setup`` build an mtap image names (MTAP_TIMELOOP_PATH), else None."""
    import json

    if not path:
        return None
    try:
        out = client.containers.run(image, [f"{path}/build.json"], entrypoint=["cat"], remove=True, stdout=True,
                                    stderr=False)
        info = json.loads(out)
        return info if isinstance(info, dict) else None
    except Exception:  # noqa: BLE001 - no build record: the image's own Timeloop, version unknown
        return None


def _docker_run(tool: Tool, workdir: Path, inputs: list[str], timeout: float) -> ToolResult:
    import time

    import docker  # type: ignore[import-not-found]

    client = docker.from_env()
    mount = "/mtap-work"
    t0 = time.monotonic()
    container = client.containers.run(tool.image, entrypoint=[MAPPER], command=inputs, working_dir=mount,
                                      volumes={str(workdir): {"bind": mount, "mode": "rw"}},
                                      user=f"{os.getuid()}:{os.getgid()}", detach=True)
    try:
        try:
            status = container.wait(timeout=timeout)
            outcome = "exit"
        except Exception:  # requests' ReadTimeout: the container outlived the timeout
            container.kill()
            status, outcome = {"StatusCode": None}, "timeout"
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    code = status.get("StatusCode")
    return ToolResult((MAPPER, *inputs), code, output, "", outcome, time.monotonic() - t0)


@dataclass
class Lookup:
    """Where to look, in order (the module doc)."""

    tool_path: str | None = None
    tool_path_source: str = "--tool-path"
    image: str | None = None
    env_path: str | None = None
    cached: Path | None = None


def locate(lookup: Lookup) -> Tool:
    """The tool to run, or why there is none. A path that was given but is wrong raises ToolPathError."""
    if lookup.tool_path:
        return find_native(lookup.tool_path, lookup.tool_path_source)
    if lookup.image:
        return find_docker(lookup.image)
    if lookup.env_path:
        return find_native(lookup.env_path, "MTAP_TIMELOOP_PATH=")
    if lookup.cached is not None:
        return find_native(lookup.cached, "timeloop-runner setup's cached build")
    return no_tool()
