"""`ci-timing local` on a tiny fake repository: a git repo whose noxfile has trivial sessions
(no virtualenv, no network), measured twice from clean clones. Seconds, on CI too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import mtap_schemas
from mtap_ci_timing.cli import main

pytest.importorskip("nox")

NOXFILE = textwrap.dedent(
    '''
    import json, os, sys, time
    import nox

    def _write(session, tool, value, cases=1):
        args = session.posargs
        if "--output" not in args:  # --install-only: nothing to install for these sessions
            return
        out = args[args.index("--output") + 1]
        doc = {"schema": "tool-run", "tool": {"name": tool}, "wall_clock": {"started_at": str(time.time())},
               "cases": [{"id": f"c{i}", "status": "ok", "metrics": [{"name": "cycles", "value": value, "unit": "cycles", "kind": "prediction"}]}
                         for i in range(cases)]}
        with open(os.path.join(out, tool + ".tool-run.json"), "w") as fh:
            json.dump(doc, fh)

    @nox.session(python=False)
    def zigzag(session):
        _write(session, "zigzag", 42, cases=2)

    @nox.session(python=False)
    def vidur(session):
        _write(session, "vidur", time.time_ns() % 100000)  # differs from pass to pass

    @nox.session(python=False)
    def broken(session):
        if "--output" not in session.posargs:
            session.error("no wheel of fake-tool for this platform")

    @nox.session(python=False)
    def empty(session):
        pass  # installs, runs, writes no tool-run document

    @nox.session(python=False)
    def slow(session):
        if "--output" in session.posargs:
            time.sleep(60)
    '''
)


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "noxfile.py").write_text(NOXFILE)
    git("init", "-q", cwd=root)
    git("add", "noxfile.py", cwd=root)
    git("commit", "-qm", "fake runners", cwd=root)
    return root


def runners(tmp_path, *sessions, **extra):
    specs = [{"session": s, "job": s, "args": ["--output", "{out}"], "install": "registry", "detail": f"{s} from a fake index", **extra}
             for s in sessions]
    path = tmp_path / "runners.json"
    path.write_text(json.dumps(specs))
    return str(path)


def local(tmp_path, repo, runners_file, *extra, env=None):
    args = ["local", "--repo-dir", str(repo), "--runners", runners_file, "--nox", f"{sys.executable} -m nox",
            "--output", str(tmp_path / "out"), "--report", str(tmp_path / "report.md"), "--evaluation-dir", str(tmp_path / "eval"),
            "--work-dir", str(tmp_path), *extra]
    base = {k: v for k, v in os.environ.items() if k != "MTAP_CACHE_DIR"}
    result = CliRunner().invoke(main, args, env={**base, **(env or {})}, catch_exceptions=False)
    doc = mtap_schemas.read(tmp_path / "out" / "local.json", "ci-timing", 2) if (tmp_path / "out" / "local.json").exists() else None
    report = (tmp_path / "report.md").read_text() if (tmp_path / "report.md").exists() else None
    return result, doc, report


def jobs_of(doc, name):
    return [j for run in sorted(doc["runs"], key=lambda r: r["run_number"]) for j in run["jobs"] if j["name"] == name]


def test_two_cold_passes_timed_compared_and_reported(tmp_path, repo):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    (repo / "noxfile.py").write_text("raise SystemExit('uncommitted change')\n")  # the clone measures the committed HEAD only
    result, doc, report = local(tmp_path, repo, runners(tmp_path, "zigzag", "vidur"))
    assert result.exit_code == 0, result.output
    src = doc["source"]
    assert src["kind"] == "local" and src["commit"] == commit and src["passes"] == 2 and src["runners"] == ["zigzag", "vidur"]
    assert "UV_CACHE_DIR" in src["cold_caches"] and "PIP_CACHE_DIR" in src["cold_caches"]
    assert [r["run_number"] for r in doc["runs"]] == [2, 1]
    zz = jobs_of(doc, "zigzag")
    assert [j["tool"] for j in zz] == ["zigzag", "zigzag"] and all(j["conclusion"] == "success" for j in zz)
    assert [s["category"] for s in zz[0]["steps"]] == ["setup", "setup", "setup", "run"]
    assert zz[0]["steps"][0]["command"][:2] == ["git", "clone"] and zz[0]["steps"][1]["command"][-1] == commit
    assert "--install-only" in zz[0]["steps"][2]["command"] and zz[0]["steps"][3]["command"][-2] == "--output"
    for job in zz:
        assert 0 < job["setup_seconds"] < job["first_result_seconds"] <= job["total_seconds"] + 0.001
        assert job["first_result_seconds"] == pytest.approx(job["setup_seconds"] + job["run_seconds"], abs=0.01)
        assert job["install_path"] == {"kind": "registry", "detail": "zigzag from a fake index", "reason": None, "attempted": "registry"}
    assert zz[0]["determinism"] is None  # the first pass is what later passes are compared with
    assert zz[1]["determinism"] == {"compared": 2, "identical": 2, "differing": [], "unmatched": 0}
    vd = jobs_of(doc, "vidur")
    assert vd[1]["determinism"] == {"compared": 1, "identical": 0, "differing": ["vidur.tool-run.json:c0"], "unmatched": 0}
    tools = {t["tool"]: t for t in doc["tools"]}
    assert tools["zigzag"]["setup_seconds"]["n"] == 2 and tools["zigzag"]["first_result_seconds"]["n"] == 2
    assert tools["vidur"]["determinism"]["identical"] == 0
    assert "## Local measurement" in report and "**No CI history scraped yet.**" in report
    row = next(line for line in report.splitlines() if line.startswith("| zigzag |"))
    assert "| 2 | 2 |" in row and "**registry**: zigzag from a fake index" in row and "yes (2/2 cases identical)" in row
    assert "no (0/1 cases identical; differ: `vidur.tool-run.json:c0`)" in report
    assert not list(tmp_path.glob("ci-timing-local-*"))  # clones and caches removed


def test_unavailable_install_and_no_result_are_recorded_with_reasons(tmp_path, repo):
    result, doc, report = local(tmp_path, repo, runners(tmp_path, "broken", "empty"), "--passes", "1")
    assert result.exit_code == 0, result.output
    (broken,) = jobs_of(doc, "broken")
    assert broken["tool"] is None and broken["conclusion"] == "unavailable"
    assert broken["install_path"]["kind"] == "unavailable" and "--install-only failed" in broken["install_path"]["reason"]
    assert "no wheel of fake-tool" in broken["install_path"]["reason"] or "Session broken" in broken["install_path"]["reason"]
    assert [s["conclusion"] for s in broken["steps"]] == ["success", "success", "failure"]
    (empty,) = jobs_of(doc, "empty")
    assert empty["conclusion"] == "failure" and empty["install_path"]["kind"] == "unavailable"
    assert "no ok case in 0 case(s)" in empty["install_path"]["reason"]
    assert {u["name"] for u in doc["unmapped_jobs"]} == {"broken", "empty"}  # no tool pattern: counted, never dropped


def test_a_step_past_the_timeout_is_killed_and_named(tmp_path, repo):
    result, doc, _ = local(tmp_path, repo, runners(tmp_path, "slow"), "--passes", "1", "--timeout", "3")
    assert result.exit_code == 0, result.output
    (job,) = jobs_of(doc, "slow")
    assert job["conclusion"] == "failure" and job["steps"][-1]["conclusion"] == "failure"
    assert job["steps"][-1]["seconds"] < 30


def test_reused_build_is_copied_from_its_build_json_never_timed(tmp_path, repo):
    cache = tmp_path / "mtap-cache"
    build = cache / "faketool" / "abc123"
    build.mkdir(parents=True)
    (build / "build.json").write_text(json.dumps({"version": "git:abc123", "built_at": "2026-12-01T14:00:00Z", "build_seconds": 575.3,
                                                  "verify": {"case": "ref", "metric": "cycles", "expected": 7, "got": 7, "ok": True}}))
    result, doc, report = local(tmp_path, repo, runners(tmp_path, "zigzag", reuse_build="faketool", install="source-build"), "--passes", "1",
                                env={"MTAP_CACHE_DIR": str(cache)})
    assert result.exit_code == 0, result.output
    (job,) = jobs_of(doc, "zigzag")
    assert job["reused_build"] == {"path": "<mtap cache>/faketool/abc123", "version": "git:abc123", "built_at": "2026-12-01T14:00:00Z",
                                   "build_seconds": 575.3, "verify": "ref: cycles 7 (expected 7)"}
    assert job["install_path"]["kind"] == "source-build"
    assert "575 (reused build `git:abc123` of 2026-12-01T14:00:00Z; verified ref: cycles 7 (expected 7))" in report


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "expected a non-empty JSON list"),
        ('[{"session": "zigzag"}]', "field [0].job: expected a non-empty string"),
        ('[{"session": "zigzag", "job": "zigzag", "install": "conda"}]', "field [0].install: got 'conda'"),
        ('[{"session": "zigzag", "job": "zigzag", "colour": 1}]', "field [0].colour: unknown key"),
    ],
)
def test_bad_runners_file_is_one_line_exit_2_nothing_written(tmp_path, repo, content, message):
    path = tmp_path / "runners.json"
    path.write_text(content)
    result, doc, report = local(tmp_path, repo, str(path))
    assert result.exit_code == 2 and message in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and doc is None and report is None


def test_not_measured_is_recorded_without_a_number_and_unknown_sessions_refused(tmp_path, repo):
    spec = runners(tmp_path, "zigzag", "vidur")
    result, _, _ = local(tmp_path, repo, spec, "--not-measured", "astra=no build")
    assert result.exit_code == 2 and "astra: no such runner session" in result.stderr
    result, doc, report = local(tmp_path, repo, spec, "--passes", "1", "--not-measured", "vidur=needs a CUDA GPU")
    assert result.exit_code == 0, result.output
    assert doc["source"]["not_measured"] == [{"session": "vidur", "reason": "needs a CUDA GPU"}]
    assert [j["name"] for r in doc["runs"] for j in r["jobs"]] == ["zigzag"]
    assert "| vidur | 0 | – | – | – | – | – | not measured: needs a CUDA GPU | – |" in report
    assert "Not measured locally (in no local document, so no number): analytical, astra-sim, groundtruth, neusight, nn-meter, timeloop." in report


def test_not_a_git_repository_is_one_line(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    result, doc, _ = local(tmp_path, plain, runners(tmp_path, "zigzag"))
    assert result.exit_code == 2 and "not a git repository" in result.stderr and doc is None


def test_recorded_commands_name_no_machine_path(tmp_path, repo):
    """The pass's folders and the measured repository are written as labels, never as this machine's paths."""
    result, doc, _report = local(tmp_path, repo, runners(tmp_path, "zigzag"), "--passes", "1")
    assert result.exit_code == 0, result.output
    commands = [a for run in doc["runs"] for job in run["jobs"] for step in job["steps"] for a in step["command"]]
    assert "<pass>/clone" in commands and "<repository>" in commands
    assert not [a for a in commands if a.startswith("/") or str(tmp_path) in a]
    assert str(tmp_path) not in json.dumps(doc["source"])
