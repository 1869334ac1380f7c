"""Hostile batch plans (issue 32): a composition listed twice, and a plan file without end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_replay import COMPOSITIONS, _plan, invoke

from mtap_groundtruth import cli


@pytest.mark.parametrize("command", ["cases", "run"])
def test_a_composition_listed_twice_is_refused_naming_the_plan_and_the_key(tmp_path: Path, data_dir: Path, command: str) -> None:
    plan = _plan(tmp_path, [*COMPOSITIONS, dict(COMPOSITIONS[1], batches=7)])
    out = tmp_path / "out"
    extra = ("--device", "cpu", "--tiny", "--output", str(out)) if command == "run" else ()
    r = invoke(command, "--suite", "replay", "--plan", str(plan), "--data-dir", str(data_dir), *extra)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert f"{plan}: field compositions: composition 'd1x132' is listed twice (entries 1 and 3)" in lines[0]
    assert not out.exists() or not list(out.glob("*.json"))


def test_the_same_composition_under_another_key_is_refused_too(tmp_path: Path, data_dir: Path) -> None:
    twin = {"key": "p40x40-p20x52-d3x300", "prefill": [[20, 52], [40, 40]], "decode": [3, 300], "batches": 1}
    r = invoke("cases", "--suite", "replay", "--plan", str(_plan(tmp_path, [*COMPOSITIONS, twin])), "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "the same composition as 'p20x52-p40x40-d3x300'" in r.output, r.output


def test_an_endless_plan_file_is_refused_after_the_cap(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(cli, "MAX_PLAN_BYTES", 1 << 20)
    endless = Path("/dev/zero")  # never ends: a reader without a bound exhausts memory
    if not endless.exists():
        pytest.skip("no /dev/zero")
    r = invoke("cases", "--suite", "replay", "--plan", str(endless), "--data-dir", str(data_dir))
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        "Error: /dev/zero: larger than 1,048,576 bytes, refused (a plan of 10^5 compositions is ~40 MB)"
    ]


def test_a_plan_over_the_cap_is_refused_and_one_under_it_is_read(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    plan = _plan(tmp_path)
    monkeypatch.setattr(cli, "MAX_PLAN_BYTES", os.path.getsize(plan) - 1)
    r = invoke("cases", "--suite", "replay", "--plan", str(plan), "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "larger than" in r.output, r.output
    monkeypatch.setattr(cli, "MAX_PLAN_BYTES", os.path.getsize(plan))
    r = invoke("cases", "--suite", "replay", "--plan", str(plan), "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
