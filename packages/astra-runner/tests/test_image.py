"""``run --image`` through the docker SDK on ASTRA-sim's reference example (57426 cycles), against
whatever engine DOCKER_HOST names (Docker, or podman's `podman system service`), with the image
`nox -s images -- astra-runner` builds (MTAP_ASTRA_IMAGE names another). Skipped, saying why,
where there is no SDK, no engine answering or no such image (GitHub's test jobs have none)."""

from __future__ import annotations

import os

from conftest import config, invoke

import mtap_schemas as ms
from mtap_schemas.imagetest import image_or_skip

IMAGE = os.environ.get("MTAP_ASTRA_IMAGE", "mtap-astra-sim")


def _image_or_skip() -> None:
    image_or_skip(IMAGE, install="pip install docker", build="nox -s images -- astra-runner")


def test_image_reproduces_the_reference_57426_cycles(tmp_path, data_dir):
    _image_or_skip()
    res = invoke("run", "--output", tmp_path, "--data-dir", data_dir, "--image", IMAGE, "--name", "img",
                 "--config", config(tmp_path, {"studies": ["reference"]}))
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "img.tool-run.json")
    assert doc["tool"]["backend"] == "docker" and doc["tool"]["location"] == IMAGE
    (case,) = doc["cases"]
    assert case["status"] == "ok", case["error"]
    assert {m["name"]: m["value"] for m in case["metrics"]}["cycles"] == 57426
    assert case["parameters"]["reproduces_expected"] is True
