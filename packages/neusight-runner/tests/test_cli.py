"""The runner contract: exit codes, one-line errors, the keep policy, --jobs, --shard, modes."""

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_neusight_runner.cli import main
from mtap_schemas.kinds import Exit


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("Error")]


def test_help_and_version():
    r = run("--help")
    assert r.exit_code == 0 and "Artifact mode" in r.output and "Live mode" in r.output
    assert "neusight-runner run --artifact-dir" in r.output and "packages/README.md" in r.output
    assert run("--version").output.startswith("neusight-runner, version 2.1.0")
    run_help = run("run", "--help").output
    for offered in (
        "--tool-path",
        "MTAP_NEUSIGHT_PATH",
        "--artifact-dir",
        "--neusight-python",
        "--timeout",
        "--keep-raw",
        "--jobs",
        "--shard",
        "--resume",
        "--overwrite",
    ):
        assert offered in run_help
    assert "--neusight-dir" not in run_help  # the old name is a hidden alias
    cases_help = run("cases", "--help").output
    assert "--artifact-dir" in cases_help and "--tool-path" not in cases_help and "--output" not in cases_help


def test_artifact_run_writes_valid_deterministic_document(mini, tmp_path, data_dir):
    out = tmp_path / "out"
    r1 = run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, "--jobs", "1")
    assert r1.exit_code == 0, r1.output
    doc1 = ms.read_tool_run(out / "neusight.tool-run.json")
    assert (doc1["tool"]["name"], doc1["tool"]["backend"], doc1["tool"]["version"]) == ("neusight", "artifact", None)
    assert doc1["tool"]["location"] == "artifact (outside the repository)" and str(tmp_path) not in json.dumps(doc1)
    assert len(doc1["cases"]) == 4 and {c["status"] for c in doc1["cases"]} == {"ok"}
    r2 = run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, "--jobs", "2")
    assert r2.exit_code == 0, r2.output
    doc2 = ms.read_tool_run(out / "neusight.tool-run.json")
    doc1, doc2 = ms.canonical(doc1), ms.canonical(doc2)
    doc1.pop("invocation"), doc2.pop("invocation")
    assert doc1 == doc2  # --jobs 2 gives the document --jobs 1 gives


def test_shards_partition_the_cases_and_merge_to_the_whole_run(mini, tmp_path, data_dir):
    whole = run("run", "--artifact-dir", mini, "--output", tmp_path / "whole", "--data-dir", data_dir, "--jobs", "1")
    assert whole.exit_code == 0, whole.output
    merged = []
    for k in (1, 2, 3):
        r = run("run", "--artifact-dir", mini, "--output", tmp_path / "s", "--data-dir", data_dir, "--shard", f"{k}/3", "--jobs", "1")
        assert r.exit_code == 0, r.output
        merged += ms.read_tool_run(tmp_path / "s" / f"neusight.shard-{k}-of-3.tool-run.json")["cases"]
    assert sorted(merged, key=lambda c: c["id"]) == ms.read_tool_run(tmp_path / "whole" / "neusight.tool-run.json")["cases"]
    lines = [run("cases", "--data-dir", data_dir, "--shard", f"{k}/3").output.splitlines() for k in (1, 2, 3)]
    assert sorted(sum(lines, [])) == sorted(run("cases", "--data-dir", data_dir).output.splitlines()) and len(sum(lines, [])) == 32


def test_cases_verb_prints_json_lines(mini, data_dir):
    r = run("cases", "--artifact-dir", mini, "--data-dir", data_dir, "--limit", "2")
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert len(lines) == 2 and lines[0]["key"] == "bert-large.model.b8.s512.fp32.eager-attn"
    r = run("cases", "--data-dir", data_dir)
    assert len(r.output.splitlines()) == 32


def test_unknown_device_exits_2_with_one_line(mini, tmp_path, data_dir):
    (mini / "results/prediction/Imaginary_GPU/neusight").mkdir(parents=True)
    r = run("run", "--artifact-dir", mini, "--output", tmp_path / "o", "--data-dir", data_dir)
    assert r.exit_code == Exit.USER_ERROR
    assert r.output.strip().count("\n") == 0 and "Imaginary_GPU" in r.output and "unknown device" in r.output
    assert not list((tmp_path / "o").glob("*.json"))


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"gpus": ["x"]}, "field (document): unexpected field(s): 'gpus'"),
        ({"methods": ["oracle"]}, "field methods[0]: got 'oracle'"),
        ({"batch": [8]}, "field batch: applies to live mode only"),
        ({"modes": "inf"}, "field modes: got str 'inf', expected array"),
        ({"batch": [0]}, "field batch[0]"),
    ],
)
def test_bad_config_exits_2_with_one_line(mini, tmp_path, data_dir, body, expected):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(body))
    r = run("run", "--artifact-dir", mini, "--config", cfg, "--output", tmp_path / "o", "--data-dir", data_dir)
    assert r.exit_code == Exit.USER_ERROR and expected in r.output and r.output.count("\n") == 1, r.output
    assert str(cfg) in r.output and not list((tmp_path / "o").glob("*.json"))


