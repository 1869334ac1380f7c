"""calibration v1: the committed calibration documents validate; a wrong field is named in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mtap_schemas as ms

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "data/calibration").glob("*.json"))


def test_there_is_a_committed_calibration() -> None:
    assert DOCS, "data/calibration/ holds no calibration document"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_committed_calibrations_validate(path: Path) -> None:
    doc = ms.read(path, "calibration")
    assert doc["schema_version"].split(".")[0] == "1"
    # the measured document it names is in the repository with the recorded bytes
    measured = ROOT / doc["measured"]["path"]
    assert ms.sha256_file(measured) == doc["measured"]["sha256"]
    assert len(doc["points"]) == len(doc["model"]["coefficients"])


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["fitted"].pop("latency_ns"), "fitted"),
        (lambda d: d["fitted"].__setitem__("bandwidth_bytes_per_s", -1.0), "fitted.bandwidth_bytes_per_s"),
        (lambda d: d["measured"].__setitem__("sha256", "abc"), "measured.sha256"),
        (lambda d: d["points"][0]["spread"].__setitem__("p50_ns", 1.0), "points[0].spread"),
        (lambda d: d.__setitem__("schema", "hardware"), "schema"),
    ],
)
def test_a_wrong_field_is_named(tmp_path: Path, mutate, field) -> None:
    doc = json.loads(DOCS[0].read_text())
    mutate(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ms.SchemaError) as err:
        ms.read(bad, "calibration")
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and f"field {field}" in msg, msg
