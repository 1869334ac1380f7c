"""The committed measurements (data/evaluation/groundtruth/) are valid and complete."""

from __future__ import annotations

from pathlib import Path

import pytest

import mtap_schemas as ms
from mtap_groundtruth import cases

EVAL = Path(__file__).resolve().parents[3] / "data" / "evaluation" / "groundtruth"


def docs() -> dict[str, dict]:
    if not EVAL.is_dir():
        pytest.skip("no committed measurements")
    return {p.name: ms.read(p, "tool-run") for p in sorted(EVAL.glob("*.tool-run.json"))}


def test_single_gpu_document_covers_the_matrix_on_an_h100() -> None:
    d = docs().get("h100-x1.tool-run.json")
    if d is None:
        pytest.skip("h100-x1 not committed")
    assert "H100" in d["environment"]["gpu"]["name"]
    got = {c["key"]: c for c in d["cases"]}
    assert set(got) == {c.key for c in cases.plan("single")}
    for c in got.values():
        assert c["status"] == "ok" and c["hardware"] == "H100-SXM5-80GB"
        timings = {m.get("timing") for m in c["metrics"] if m["name"] == "latency"}
        assert timings == {"device", "eager-end-to-end"}
        assert next(m for m in c["metrics"] if m["name"] == "latency_samples")["value"] >= 30


def test_multi_gpu_documents_name_their_cards() -> None:
    multi = {k: v for k, v in docs().items() if k.endswith("-x2.tool-run.json")}
    if not multi:
        pytest.skip("no multi-GPU document committed")
    for name, d in multi.items():
        card = name.split("-")[0].upper()
        assert card in d["environment"]["gpu"]["name"] and d["environment"]["gpu"]["count"] == 2
        for c in d["cases"]:
            assert c["hardware"] == "HGX-H100x8" and card in c["parameters"]["gpu_name"]
