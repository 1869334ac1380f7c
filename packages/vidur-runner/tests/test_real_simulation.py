"""The real simulator (vidur 0.0.26, offline) on small cases from the committed H100 profile.

One predictor cache is trained (cold, ~2 min) for the whole session and shared by every test."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, H100_PROFILE, MODEL, REPO

import mtap_schemas as ms
from mtap_schemas.kinds import Exit
from mtap_vidur_runner import parse
from mtap_vidur_runner.cli import main

pytest.importorskip("vidur")

DATA = REPO / "data"
SMALL = {"num_requests": 20, "qps": [2], "schedulers": ["sarathi"], "hardware": ["H100-SXM5-80GB"]}


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vidur-cache")


def _config(tmp_path: Path, **fields) -> Path:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**SMALL, **fields}))
    return cfg


def _runner(*args: str) -> subprocess.CompletedProcess:
    """The console entry point as a real process (forkserver workers, real exit status)."""
    return subprocess.run([sys.executable, "-m", "mtap_vidur_runner.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=1200)


def test_small_sarathi_case_runs_and_is_deterministic(tmp_path, cache):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--config", str(_config(tmp_path)), "--data-dir", str(DATA), "--output", str(out),
                                  "--cache-dir", str(cache), "--keep-raw", str(tmp_path / "keep")])
    assert r.exit_code == Exit.OK, r.output
    doc = ms.read_tool_run(out / "vidur.tool-run.json")
    (case,) = doc["cases"]
    assert case["status"] == "ok", case["error"]
    assert case["deterministic"] is True
    m = {x["name"]: x["value"] for x in case["metrics"]}
    assert m["requests"] == 20 and m["batches"] > 20
    assert 0 < m["ttft_p50"] < m["e2e_latency_p50"] < 60
    assert 0 < m["tpot_p50"] < 1 and m["mean_batch_size"] >= 1
    # the same numbers as the fixture captured from `vidur-runner run` with this config (README there)
    want = {x["name"]: x["value"] for x in parse.parse_output(FIXTURES / "vidur-0.0.26-h100-sarathi-qps2-n20")}
    for k, v in want.items():
        assert m[k] == pytest.approx(v, rel=1e-3), k
    assert {a["path"].rsplit("/", 1)[-1] for a in case["artifacts"]} == {"request_metrics.csv.xz", "batch_metrics.csv.xz",
                                                                        "decode_token_execution_plus_preemption_time.csv.xz", "batch_composition.csv.xz"}
    # the launcher's per-request batch composition adds up to vidur's own per-batch totals
    keep = tmp_path / "keep" / "h100-sarathi-qps2"
    comp = [line.split(",") for line in lzma.decompress((keep / "batch_composition.csv.xz").read_bytes()).decode().splitlines()[1:]]
    batches = [line.split(",") for line in lzma.decompress((keep / "batch_metrics.csv.xz").read_bytes()).decode().splitlines()[1:]]
    per_batch: dict[str, list[int]] = {}
    for bid, _rid, q, kv, done, is_prefill, _pre, arrived in comp:
        assert int(kv) == int(done) + int(q) and float(arrived) >= 0  # sarathi records every KV entry
        t = per_batch.setdefault(bid, [0, 0, 0])
        t[0] += int(q)
        t[1] += int(q) if is_prefill == "1" else 0
        t[2] += 1
    assert len(batches) == m["batches"]
    for bid, n_tok, n_pre, _n_dec, size, _t in batches:
        assert per_batch[bid] == [int(float(n_tok)), int(float(n_pre)), int(float(size))], bid
    assert doc["tool"]["location"] == "python -m vidur.main (runner environment)"
    assert str(tmp_path) not in json.dumps(doc)


def test_jobs_2_gives_the_same_document_as_jobs_1(tmp_path, cache):
    cfg = _config(tmp_path, num_requests=10, qps=[1, 2, 4], determinism_check=False)
    docs = {}
    for jobs in ("1", "2"):
        r = _runner("run", "--config", str(cfg), "--output", str(tmp_path / jobs), "--cache-dir", str(cache), "--jobs", jobs)
        assert r.returncode == Exit.OK, r.stderr
        doc = ms.canonical(ms.read_tool_run(tmp_path / jobs / "vidur.tool-run.json"))
        assert [c["status"] for c in doc["cases"]] == ["ok"] * 3
        doc.pop("invocation")
        docs[jobs] = doc
    assert docs["1"] == docs["2"]


def _broken_profile(tmp_path: Path) -> Path:
    """A profile folder vidur accepts as complete but cannot train on (columns it needs are absent)."""
    root = tmp_path / "broken"
    folder = root / "h100" / MODEL
    folder.mkdir(parents=True)
    for name in ("mlp", "attention"):
        text = lzma.decompress((H100_PROFILE / f"{name}.csv.xz").read_bytes()).decode().splitlines()
        header = text[0].split(",")
        (folder / f"{name}.csv").write_text(",".join(h for h in header if "time_stats" not in h) + "\n1\n")
    return root


def test_a_run_whose_every_case_fails_never_replaces_the_committed_document(tmp_path, cache):
    out = tmp_path / "out"
    out.mkdir()
    committed = DATA / "evaluation" / "vidur" / "vidur.tool-run.json"
    shutil.copyfile(committed, out / "vidur.tool-run.json")
    args = ["run", "--config", str(_config(tmp_path, determinism_check=False)), "--profiles", str(_broken_profile(tmp_path)),
            "--output", str(out), "--cache-dir", str(cache)]
    r = _runner(*args)
    assert r.returncode == Exit.KEPT_EXISTING, r.stderr
    assert (out / "vidur.tool-run.json").read_bytes() == committed.read_bytes()
    refused = ms.read_tool_run(out / "vidur.refused-fewer-ok.json")
    (case,) = refused["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "tool-crashed", case["error"]
    assert "Traceback" not in r.stderr and "kept" in r.stderr
    r = _runner(*args, "--overwrite")
    assert r.returncode == Exit.ALL_FAILED, r.stderr
    assert ms.read_tool_run(out / "vidur.tool-run.json")["cases"][0]["status"] == "failed"


def test_timeout_kills_vidur_and_is_recorded_as_timeout(tmp_path, cache):
    out = tmp_path / "out"
    r = _runner("run", "--config", str(_config(tmp_path, determinism_check=False)), "--output", str(out),
                "--cache-dir", str(cache), "--timeout", "0.5")
    assert r.returncode == Exit.ALL_FAILED, r.stderr
    (case,) = ms.read_tool_run(out / "vidur.tool-run.json")["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "timeout"
    assert "ran past 0.5 s" in case["error"]["message"]
    # nothing of vidur is left running (its whole process group was killed)
    left = subprocess.run(["pgrep", "-f", f"metrics_config_output_dir {tempfile.gettempdir()}/mtap-vidur-h100-sarathi-qps2-"],
                          capture_output=True, text=True)
    assert left.stdout.strip() == ""
