"""The runner contract: cases, run, bad input, determinism, no files left behind, a missing GenZ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_genz_runner import __version__
from mtap_genz_runner.cli import main

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "data" / "evaluation" / "genz" / "genz.tool-run.json"
GENZ_TMP = Path("/tmp/genz")  # where GenZ writes its layer tables unless redirected


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def cli(*args, cwd=REPO):
    """The console entry point in a fresh interpreter (stdout and stderr apart)."""
    return subprocess.run(
        [sys.executable, "-m", "mtap_genz_runner.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def tree(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*")} if path.exists() else set()


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("mtap-genz-*")}


@pytest.mark.parametrize(
    "config, field",
    [
        ({"hardwre": ["H100-SXM5-80GB"]}, "field (document): unexpected field(s): 'hardwre'"),
        ({"hardware": ["A100-SXM4-80GB"]}, "field hardware[0]: got 'A100-SXM4-80GB', expected one of"),
        ({"include": "llama2-7b.*"}, "field include: got str"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, config, field):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(config))
    for verb in (["cases"], ["run", "--output", tmp_path / "out"]):
        res = cli(*verb, "--config", bad)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}: {field}"), res.stderr
        assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_config_selecting_nothing_and_bad_data_dir_exit_2(tmp_path):
    none = tmp_path / "none.json"
    none.write_text(json.dumps({"include": ["resnet50.*"]}))
    res = cli("cases", "--config", none)
    assert res.returncode == 2 and res.stderr.strip() == f"Error: config {none}: selects no cases; nothing to run"
    res = cli("cases", "--data-dir", tmp_path / "nowhere")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"Error: {tmp_path / 'nowhere' / 'hardware' / 'hardware.json'}: cannot read")


def test_cases_prints_json_lines_and_limit(data_dir):
    res = cli("cases", "--data-dir", data_dir)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 78
    assert lines[0] == {
        "hardware": "H100-SXM5-80GB",
        "id": "H100-SXM5-80GB:llama2-7b.prefill.b1.t128.fp16",
        "key": "llama2-7b.prefill.b1.t128.fp16",
        "workload": "W5",
        "parameters": {"batch": 1, "dtype": "fp16", "model": "llama2-7b", "scope": "prefill", "tokens": 128},
    }
    limited = cli("cases", "--data-dir", data_dir, "--limit", "5")
    assert limited.returncode == 0 and limited.stdout.splitlines() == res.stdout.splitlines()[:5]
    assert cli("cases", "--data-dir", data_dir).stdout == res.stdout  # deterministic
    shards = [invoke("cases", "--data-dir", data_dir, "--shard", f"{k}/3").output.splitlines() for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(res.stdout.splitlines())
    assert cli("cases", "--limit", "0").returncode == 2


def test_version_and_help():
    assert invoke("--version").output.strip().endswith(__version__)
    out = invoke("run", "--help").output
    assert "--jobs" in out and "--tool-path" not in out and "--keep-raw" not in out


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory, data_dir):
    """The whole matrix run twice in this process (--jobs 1: GenZ imported once, ~0.1 s a case)."""
    out = tmp_path_factory.mktemp("run")
    before, temp_before = tree(GENZ_TMP), leftovers()
    docs = {}
    for name in ("a", "b"):
        res = invoke("run", "--data-dir", data_dir, "--output", out, "--name", name, "--jobs", "1")
        assert res.exit_code == 0, res.output
        docs[name] = ms.read_tool_run(out / f"{name}.tool-run.json")
    return {"docs": docs, "genz_tmp": (before, tree(GENZ_TMP)), "temp": (temp_before, leftovers()), "out": out}


def test_run_is_deterministic_and_valid(full_runs):
    a, b = full_runs["docs"]["a"], full_runs["docs"]["b"]
    assert json.dumps(a["cases"], sort_keys=True) == json.dumps(b["cases"], sort_keys=True)
    assert (
        a["tool"]
        == b["tool"]
        == {
            "name": "genz",
            "version": "0.0.16",
            "backend": "native",
            "location": "genz-llm 0.0.16 from PyPI (GenZ.version.__version__ 0.0.13)",
        }
    )
    assert a["runner"] == {"name": "genz-runner", "version": __version__}
    assert a["environment"]["packages"]["genz-llm"] == "0.0.16"
    counts = ms.toolrun.count_status(a["cases"])
    assert counts == {"ok": 54, "unsupported": 24}


def test_run_leaves_no_files(full_runs):
    before, after = full_runs["genz_tmp"]
    assert after == before, f"new files under {GENZ_TMP}: {sorted(after - before)[:5]}"
    t_before, t_after = full_runs["temp"]
    assert t_after == t_before
    names = sorted(p.name for p in full_runs["out"].iterdir())
    # the documents, and at most the kit's lock files beside them (no progress file once a run finished)
    assert [n for n in names if not n.startswith(".")] == ["a.tool-run.json", "b.tool-run.json"]
    assert set(n for n in names if n.startswith(".")) <= {".a.lock", ".b.lock"}


def test_committed_document_equals_a_fresh_run(full_runs):
    """data/evaluation/genz/genz.tool-run.json is what the runner gives now (only the hardware
    catalog's sha256 may differ, if data/hardware/hardware.json gained entries since)."""
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED} not present")
    committed = ms.read_tool_run(COMMITTED)

    def strip(cases):
        return [{**c, "artifacts": [a["path"] for a in c["artifacts"]]} for c in cases]

    assert strip(committed["cases"]) == strip(full_runs["docs"]["a"]["cases"])
    assert committed["tool"] == full_runs["docs"]["a"]["tool"]


def test_missing_genz_gives_unavailable_records(tmp_path, data_dir, monkeypatch):
    import mtap_genz_runner.cli as runner_cli

    for name in ("GenZ", "GenZ.version", "Systems", "Systems.system_configs"):
        monkeypatch.setitem(sys.modules, name, None)  # `import` of these now raises ImportError
    monkeypatch.setattr(runner_cli, "genz_version", lambda: None)
    res = invoke("run", "--data-dir", data_dir, "--output", tmp_path, "--limit", "4", "--jobs", "1")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    doc = ms.read_tool_run(tmp_path / "genz.tool-run.json")
    assert doc["tool"]["version"] is None and doc["tool"]["location"] == "genz-llm (not installed)"
    assert [c["status"] for c in doc["cases"]] == ["unavailable"] * 4
    assert {c["error"]["kind"] for c in doc["cases"]} == {"package-missing"}
    assert "install genz-llm==0.0.16" in doc["cases"][0]["error"]["message"]
    # ... and it never replaces a document with real results (exit 4, written beside it)
    if COMMITTED.is_file():
        keep = tmp_path / "keep"
        keep.mkdir()
        shutil.copyfile(COMMITTED, keep / "genz.tool-run.json")
        res = invoke("run", "--data-dir", data_dir, "--output", keep, "--limit", "4", "--jobs", "1")
        assert res.exit_code == 4, res.output
        assert ms.read_tool_run(keep / "genz.tool-run.json")["cases"] == ms.read_tool_run(COMMITTED)["cases"]
