"""The real simulator (vidur 0.0.26, offline) on a small case from the committed H100 profile."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, REPO

from mtap_vidur_runner import parse
from mtap_vidur_runner.cli import main

pytest.importorskip("vidur")


def test_small_sarathi_case_runs_and_is_deterministic(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"num_requests": 20, "qps": [2], "schedulers": ["sarathi"], "hardware": ["H100-SXM5-80GB"]}))
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        ["run", "--config", str(cfg), "--data-dir", str(REPO / "data"), "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--keep-outputs", str(tmp_path / "keep")],
    )
    assert r.exit_code == 0, r.output
    import mtap_schemas as ms

    doc = ms.read(out / "vidur.tool-run.json", "tool-run")
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
    assert {a["path"].rsplit("/", 1)[-1] for a in case["artifacts"]} == {"request_metrics.csv.xz", "batch_metrics.csv.xz", "decode_token_execution_plus_preemption_time.csv.xz"}
