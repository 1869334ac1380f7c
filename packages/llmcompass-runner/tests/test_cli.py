"""The runner contract: bad config -> exit 2 one line; no tool -> unavailable records naming
`llmcompass-runner setup`; --limit; fp32 unsupported; a crashing or hanging tool -> failed, named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import config, invoke
from test_hardware import synthetic_template

from mtap_llmcompass_runner.tool import REQUIRED


def doc(out: Path) -> dict:
    return json.loads((out / "llmcompass.tool-run.json").read_text())


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "setup" in r.output and "heuristic-GPU" in r.output
    assert invoke("--version").exit_code == 0


@pytest.mark.parametrize(
    "cfg, field",
    [({"bogus": 1}, "bogus"), ({"hardware": ["A100-SXM4-80GB"]}, "hardware"), ({"include": ["nothing.*"]}, "selects no cases")],
)
def test_bad_config_exits_2_with_one_line(tmp_path, cfg, field):
    r = invoke("run", "--config", config(tmp_path, cfg), "--output", tmp_path / "out")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and field in lines[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "out" / "llmcompass.tool-run.json").exists()


def test_cases_limit():
    r = invoke("cases", "--limit", "3")
    assert r.exit_code == 0
    rows = [json.loads(ln) for ln in r.output.splitlines()]
    assert [x["key"] for x in rows] == [f"llama2-7b.prefill.b1.t{t}.fp16" for t in (128, 256, 512)]
    assert len(invoke("cases").output.splitlines()) == 2 * 39


def test_no_tool_gives_unavailable_records_naming_setup(tmp_path):
    out = tmp_path / "out"
    r = invoke("run", "--limit", "2", "--output", out)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    d = doc(out)
    assert len(d["cases"]) == 2
    for c in d["cases"]:
        assert c["status"] == "unavailable" and c["error"]["kind"] == "checkout-missing"
        assert "llmcompass-runner setup" in c["error"]["message"]


def test_tool_path_that_is_not_llmcompass(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("run", "--limit", "1", "--tool-path", tmp_path / "empty", "--output", tmp_path / "out")
    assert r.exit_code == 0
    c = doc(tmp_path / "out")["cases"][0]
    assert c["status"] == "unavailable" and "not an LLMCompass source tree" in c["error"]["message"]


def fake_tree(root: Path, dse: str) -> Path:
    """A folder with LLMCompass's layout whose design_space_exploration/dse.py is ``dse`` (to test failures)."""
    for rel in REQUIRED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    for pkg in ("software_model", "design_space_exploration", "hardware_model"):
        (root / pkg / "__init__.py").write_text("")
    (root / "configs/GA100.json").write_text(json.dumps(synthetic_template()))
    (root / "design_space_exploration/dse.py").write_text(dse)
    return root


def test_fp32_cases_are_unsupported_without_running_the_tool(tmp_path):
    tree = fake_tree(tmp_path / "tree", "raise SystemExit('must not run')\n")
    cfg = config(tmp_path, {"include": ["*.fp32"], "hardware": ["H200-SXM-141GB"]})
    r = invoke("run", "--config", cfg, "--tool-path", tree, "--output", tmp_path / "out", "--jobs", "1")
    assert r.exit_code == 0, r.output
    cases = doc(tmp_path / "out")["cases"]
    assert len(cases) == 8 and {c["status"] for c in cases} == {"unsupported"}
    assert "FP32" in cases[0]["error"]["message"]


def test_a_crashing_tool_is_a_failed_case(tmp_path):
    tree = fake_tree(tmp_path / "tree", "raise RuntimeError('kaputt')\n")
    cfg = config(tmp_path, {"include": ["llama2-7b.decode.b1.kv512.fp16"], "hardware": ["H100-SXM5-80GB"]})
    r = invoke("run", "--config", cfg, "--tool-path", tree, "--output", tmp_path / "out", "--jobs", "1")
    assert r.exit_code == 3, r.output  # every case failed
    c = doc(tmp_path / "out")["cases"][0]
    assert c["status"] == "failed" and c["error"]["kind"] == "tool-crashed" and "kaputt" in c["error"]["message"]


def test_a_hanging_tool_is_killed_at_the_timeout(tmp_path):
    tree = fake_tree(tmp_path / "tree", "import time\ntime.sleep(60)\n")
    cfg = config(tmp_path, {"include": ["llama2-7b.decode.b1.kv512.fp16"], "hardware": ["H100-SXM5-80GB"]})
    r = invoke("run", "--config", cfg, "--tool-path", tree, "--output", tmp_path / "out", "--jobs", "1", "--timeout", "2")
    assert r.exit_code == 3, r.output
    c = doc(tmp_path / "out")["cases"][0]
    assert c["status"] == "failed" and c["error"]["kind"] == "timeout"
