"""Where ASTRA-sim comes from and how it is run: a native binary, or a Docker image.

ASTRA-sim 2.0 is C++ and on no package registry. The runner looks for the analytical backend
binaries (``AstraSim_Analytical_Congestion_Aware`` and ``..._Congestion_Unaware``) in this order:

1. ``--tool-path PATH`` (hidden alias ``--binary``): a binary (the other one is looked up beside
   it), a folder holding them, a ``setup`` build folder or a built ASTRA-sim checkout (its
   ``build/astra_analytical/build/bin``);
2. ``--image NAME``: the same binaries inside a Docker image, through the ``docker`` Python SDK
   (any engine serving the Docker API: ``DOCKER_HOST``, e.g. podman's service), in the folder
   ``--image-bin-dir``, else the image's own ``MTAP_ASTRA_SIM_PATH`` (or ``ASTRA_SIM_BIN``) variable
   (mtap's images set it), else ``/app/astra-sim/build/astra_analytical/build/bin`` (ASTRA-sim's
   own Dockerfile's layout); the image's entrypoint is replaced by the binary;
3. the environment, ``MTAP_ASTRA_SIM_PATH`` (old name ``ASTRA_SIM_BIN``), like ``--tool-path``;
4. a verified build made by ``astra-runner setup`` (``~/.cache/mtap/astra-sim/<commit>/``).

Without any of them every case is ``unavailable`` (``binary-missing``) with a message saying how
to provide the tool. A :class:`Tool` is a plain, picklable description: worker processes run
the cases (a Docker client is made in each worker when needed).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mtap_schemas.paths import relative_to_repo
from mtap_schemas.proc import ToolResult, run_tool
from mtap_schemas.toolcache import build_version
from mtap_schemas.toolrun import location_of

BINARY_NAMES = {
    "congestion-aware": "AstraSim_Analytical_Congestion_Aware",
    "congestion-unaware": "AstraSim_Analytical_Congestion_Unaware",
}
ENV_VAR = "MTAP_ASTRA_SIM_PATH"
OLD_ENV_VAR = "ASTRA_SIM_BIN"
IMAGE_BIN_DIR = "/app/astra-sim/build/astra_analytical/build/bin"
CHECKOUT_BIN = Path("build/astra_analytical/build/bin")
MOUNT = "/mtap"

HOW_TO = (
    "build and cache ASTRA-sim 2.0 with `astra-runner setup`, or give its analytical backend with "
    f"--tool-path PATH or {ENV_VAR} (a binary AstraSim_Analytical_Congestion_Aware or _Congestion_Unaware, "
    "their folder, or an astra-sim checkout built with build/astra_analytical/build.sh), or --image NAME "
    "for a Docker image holding them (https://github.com/astra-sim/astra-sim)"
)


@dataclass
class Tool:
    backend: str  #: native | docker
    location: str | None  #: as the document records it (never a machine path)
    version: str | None = None
    binaries: dict[str, str] = field(default_factory=dict)  #: kind -> path (native) or path in the image
    missing: dict[str, tuple[str, str]] = field(default_factory=dict)  #: kind -> (error kind, message)
    packages: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    found_by: str = "none"  #: how it was found, for the console line

    def run(self, binary: str, workdir: Path, args: list[str], timeout: float) -> ToolResult:
        if self.backend == "docker":
            return _docker_run(self, binary, workdir, args, timeout)
        return run_tool([self.binaries[binary], *args], timeout=timeout, cwd=workdir)

    def identity(self) -> dict[str, object]:
        """What a checkpoint's plan digest depends on."""
        return {"backend": self.backend, "location": self.location, "version": self.version,
                "packages": self.packages, "missing": sorted(self.missing)}


#: tool.location when no ASTRA-sim was found. (null is what it should be, but the tool-run v2 schema's
#: no-machine-path rule refuses null there: reported to the lead; back to None once the schema allows it.)
NOT_FOUND = "not found (no --tool-path, --image, MTAP_ASTRA_SIM_PATH or setup build)"


def no_tool() -> Tool:
    return Tool("native", NOT_FOUND, missing={b: ("binary-missing", f"ASTRA-sim not given: {HOW_TO}") for b in BINARY_NAMES})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_version(start: Path) -> str | None:
    """``git:<commit>`` (plus ``-dirty``) of the git checkout holding ``start``, when there is one."""
    for d in [start, *start.parents]:
        if (d / ".git").exists():
            sha = run_tool(["git", "-C", str(d), "rev-parse", "HEAD"], timeout=30)
            if not sha.ok:
                return None
            dirty = run_tool(["git", "-C", str(d), "status", "--porcelain", "--untracked-files=no",
                              "--ignore-submodules=all"], timeout=60)
            return f"git:{sha.stdout.strip()}" + ("-dirty" if dirty.ok and dirty.stdout.strip() else "")
    return None


def _kind_of(name: str) -> str:
    return "congestion-unaware" if name.endswith("Unaware") else "congestion-aware"


