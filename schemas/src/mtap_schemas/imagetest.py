"""For the runners' tests of ``run --image``: skip, saying why, unless the docker SDK is installed, a
container engine answers at ``DOCKER_HOST`` (Docker, or podman's ``podman system service``) and the
image is there. GitHub's test jobs have none of these, so the tests skip there; here they run
against the image ``nox -s images`` built. Imports pytest when called (test code only)."""

from __future__ import annotations

import os


def image_or_skip(image: str, *, install: str, build: str) -> None:
    """Return when ``image`` can be run; else ``pytest.skip`` naming what is missing (``install``: how to
    get the SDK, ``build``: how to build the image)."""
    import pytest

    docker = pytest.importorskip("docker", reason=f"no docker SDK ({install})")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach an engine is a skip
        pytest.skip(f"no container engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST', '(default)')}: "
                    f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}")
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no image {image} (build it: {build})")
