import json

from click.testing import CliRunner

import mtap_schemas as ms
from mtap_neusight_runner.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_and_version():
    r = run("--help")
    assert r.exit_code == 0 and "Artifact mode" in r.output and "Live mode" in r.output
    assert "neusight-runner run --artifact-dir" in r.output
    assert run("--version").output.startswith("neusight-runner, version ")


def test_artifact_run_writes_valid_deterministic_document(mini, tmp_path, data_dir):
    out = tmp_path / "out"
    r1 = run("run", "--artifact-dir", str(mini), "--output", str(out), "--data-dir", str(data_dir))
    assert r1.exit_code == 0, r1.output
    doc1 = ms.read(out / "neusight.tool-run.json", "tool-run")
    assert (doc1["tool"]["name"], doc1["tool"]["backend"], doc1["tool"]["version"]) == ("neusight", "artifact", None)
    assert len(doc1["cases"]) == 4
    run("run", "--artifact-dir", str(mini), "--output", str(out), "--data-dir", str(data_dir))
    doc2 = ms.read(out / "neusight.tool-run.json", "tool-run")
    assert ms.canonical(doc1) == ms.canonical(doc2)


def test_cases_verb_prints_json_lines(mini, data_dir):
    r = run("cases", "--artifact-dir", str(mini), "--data-dir", str(data_dir), "--limit", "2")
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert len(lines) == 2 and lines[0]["key"] == "bert-large.model.b8.s512.fp32"
    r = run("cases", "--data-dir", str(data_dir))
    assert len(r.output.splitlines()) == 32


def test_unknown_device_exits_2_with_one_line(mini, tmp_path, data_dir):
    (mini / "results/prediction/Imaginary_GPU/neusight").mkdir(parents=True)
    r = run("run", "--artifact-dir", str(mini), "--output", str(tmp_path / "o"), "--data-dir", str(data_dir))
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "Imaginary_GPU" in r.output and "unknown device" in r.output
    assert not (tmp_path / "o").exists()


def test_bad_config_exits_2(mini, tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    for body, expected in (({"gpus": ["x"]}, "field gpus: unknown field"),
                           ({"methods": ["oracle"]}, "field methods: got 'oracle'"),
                           ({"batch": [8]}, "field batch: applies to live mode only"),
                           ({"modes": "inf"}, "field modes: expected a non-empty list")):
        cfg.write_text(json.dumps(body))
        r = run("run", "--artifact-dir", str(mini), "--config", str(cfg), "--output", str(tmp_path / "o"), "--data-dir", str(data_dir))
        assert r.exit_code == 2 and expected in r.output and r.output.count("\n") == 1, r.output
    cfg.write_text(json.dumps({"devices": ["NVIDIA_L4"], "methods": ["neusight"]}))
    r = run("cases", "--artifact-dir", str(mini), "--config", str(cfg), "--data-dir", str(data_dir))
    assert [json.loads(x)["hardware"] for x in r.output.splitlines()] == ["NVIDIA_L4"]


def test_both_modes_is_a_usage_error(mini, tmp_path, data_dir):
    r = run("run", "--artifact-dir", str(mini), "--neusight-dir", str(tmp_path), "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "not both" in r.output


def test_missing_artifact_dir_exits_2(tmp_path, data_dir):
    r = run("run", "--artifact-dir", str(tmp_path / "nope"), "--output", str(tmp_path / "o"), "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "artifact folder not found" in r.output


def test_live_without_checkout_writes_unavailable_cases(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("MTAP_NEUSIGHT_PATH", raising=False)
    r = run("run", "--output", str(tmp_path), "--data-dir", str(data_dir), "--limit", "3")
    assert r.exit_code == 0, r.output
    doc = ms.read(tmp_path / "neusight-live.tool-run.json", "tool-run")
    assert [c["status"] for c in doc["cases"]] == ["unavailable"] * 3
    assert doc["cases"][0]["error"]["kind"] == "checkout-missing" and "sitar-lab/NeuSight" in doc["cases"][0]["error"]["message"]


def test_shared_artifact_end_to_end(shared_neusight, tmp_path, data_dir):
    r = run("run", "--artifact-dir", str(shared_neusight), "--output", str(tmp_path), "--data-dir", str(data_dir))
    assert r.exit_code == 0
    doc = ms.read(tmp_path / "neusight.tool-run.json", "tool-run")
    assert len(doc["cases"]) == 346
    assert "NVIDIA_H100_80GB_HBM3    neusight   34 pairs      7.61%" in r.output


def test_live_config_for_neusights_own_configurations(tmp_path, data_dir):
    cfg = tmp_path / "c.json"
    for body, expected in (({"neusight_tags": ["switchxl4-inf-512-1"]}, "maps onto no mtap workload"),
                           ({"neusight_tags": ["bert_large-512-8"]}, "expected <model>-<inf|train>"),
                           ({"neusight_devices": ["NVIDIA_L4"]}, "only used with neusight_tags"),
                           ({"neusight_tags": ["bert_large-inf-512-8"], "batch": [1]}, "field batch: not used with neusight_tags")):
        cfg.write_text(json.dumps(body))
        r = run("cases", "--config", str(cfg), "--data-dir", str(data_dir))
        assert r.exit_code == 2 and expected in r.output, r.output
    cfg.write_text(json.dumps({"neusight_tags": ["bert_large-inf-512-8"], "neusight_devices": ["NVIDIA_L4", "NVIDIA_H100_80GB_HBM3"]}))
    r = run("cases", "--config", str(cfg), "--data-dir", str(data_dir))
    assert [json.loads(x)["id"] for x in r.output.splitlines()] == [
        "live:H100-SXM5-80GB:neusight:bert_large-inf-512-8", "live:H100-SXM5-80GB:roofline:bert_large-inf-512-8",
        "live:NVIDIA_L4:neusight:bert_large-inf-512-8", "live:NVIDIA_L4:roofline:bert_large-inf-512-8"]


def test_command_line_mode_wins_over_the_other_modes_env(mini, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MTAP_NEUSIGHT_PATH", str(tmp_path / "some-checkout"))
    r = run("cases", "--artifact-dir", str(mini), "--data-dir", str(data_dir))
    assert r.exit_code == 0 and len(r.output.splitlines()) == 4
    monkeypatch.setenv("MTAP_NEUSIGHT_ARTIFACT", str(mini))
    r = run("cases", "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "not both" in r.output