def test_config_selects_devices(mini, tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"devices": ["NVIDIA_L4"], "methods": ["neusight"]}))
    r = run("cases", "--artifact-dir", mini, "--config", cfg, "--data-dir", data_dir)
    assert [json.loads(x)["hardware"] for x in r.output.splitlines()] == ["NVIDIA_L4"]


def test_non_utf8_config_and_catalog_are_one_line(mini, tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    cfg.write_bytes(b'{"devices": ["NVIDIA_\xff"]}')
    r = run("run", "--artifact-dir", mini, "--config", cfg, "--output", tmp_path / "o", "--data-dir", data_dir)
    assert r.exit_code == Exit.USER_ERROR and "not UTF-8" in r.output and r.output.count("\n") == 1, r.output
    bad = tmp_path / "data"
    shutil.copytree(data_dir / "hardware", bad / "hardware")
    path = bad / "hardware" / "hardware.json"
    path.write_bytes(path.read_bytes().replace(b'"H100-SXM5-80GB"', b'"H100-SXM5-80GB\xfe"', 1))
    r = run("run", "--artifact-dir", mini, "--output", tmp_path / "o", "--data-dir", bad)
    assert r.exit_code == Exit.USER_ERROR and "hardware.json" in r.output and "not UTF-8" in r.output and r.output.count("\n") == 1


def test_both_modes_is_a_usage_error(mini, tmp_path, data_dir):
    for alias in ("--tool-path", "--neusight-dir"):
        r = run("run", "--artifact-dir", mini, alias, tmp_path, "--data-dir", data_dir, "--output", tmp_path / "o")
        assert r.exit_code == Exit.USER_ERROR and "not both" in r.output and len(error_lines(r.output)) == 1


def test_missing_artifact_dir_exits_2(tmp_path, data_dir):
    r = run("run", "--artifact-dir", tmp_path / "nope", "--output", tmp_path / "o", "--data-dir", data_dir)
    assert r.exit_code == Exit.USER_ERROR and "artifact folder not found" in r.output


def test_probes_that_select_no_cases_leave_the_document(mini, tmp_path, data_dir):
    out = tmp_path / "o"
    assert run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, "--jobs", "1").exit_code == 0
    before = (out / "neusight.tool-run.json").read_bytes()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"models": ["gpt9_huge"]}))
    for probe, needle in ((["--limit", "0"], "--limit"), (["--config", cfg], "selects no cases"), (["--shard", "7/5"], "--shard")):
        r = run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, *probe)
        assert r.exit_code == Exit.USER_ERROR and len(error_lines(r.output)) == 1 and needle in r.output, (probe, r.output)
    assert (out / "neusight.tool-run.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["neusight.tool-run.json"]


def test_a_run_whose_every_case_fails_keeps_the_better_document(mini, tmp_path, data_dir):
    out = tmp_path / "o"
    assert run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, "--jobs", "1").exit_code == 0
    before = (out / "neusight.tool-run.json").read_bytes()
    for label in (mini / "label").rglob("*.json"):  # every label now holds a latency of 0: no APE can be computed
        label.write_text(json.dumps({"num_layer": 24, "e2e_latency": 0}))
    r = run("run", "--artifact-dir", mini, "--output", out, "--data-dir", data_dir, "--jobs", "1")
    assert r.exit_code == Exit.KEPT_EXISTING, r.output
    assert (out / "neusight.tool-run.json").read_bytes() == before
    refused = ms.read_tool_run(out / "neusight.refused-fewer-ok.json")
    assert {(c["status"], c["error"]["kind"]) for c in refused["cases"]} == {("failed", "invalid-value")}
    fresh = run("run", "--artifact-dir", mini, "--output", tmp_path / "fresh", "--data-dir", data_dir, "--jobs", "1")
    assert fresh.exit_code == Exit.ALL_FAILED, fresh.output