def native_tool(path: str | os.PathLike[str], found_by: str) -> Tool:
    """The binaries at a user-given path. Raises FileNotFoundError when the path does not exist."""
    given = Path(path).expanduser()
    if not given.exists():
        raise FileNotFoundError(str(path))
    p = given.resolve()
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
    tool = Tool("native", None, found_by=found_by)
    for kind, name in BINARY_NAMES.items():
        if kind not in found:
            where = relative_to_repo(folders[0]) + ("" if p.is_file() else f" (nor its bin/ or {CHECKOUT_BIN}/)")
            tool.missing[kind] = ("binary-missing", f"{name} not found in {where}, from {found_by}: {HOW_TO}")
        elif not os.access(found[kind], os.X_OK):
            tool.missing[kind] = ("binary-missing", f"{name} (from {found_by}) is not executable")
        else:
            tool.binaries[kind] = str(found[kind])
            tool.packages[f"astra-sim:{name}:sha256"] = sha256(found[kind])
    if found:
        first = found.get("congestion-aware") or next(iter(found.values()))
        tool.version = build_version([first.parent, first.parent.parent]) or _git_version(first.parent)
        tool.location = location_of(first, tool.version)
    else:
        tool.location = location_of(p)
    return tool


def _image_env(img: object) -> dict[str, str]:
    env = ((getattr(img, "attrs", None) or {}).get("Config") or {}).get("Env") or []
    return dict(e.split("=", 1) for e in env if "=" in e)


def _image_build_version(client: object, image: str, bin_dir: PurePosixPath) -> str | None:
    """The ``version`` of a ``setup`` build's ``build.json`` beside the image's bin folder (mtap's images), else None."""
    import json

    try:
        # bin/.. inside the image: the kernel resolves it after a symlinked bin folder (/opt/astra-sim)
        out = client.containers.run(image, [f"{bin_dir}/../build.json"], entrypoint=["cat"], remove=True,
                                    stdout=True, stderr=False)
        version = json.loads(out).get("version")
        return version if isinstance(version, str) else None
    except Exception:  # noqa: BLE001 - an image without one (ASTRA-sim's own) has no recorded version
        return None


def docker_tool(image: str, bin_dir: str | None) -> Tool:
    tool = Tool("docker", image, image=image, found_by="--image")
    reason: tuple[str, str] | None = None
    folder = PurePosixPath(bin_dir or IMAGE_BIN_DIR)
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        try:
            client = docker.from_env()
            client.ping()
            img = client.images.get(image)
            tool.packages["astra-sim:image-id"] = img.id
            tool.packages["docker-sdk"] = docker.__version__
            if bin_dir is None:
                env = _image_env(img)
                folder = PurePosixPath(env.get(ENV_VAR) or env.get(OLD_ENV_VAR) or IMAGE_BIN_DIR)
            tool.version = _image_build_version(client, image, folder)
        except ImageNotFound:
            reason = ("image-missing", f"Docker image {image!r} not found locally (build it or `docker pull {image}`); or {HOW_TO}")
        except DockerException as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            reason = ("docker-unavailable", f"no Docker daemon reachable for image {image!r} ({first}); or {HOW_TO}")
    except ImportError:
        reason = ("docker-missing", f"the docker Python SDK is not installed (pip install docker) for image {image!r}")
    for kind, name in BINARY_NAMES.items():
        if reason:
            tool.missing[kind] = reason
        else:
            tool.binaries[kind] = str(folder / name)
    return tool


_CLIENT = None


def _docker_run(tool: Tool, binary: str, workdir: Path, args: list[str], timeout: float) -> ToolResult:
    """Run one binary in a container of ``tool.image``; the work folder is mounted at /mtap.
    The SDK's failures come back as a ToolResult whose ``error()`` gives a kind from the list."""
    import time

    import docker
    from docker.errors import APIError, DockerException
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    global _CLIENT
    argv = (tool.binaries[binary], *[a.replace(str(workdir), MOUNT) for a in args])
    t0 = time.monotonic()
    try:
        if _CLIENT is None:
            _CLIENT = docker.from_env()
        # the binary replaces the image's entrypoint (mtap's images start astra-runner)
        container = _CLIENT.containers.run(tool.image, list(argv[1:]), entrypoint=[argv[0]],
                                           volumes={str(workdir): {"bind": MOUNT, "mode": "rw"}},
                                           working_dir=MOUNT, detach=True)
    except (APIError, DockerException) as exc:  # e.g. the binary is not at that path in the image
        first = (str(exc).splitlines() or [""])[0][:300]
        return ToolResult(argv, None, "", f"not startable in image {tool.image}: {first}", "not-found", 0.0)
    try:
        try:
            status = container.wait(timeout=timeout)
        except (ReadTimeout, RequestsConnectionError):
            container.kill()
            logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            return ToolResult(argv, None, logs, "", "timeout", time.monotonic() - t0)
        code = int(status.get("StatusCode", 1))
        logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        container.reload()
        if (container.attrs.get("State") or {}).get("OOMKilled"):
            return ToolResult(argv, -9, logs, "", "out-of-memory", time.monotonic() - t0)
        if code > 128:  # the shell convention for "killed by signal code - 128"
            return ToolResult(argv, 128 - code, logs, "", "signal", time.monotonic() - t0)
        return ToolResult(argv, code, logs, "", "exit", time.monotonic() - t0)
    finally:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - best effort clean-up of a finished container
            pass
