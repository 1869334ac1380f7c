"""Hostile inputs to `batches` and `replay` (issue 32), built in tmp_path from the committed orca static case
(real vidur 0.0.26 output kept with --keep-raw): artifact paths out of the repository, an unbounded .xz,
and a replay whose documents are both kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_vidur_runner import replay
from mtap_vidur_runner.cli import main

REPO = Path(__file__).resolve().parents[3]
VIDUR = REPO / "data" / "evaluation" / "vidur"
STATIC = VIDUR / "vidur-static.tool-run.json"
CASE = "W5/H200-SXM-141GB/orca/static"
MEASURED = [
    p for p in (REPO / "data" / "evaluation" / "groundtruth" / f"h200-vidur-replay{s}.tool-run.json" for s in ("", "-2")) if p.is_file()
]

pytestmark = pytest.mark.skipif(not STATIC.is_file(), reason="committed VIDUR documents absent")


def _one_case_doc() -> dict:
    doc = ms.read_tool_run(STATIC)
    doc["cases"] = [c for c in doc["cases"] if c["id"] == CASE]
    assert len(doc["cases"]) == 1
    return doc


def _repo(tmp_path: Path, monkeypatch) -> tuple[Path, dict]:
    """A repository root in tmp_path holding the case's three kept artifacts at their recorded paths."""
    repo = tmp_path / "repo"
    doc = _one_case_doc()
    for a in doc["cases"][0]["artifacts"]:
        if a["path"].endswith(".csv.xz"):
            (repo / a["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / a["path"], repo / a["path"])
    monkeypatch.setenv("MTAP_REPO_ROOT", str(repo))
    monkeypatch.chdir(repo)
    return repo, doc


def _batches(repo: Path, doc: dict):
    ms.write(repo / "v.tool-run.json", doc, "tool-run", 2)
    return CliRunner().invoke(main, ["batches", "v.tool-run.json", "--output", str(repo / "plan.json")])


def test_batches_reads_the_case_from_the_repository(tmp_path: Path, monkeypatch) -> None:
    repo, doc = _repo(tmp_path, monkeypatch)
    r = _batches(repo, doc)
    assert r.exit_code == 0, r.output
    assert (repo / "plan.json").is_file()


@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_batches_refuses_artifact_paths_outside_the_repository(tmp_path: Path, monkeypatch, where: str) -> None:
    repo, doc = _repo(tmp_path, monkeypatch)
    art = next(a for a in doc["cases"][0]["artifacts"] if a["path"].endswith("batch_composition.csv.xz"))
    outside = tmp_path / "outside" / "batch_composition.csv.xz"
    outside.parent.mkdir()
    shutil.copyfile(repo / art["path"], outside)  # same bytes, same sha256: only the path differs
    art["path"] = "../outside/batch_composition.csv.xz" if where == "dotdot" else str(outside)
    r = _batches(repo, doc)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert f"v.tool-run.json: case {CASE}: artifact" in lines[0]
    assert ("leaves repo/" if where == "dotdot" else "expected a path relative to repo/") in lines[0]
    assert not (repo / "plan.json").exists()


def test_batches_decompresses_with_a_bound(tmp_path: Path, monkeypatch) -> None:
    repo, doc = _repo(tmp_path, monkeypatch)
    monkeypatch.setattr(replay, "MAX_CSV_BYTES", 4096)  # the real files decompress to more: refused, not read whole
    r = _batches(repo, doc)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "decompresses to more than 4096 bytes, refused" in lines[0], r.output
    assert "batch_composition.csv.xz" in lines[0]


@pytest.mark.skipif(not MEASURED, reason="committed GPU replay absent")
def test_replay_keeps_the_report_when_its_documents_are_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("vidur-batches.tool-run.json", "vidur-replay.tool-run.json", "vidur-replay-report.md"):
        shutil.copyfile(VIDUR / name, out / name)  # the committed run: many more ok cases than one case gives
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one = tmp_path / "one.tool-run.json"
    ms.write(one, _one_case_doc(), "tool-run", 2)
    args = ["replay", str(one), "--output", str(out)]
    for m in MEASURED:
        args += ["--measured", str(m.relative_to(REPO))]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 4, r.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before  # documents and report kept
    assert "kept " + str(out / "vidur-replay-report.md") in r.output
    beside = out / "vidur-replay-report.refused-fewer-ok.md"
    assert beside.is_file() and beside.read_bytes() != before["vidur-replay-report.md"]
    assert json.loads((out / "vidur-replay.refused-fewer-ok.json").read_text())["cases"][0]["id"] == CASE
