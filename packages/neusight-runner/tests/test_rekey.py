"""scripts/rekey_attention.py: committed NeuSight documents re-keyed for the eager attention NeuSight traces."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mtap_schemas as ms

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "packages" / "neusight-runner" / "scripts" / "rekey_attention.py"
FIXTURE = Path(__file__).parent / "fixtures" / "rekey" / "neusight-live-mini.tool-run.json"
EVAL = REPO / "data" / "evaluation" / "neusight"

spec = importlib.util.spec_from_file_location("rekey_attention", SCRIPT)
rekey = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rekey)


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "neusight-live-mini.tool-run.json"
    shutil.copy(FIXTURE, path)
    return path


def test_rekey_adds_suffix_attention_and_note_and_nothing_else(doc: Path, tmp_path: Path) -> None:
    before = ms.read_tool_run(doc)
    assert rekey.main([str(doc)]) == 0
    after = ms.read_tool_run(doc)  # re-validated on write, valid on read
    assert {k: v for k, v in before.items() if k != "cases"} == {k: v for k, v in after.items() if k != "cases"}
    for old, new in zip(before["cases"], after["cases"]):
        assert new["key"] == old["key"] + ".eager-attn"
        params = dict(new["parameters"])
        assert params.pop("attention") == "eager"
        note = params.pop("key_note")
        assert "re-written after the run" in note and "attn_implementation" in note and "neusight-runner 1.0.0" in note
        assert params == old["parameters"]
        assert {k: v for k, v in new.items() if k not in ("key", "parameters")} == \
               {k: v for k, v in old.items() if k not in ("key", "parameters")}
    assert doc.read_text() == ms.dumps(after, "auto")  # written as the kit writes documents
    text = doc.read_bytes()
    assert rekey.main([str(doc)]) == 0 and doc.read_bytes() == text  # a second pass changes nothing


def test_rekey_updates_the_comparison_of_the_document(doc: Path, tmp_path: Path) -> None:
    cmp = tmp_path / "x.compare.json"
    cmp.write_text(json.dumps({"document": doc.name, "document_sha256": ms.sha256_file(doc), "rows": [{"tag": "bert-inf-128-1"}]},
                              indent=2, sort_keys=True) + "\n")
    before = json.loads(cmp.read_text())
    assert rekey.main([str(doc), "--compare", str(cmp), "--repo", str(tmp_path)]) == 0
    after = json.loads(cmp.read_text())
    assert after["document_sha256"] == ms.sha256_file(doc) != before["document_sha256"]
    assert {k: v for k, v in after.items() if k != "document_sha256"} == {k: v for k, v in before.items() if k != "document_sha256"}


def test_rekey_refuses_what_is_not_neusights_computation(doc: Path, tmp_path: Path) -> None:
    gt = tmp_path / "gt.tool-run.json"
    d = ms.read_tool_run(doc)
    d["tool"]["name"] = "groundtruth"
    ms.write(gt, d, "tool-run", 2)
    sdpa = tmp_path / "sdpa.tool-run.json"
    d = ms.read_tool_run(doc)
    d["cases"][1]["parameters"]["attention"] = "sdpa"
    ms.write(sdpa, d, "tool-run", 2)
    bad_json = tmp_path / "bad.tool-run.json"
    bad_json.write_text("{")
    original = doc.read_bytes()
    for args, needle in (([gt], "tool.name"), ([sdpa], "parameters.attention"), ([bad_json], "not valid JSON"),
                         ([doc, gt], "tool.name")):
        r = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert doc.read_bytes() == original  # all documents are checked before any is written
    cmp = tmp_path / "c.compare.json"
    cmp.write_text(json.dumps({"document": "elsewhere.tool-run.json", "document_sha256": "0" * 64}))
    r = subprocess.run([sys.executable, str(SCRIPT), str(doc), "--compare", str(cmp), "--repo", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "field document" in r.stderr and doc.read_bytes() == original


LIVE = ("neusight-live", "neusight-live-own", "neusight-roofline-h200", "neusight-roofline-own-h200", "neusight-trained-own",
        "neusight-trained-w4-w7")


@pytest.mark.parametrize("name", LIVE + ("neusight",))
def test_committed_documents_name_the_eager_attention(name: str) -> None:
    """Every committed NeuSight case names eager attention; those of runs made before 2.1.0 say their key was re-written."""
    path = EVAL / f"{name}.tool-run.json"
    if not path.is_file():
        pytest.skip(f"no committed {path.name}")
    doc = ms.read_tool_run(path)
    for case in doc["cases"]:
        assert case["key"].endswith(".eager-attn") and case["parameters"]["attention"] == "eager", case["id"]
        assert ("key_note" in case["parameters"]) == (name in LIVE), case["id"]
