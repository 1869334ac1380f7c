"""`batches` and `replay` on the committed VIDUR runs (real vidur 0.0.26 output, kept with --keep-raw)
and the committed GPU replay (data/evaluation/groundtruth/h200-vidur-replay*.tool-run.json)."""

from __future__ import annotations

import csv
import io
import json
import lzma
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_vidur_runner import replay, replay_report
from mtap_vidur_runner.cli import main

REPO = Path(__file__).resolve().parents[3]
VIDUR = REPO / "data" / "evaluation" / "vidur"
DOCS = [VIDUR / "vidur.tool-run.json", VIDUR / "vidur-static.tool-run.json", VIDUR / "vidur-long.tool-run.json"]
PLAN = VIDUR / "replay" / "batch-plan.json"
# the two device calls, in the order they ran (the second measured what the first left)
MEASURED = [p for p in (REPO / "data" / "evaluation" / "groundtruth" / f"h200-vidur-replay{s}.tool-run.json" for s in ("", "-2"))
            if p.is_file()]
H200 = "H200-SXM-141GB"

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in DOCS), reason="committed VIDUR documents absent")


@pytest.fixture(scope="module")
def cases() -> list[replay.CaseBatches]:
    return replay.load_cases(DOCS[:1], H200, REPO)


def test_the_timeline_fed_vidurs_own_batch_times_reproduces_vidurs_request_metrics(cases) -> None:
    assert len(cases) == 12
    for cb in cases:
        vidur = replay.read_requests(cb.requests)
        ours = replay.timeline(cb.batches, [b.predicted_s for b in cb.batches], vidur.decode_tokens)
        assert replay_report.check_timeline(ours, vidur) < 1e-9, cb.case["id"]


def test_every_batch_records_every_request_and_orca_gives_admitted_requests_no_kv(cases) -> None:
    blank = {}
    for cb in cases:
        sched = cb.case["parameters"]["scheduler"]
        assert all(b.size == len(b.rows) for b in cb.batches)  # read_batches checks it against batch_metrics too
        comp = next(VIDUR.parent.parent.parent / a["path"] for a in cb.case["artifacts"] if a["path"].endswith("batch_composition.csv.xz"))
        rows = list(csv.DictReader(io.StringIO(lzma.decompress(comp.read_bytes()).decode())))
        blank[sched] = blank.get(sched, 0) + sum(1 for r in rows if r["num_kv_tokens"] == "")
    # vidur 0.0.26's orca scheduler appends no KV entry for the requests it admits (its 500 prefills per case)
    assert blank["vllm"] == blank["sarathi"] == 0 and blank["orca"] >= 4 * 490


def test_batches_writes_the_committed_plan(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(main, ["batches", *[str(p.relative_to(REPO)) for p in DOCS], "--output", str(out), "--plan-version", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == json.loads(PLAN.read_text())
    plan = ms.read(out, "batch-plan")
    assert len(plan["compositions"]) == len({c["key"] for c in plan["compositions"]})
    assert sum(c["batches"] for c in plan["compositions"]) == 111_329


def test_plan_v2_groups_each_decode_request_at_its_own_kv(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "plan2.json"
    r = CliRunner().invoke(main, ["batches", str(DOCS[0].relative_to(REPO)), "--output", str(out)])
    assert r.exit_code == 0, r.output
    plan = ms.read(out, "batch-plan", 2)
    cases = replay.load_cases(DOCS[:1], H200, REPO)
    batches = [b for cb in cases for b in cb.batches]
    assert sum(c["batches"] for c in plan["compositions"]) == len(batches)
    assert len(plan["compositions"]) == len({b.exact_key for b in batches})
    padded = [b for b in batches if b.padded]
    assert padded, "the W5 H200 cases have batches whose decode requests differ in KV"
    b = padded[0]
    comp = next(c for c in plan["compositions"] if c["key"] == b.exact_key)
    kvs = sorted(r.kv for r in b.rows if not r.is_prefill)
    assert sum(n for n, _ in comp["decode"]) == len(kvs) and sum(n * kv for n, kv in comp["decode"]) == sum(kvs)


def test_user_errors_are_one_line_exit_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    r = CliRunner().invoke(main, ["batches", str(DOCS[0]), "--hardware", "TPU-v9", "--output", str(tmp_path / "p.json")])
    assert r.exit_code == 2 and "no ok case of TPU-v9" in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["replay", str(DOCS[0]), "--measured", str(DOCS[0]), "--output", str(tmp_path)])
    assert r.exit_code == 2 and "groundtruth" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(not MEASURED, reason="committed GPU replay absent")
def test_replay_regenerates_the_committed_documents(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    args = ["replay", *[str(p.relative_to(REPO)) for p in DOCS]]
    for m in MEASURED:
        args += ["--measured", str(m.relative_to(REPO))]
    r = CliRunner().invoke(main, [*args, "--output", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for name in ("vidur-batches", "vidur-replay"):
        got, want = (ms.canonical(ms.read_tool_run(d / f"{name}.tool-run.json")) for d in (tmp_path, VIDUR))
        for doc in (got, want):
            for volatile in ("invocation", "wall_clock", "environment"):
                doc.pop(volatile, None)
        assert got == want, name
    # D1 classes (tool-run 2.2): the replayed timeline is built from VIDUR's own operators; the batch
    # predictions keep the vidur case's calibration on its operator profile
    replayed = ms.read_tool_run(tmp_path / "vidur-replay.tool-run.json")["cases"]
    assert {c["independence"]["class"] for c in replayed if c["status"] == "ok"} == {"shared-operators"}
    batches = ms.read_tool_run(tmp_path / "vidur-batches.tool-run.json")["cases"]
    assert {c["independence"]["class"] for c in batches} == {"calibrated-separately"}
    assert (tmp_path / "vidur-replay-report.md").read_text() == (VIDUR / "vidur-replay-report.md").read_text()
