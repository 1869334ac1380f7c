"""``run --image`` through the docker SDK on ResNet-50 conv1 on the Eyeriss-like spec (1,204,224
cycles), against whatever engine DOCKER_HOST names (Docker, or podman's `podman system service`),
with the image `nox -s images -- timeloop-runner` builds (MTAP_TIMELOOP_IMAGE names another).
Skipped, saying why, where there is no SDK, no engine answering or no such image (GitHub's test
jobs have none)."""

from __future__ import annotations

import os

from conftest import config, invoke

import mtap_schemas as ms
from mtap_schemas.imagetest import image_or_skip

IMAGE = os.environ.get("MTAP_TIMELOOP_IMAGE", "mtap-timeloop")


def _image_or_skip() -> None:
    image_or_skip(IMAGE, install="pip install 'mtap-timeloop-runner[docker]'", build="nox -s images -- timeloop-runner")


def test_image_reproduces_conv1_1204224_cycles(tmp_path, data_dir):
    _image_or_skip()
    cfg = config(tmp_path, {"architectures": ["eyeriss-like"], "models": ["resnet50"], "layers": ["conv1"]})
    r = invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path, "--image", IMAGE, "--jobs", "1")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "timeloop.tool-run.json")
    assert doc["tool"]["backend"] == "docker"
    assert doc["tool"]["version"] == "v3.0.3"  # from the image's setup build (build.json)
    w1 = next(c for c in doc["cases"] if c["key"] == "resnet50.conv1.b1.int16")
    assert w1["status"] == "ok", w1["error"]
    assert {m["name"]: m["value"] for m in w1["metrics"]}["cycles"] == 1_204_224
