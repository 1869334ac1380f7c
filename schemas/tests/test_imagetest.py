"""mtap_schemas.imagetest: the runners' ``--image`` tests skip naming what is missing, and run otherwise."""

from __future__ import annotations

import sys
import types

import pytest

from mtap_schemas.imagetest import image_or_skip


class ImageNotFound(Exception):
    pass


def fake_docker(monkeypatch, ping_error: Exception | None = None, images: tuple[str, ...] = ()) -> None:
    class Images:
        def get(self, name):
            if name not in images:
                raise ImageNotFound(name)
            return name

    class Client:
        images = Images()

        def ping(self):
            if ping_error:
                raise ping_error
            return True

    module = types.ModuleType("docker")
    module.from_env = Client
    module.errors = types.SimpleNamespace(ImageNotFound=ImageNotFound)
    monkeypatch.setitem(sys.modules, "docker", module)


def skipped() -> str:
    with pytest.raises(pytest.skip.Exception) as info:
        image_or_skip("mtap-x", install="pip install docker", build="nox -s images -- x")
    return str(info.value)


def test_no_engine_answering_is_a_skip_naming_docker_host(monkeypatch):
    fake_docker(monkeypatch, ping_error=ConnectionError("connection refused\nmore"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/none.sock")
    assert skipped() == "no container engine answers at DOCKER_HOST=unix:///tmp/none.sock: connection refused"


def test_a_missing_image_is_a_skip_naming_how_to_build_it(monkeypatch):
    fake_docker(monkeypatch)
    assert skipped() == "no image mtap-x (build it: nox -s images -- x)"


def test_engine_and_image_present_runs(monkeypatch):
    fake_docker(monkeypatch, images=("mtap-x",))
    assert image_or_skip("mtap-x", install="i", build="b") is None


def test_no_sdk_is_a_skip_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    assert "no docker SDK (pip install docker)" in skipped()