def test_unwritable_output_fails_before_any_work(mini, tmp_path, data_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = run("run", "--artifact-dir", mini, "--output", blocker / "o", "--data-dir", data_dir)
    assert r.exit_code == Exit.USER_ERROR and len(error_lines(r.output)) == 1 and "output" in r.output
    assert "pairs" not in r.output  # nothing was re-scored


def test_live_without_checkout_writes_unavailable_cases(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("MTAP_NEUSIGHT_PATH", raising=False)
    monkeypatch.delenv("MTAP_NEUSIGHT_ARTIFACT", raising=False)
    r = run("run", "--output", tmp_path, "--data-dir", data_dir, "--limit", "3", "--jobs", "1")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "neusight-live.tool-run.json")
    assert [c["status"] for c in doc["cases"]] == ["unavailable"] * 3
    assert doc["cases"][0]["error"]["kind"] == "checkout-missing" and "sitar-lab/NeuSight" in doc["cases"][0]["error"]["message"]
    assert doc["tool"]["location"] == "no checkout given" and doc["tool"]["version"] is None


def test_shared_artifact_end_to_end(shared_neusight, tmp_path, data_dir):
    r = run("run", "--artifact-dir", shared_neusight, "--output", tmp_path, "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "neusight.tool-run.json")
    assert len(doc["cases"]) == 346 and {c["status"] for c in doc["cases"]} == {"ok"}
    assert doc["tool"]["location"] == "../shared/neusight" or doc["tool"]["location"].startswith("neusight")
    assert "NVIDIA_H100_80GB_HBM3    neusight   34 pairs      7.61%" in r.output


def test_live_config_for_neusights_own_configurations(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    for body, expected in (
        ({"neusight_tags": ["switchxl4-inf-512-1"]}, "maps onto no mtap workload"),
        ({"neusight_tags": ["bert_large-512-8"]}, "field neusight_tags[0]"),
        ({"neusight_devices": ["NVIDIA_L4"]}, "'neusight_tags' is a dependency of 'neusight_devices'"),
        ({"neusight_tags": ["bert_large-inf-512-8"], "batch": [1]}, "field batch: not used with neusight_tags"),
        ({"methods": ["habitat"]}, "field methods: got 'habitat', live mode runs one of neusight, roofline"),
    ):
        cfg.write_text(json.dumps(body))
        r = run("cases", "--config", cfg, "--data-dir", data_dir)
        assert r.exit_code == Exit.USER_ERROR and expected in r.output and r.output.count("\n") == 1, r.output
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "neusight_devices": ["NVIDIA_L4", "NVIDIA_H100_80GB_HBM3"]}))
    r = run("cases", "--config", cfg, "--data-dir", data_dir)
    assert [json.loads(x)["id"] for x in r.output.splitlines()] == [
        "live:H100-SXM5-80GB:neusight:bert_large-inf-512-8",
        "live:H100-SXM5-80GB:roofline:bert_large-inf-512-8",
        "live:NVIDIA_L4:neusight:bert_large-inf-512-8",
        "live:NVIDIA_L4:roofline:bert_large-inf-512-8",
    ]


def test_command_line_mode_wins_over_the_other_modes_env(mini, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MTAP_NEUSIGHT_PATH", str(tmp_path / "some-checkout"))
    r = run("run", "--artifact-dir", mini, "--data-dir", data_dir, "--output", tmp_path / "a", "--jobs", "1")
    assert r.exit_code == 0 and (tmp_path / "a" / "neusight.tool-run.json").is_file()
    monkeypatch.setenv("MTAP_NEUSIGHT_ARTIFACT", str(mini))
    r = run("run", "--data-dir", data_dir, "--output", tmp_path / "b")
    assert r.exit_code == Exit.USER_ERROR and "not both" in r.output
    r = run("run", "--tool-path", tmp_path / "co", "--data-dir", data_dir, "--output", tmp_path / "c", "--limit", "1", "--jobs", "1")
    assert r.exit_code == 0 and (tmp_path / "c" / "neusight-live.tool-run.json").is_file()


def test_console_script_error_is_one_line_without_traceback(tmp_path, data_dir):
    """A real process, where a traceback would really show."""
    cfg = tmp_path / "c.json"
    cfg.write_bytes(b"\xff{}")
    proc = subprocess.run(
        [sys.executable, "-m", "mtap_neusight_runner.cli", "cases", "--config", str(cfg), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == Exit.USER_ERROR
    assert proc.stderr.strip().splitlines() == [f"Error: {cfg}: not UTF-8 text (byte 0)"] and proc.stdout == ""
