"""vidur-runner w5-keys: VIDUR's predicted time of the ground truth's static W5 batches (issue 30).

The committed document (data/evaluation/vidur/vidur-w5-keys.tool-run.json) is checked against the
ground truth's keys and against its own kept VIDUR outputs; one case is run again for real (skipped
where vidur is not importable)."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO

import mtap_schemas as ms
from mtap_schemas.kinds import Exit
from mtap_vidur_runner import w5keys
from mtap_vidur_runner.cli import main

DOC = REPO / "data" / "evaluation" / "vidur" / "vidur-w5-keys.tool-run.json"
GROUNDTRUTH = {
    "H100-SXM5-80GB": REPO / "data" / "evaluation" / "groundtruth" / "h100-x1.tool-run.json",
    "H200-SXM-141GB": REPO / "data" / "evaluation" / "groundtruth" / "h200-x1.tool-run.json",
}


def _static_keys(path: Path, hardware: str) -> set[str]:
    doc = ms.read_tool_run(path)
    return {
        c["key"]
        for c in doc["cases"]
        if c["hardware"] == hardware and c["status"] == "ok" and c["key"].startswith(("llama2-7b.prefill.", "llama2-7b.decode."))
    }


@pytest.fixture(scope="module")
def doc() -> dict:
    return ms.read_tool_run(DOC)


@pytest.mark.parametrize("hardware", sorted(GROUNDTRUTH))
def test_case_keys_are_the_ground_truths(hardware, doc):
    planned = {c.key for c in w5keys.build_cases() if c.hardware == hardware}
    assert len(planned) == 23
    assert planned == _static_keys(GROUNDTRUTH[hardware], hardware)
    assert {c["key"] for c in doc["cases"] if c["hardware"] == hardware} == planned


def test_parameters_name_the_batch_composition():
    by_key = {c.key: c for c in w5keys.build_cases() if c.hardware == "H200-SXM-141GB"}
    p = by_key["llama2-7b.prefill.b1.t512.fp16"].parameters()
    assert (p["batch_composition"], p["batch_requests"], p["batch_q_tokens_each"], p["batch_kv_tokens_each"]) == ("p512x512", 1, 512, 512)
    d = by_key["llama2-7b.decode.b16.kv1024.fp16"]
    p = d.parameters()
    # KV - 1 prompt tokens: VIDUR counts its prefill's output token as processed, so KV are cached at the decode
    assert (p["trace_requests"], p["trace_prompt_tokens"], p["trace_output_tokens"]) == (16, 1023, 2)
    assert (p["batch_composition"], p["batch_requests"], p["batch_q_tokens_each"], p["batch_kv_tokens_each"]) == ("d16x1025", 16, 1, 1025)
    assert p["kv"] == 1024 and "decode batch" in p["batch_read"]


def test_committed_cases_are_vidurs_kept_batches(doc, tmp_path):
    """Every committed value is the batch_execution_time of the one batch of its composition in its kept outputs."""
    assert doc["tool"]["name"] == "vidur" and doc["tool"]["version"] == "0.0.26"
    planned = {c.id: c for c in w5keys.build_cases()}
    assert len(doc["cases"]) == len(planned) == 46
    for case in doc["cases"]:
        assert case["status"] == "ok", case["error"]
        c = planned[case["id"]]
        assert case["independence"]["class"] == "calibrated-separately"
        assert f"data/profiles/vidur/{c.device}/" in case["independence"]["what"]
        assert case["parameters"]["batch_composition"] == c.composition()
        folder = tmp_path / c.slug
        folder.mkdir()
        for art in case["artifacts"]:
            path = REPO / art["path"]
            assert ms.sha256_file(path) == art["sha256"]
            (folder / path.name.removesuffix(".xz")).write_bytes(lzma.decompress(path.read_bytes()))
        batch, n = w5keys.find_batch(c, folder)
        assert batch.id == case["parameters"]["batch_id"] and n == case["parameters"]["simulation_batches"]
        (m,) = case["metrics"]
        assert (m["name"], m["unit"], m["kind"], m["timing"]) == ("latency", "ms", "prediction", "simulated")
        assert m["value"] == round(batch.predicted_s * 1e3, 6) > 0


def test_another_composition_is_not_found(doc, tmp_path):
    case = next(c for c in doc["cases"] if c["key"] == "llama2-7b.decode.b4.kv512.fp16" and c["hardware"] == "H100-SXM5-80GB")
    for art in case["artifacts"]:
        path = REPO / art["path"]
        (tmp_path / path.name.removesuffix(".xz")).write_bytes(lzma.decompress(path.read_bytes()))
    w5keys.find_batch(w5keys.KeyCase("H100-SXM5-80GB", "decode", 4, 512), tmp_path)
    with pytest.raises(w5keys.CompositionError, match="formed 0 batches of composition d8x513"):
        w5keys.find_batch(w5keys.KeyCase("H100-SXM5-80GB", "decode", 8, 512), tmp_path)


def test_unknown_key_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["w5-keys", "--key", "llama2-7b.decode.b3.kv512.fp16", "--output", str(tmp_path / "out")])
    assert r.exit_code == Exit.USER_ERROR and "not a key of w5-keys" in r.output


def test_config_is_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    r = CliRunner().invoke(main, ["w5-keys", "--config", str(cfg), "--output", str(tmp_path / "out")])
    assert r.exit_code == Exit.USER_ERROR and "w5-keys has no config" in r.output
    assert not (tmp_path / "out" / "vidur-w5-keys.tool-run.json").exists()


def test_a_gpu_without_a_profile_and_a_python_without_vidur_give_unavailable_cases(tmp_path):
    """No profile for the H100 (an empty data folder): profile-missing; no vidur at --tool-path: package-missing.
    Both in plan order, nothing run, no machine path in the document."""
    import shutil
    import venv

    data = tmp_path / "data"
    for sub in ("workloads", "hardware"):
        (data / sub).mkdir(parents=True)
        shutil.copyfile(REPO / "data" / sub / f"{sub}.json", data / sub / f"{sub}.json")
    planned = [c.id for c in w5keys.build_cases() if c.hardware == "H100-SXM5-80GB"][:3]
    base = ["w5-keys", "--hardware", "H100-SXM5-80GB", "--limit", "3", "--cache-dir", str(tmp_path / "cache")]
    r = CliRunner().invoke(main, [*base, "--data-dir", str(data), "--output", str(tmp_path / "a")])
    assert r.exit_code == Exit.OK, r.output
    cases = ms.read_tool_run(tmp_path / "a" / "vidur-w5-keys.tool-run.json")["cases"]
    assert [c["id"] for c in cases] == planned
    assert {(c["status"], c["error"]["kind"]) for c in cases} == {("unavailable", "profile-missing")}
    assert "h100/meta-llama/Llama-2-7b-hf" in cases[0]["error"]["message"] and str(tmp_path) not in json.dumps(cases)
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    r = CliRunner().invoke(main, [*base, "--tool-path", str(env), "--output", str(tmp_path / "b")])
    assert r.exit_code == Exit.OK, r.output
    doc = ms.read_tool_run(tmp_path / "b" / "vidur-w5-keys.tool-run.json")
    assert [c["id"] for c in doc["cases"]] == planned and doc["tool"]["version"] is None
    assert {(c["status"], c["error"]["kind"]) for c in doc["cases"]} == {("unavailable", "package-missing")}
    assert "pip install vidur==0.0.26" in doc["cases"][0]["error"]["message"]
    assert doc["tool"]["location"] == "python -m vidur.main (--tool-path)"


def test_one_case_through_vidur_reproduces_the_committed_value(doc, tmp_path):
    """A cold predictor cache trained from the committed H100 profile, then the decode b2 x kv512 key."""
    pytest.importorskip("vidur")
    key = "llama2-7b.decode.b2.kv512.fp16"
    committed = next(c for c in doc["cases"] if c["key"] == key and c["hardware"] == "H100-SXM5-80GB")
    args = [
        "w5-keys",
        "--hardware",
        "H100-SXM5-80GB",
        "--key",
        key,
        "--data-dir",
        str(REPO / "data"),
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--jobs",
        "1",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == Exit.OK, r.output
    (case,) = ms.read_tool_run(tmp_path / "out" / "vidur-w5-keys.tool-run.json")["cases"]
    assert case["id"] == committed["id"]
    assert case["status"] == "ok", case["error"]
    assert case["metrics"] == committed["metrics"]
    assert case["parameters"] == committed["parameters"]
