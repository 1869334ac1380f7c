"""The runner contract: cases, config errors (exit 2, one line, nothing written), shards, unavailable cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PKG, REPO

import mtap_schemas as ms
from mtap_schemas.kinds import Exit
from mtap_vidur_runner.cli import main

DATA = REPO / "data"


def _data(tmp: Path) -> Path:
    d = tmp / "data"
    for sub in ("workloads", "hardware"):
        (d / sub).mkdir(parents=True)
        shutil.copyfile(DATA / sub / f"{sub}.json", d / sub / f"{sub}.json")
    return d


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_help_says_what_runs_and_where_the_tool_comes_from():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for needle in ("vidur", "0.0.26", "--tool-path", "data/profiles/vidur", "packages/README.md"):
        assert needle in text
    run_help = CliRunner().invoke(main, ["run", "--help"]).output
    assert "MTAP_VIDUR_PATH" in run_help and "--keep-raw" in run_help and "--timeout" in run_help
    assert "--keep-outputs" not in run_help and "--image" not in run_help
    cases_help = CliRunner().invoke(main, ["cases", "--help"]).output
    assert "--output" not in cases_help and "--jobs" not in cases_help


def test_cases_default_matrix():
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(DATA)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert len(lines) == 18  # 2 GPUs x 3 schedulers x 3 QPS
    assert [c["hardware"] for c in lines[:9]] == ["H100-SXM5-80GB"] * 9
    assert {(c["parameters"]["scheduler"], c["parameters"]["qps"]) for c in lines[:9]} == {(s, q) for s in ("vllm", "sarathi", "orca") for q in (1.0, 2.0, 4.0)}
    first = lines[0]
    assert first["id"] == "W5/H100-SXM5-80GB/vllm/qps=1" and first["key"] == "llama2-7b.serving.vllm.qps1.n500.fp16"
    p = first["parameters"]
    assert (p["num_requests"], p["min_tokens"], p["max_tokens"], p["prefill_to_decode_ratio"], p["seed"], p["sarathi_chunk_size"]) == (500, 128, 512, 20.0, 42, 512)
    assert len({c["id"] for c in lines}) == 18 and len({(c["hardware"], c["key"]) for c in lines}) == 18


def test_cases_config_and_limit(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"schedulers": ["orca"], "qps": [0.5, 3], "hardware": ["A100-SXM4-80GB"], "num_requests": 20}))
    r = CliRunner().invoke(main, ["cases", "--config", str(cfg), "--data-dir", str(DATA), "--limit", "1"])
    assert r.exit_code == 0, r.output
    (c,) = [json.loads(x) for x in r.output.splitlines()]
    assert c["id"] == "W5/A100-SXM4-80GB/orca/qps=0.5" and c["key"] == "llama2-7b.serving.orca.qps0_5.n20.fp16"


def test_shards_partition_the_cases():
    full = CliRunner().invoke(main, ["cases", "--data-dir", str(DATA)]).output.splitlines()
    parts = []
    for k in (1, 2, 3):
        r = CliRunner().invoke(main, ["cases", "--data-dir", str(DATA), "--shard", f"{k}/3"])
        assert r.exit_code == 0, r.output
        parts.append(r.output.splitlines())
    assert sorted(sum(parts, [])) == sorted(full) and sum(len(p) for p in parts) == len(full) == 18
    assert parts[0] == full[0::3]


def test_zero_planned_cases_is_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(DATA), "--output", str(out), "--shard", "19/20"])
    assert r.exit_code == Exit.USER_ERROR, r.output
    assert "selects no cases in shard 19/20" in _one_error_line(r)
    assert _nothing_written(out)
    r = CliRunner().invoke(main, ["run", "--data-dir", str(DATA), "--output", str(out), "--limit", "0"])
    assert r.exit_code == Exit.USER_ERROR and "--limit" in r.output


@pytest.mark.parametrize(
    "body, needle",
    [
        (b'{"qps": [0]}', "field qps[0]: 0 is less than or equal to the minimum of 0"),
        (b'{"schedulers": ["fcfs"]}', "field schedulers[0]: got 'fcfs', expected one of"),
        (b'{"num_requests": 1.5}', "field num_requests: got float 1.5"),
        (b'{"hardware": ["TPU-v9"]}', "field hardware: 'TPU-v9' is not an id in"),
        (b'{"hardware": ["HGX-H100x8"]}', "has no VIDUR device"),
        (b'{"speed": 1}', "'speed' was unexpected"),
        (b'{"min_tokens": 600}', "field min_tokens: expected min_tokens <= max_tokens"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{oops", "not valid JSON"),
        (b'{"seed": 1, "note": "\xff"}', "not UTF-8"),
    ],
)
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, body, needle):
    cfg = tmp_path / "bad.json"
    cfg.write_bytes(body)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--data-dir", str(DATA), "--output", str(out)])
    assert r.exit_code == Exit.USER_ERROR, r.output
    line = _one_error_line(r)
    assert line.startswith(f"Error: {cfg}") and needle in line, line
    assert _nothing_written(out)


def test_bad_catalog_and_tool_path(tmp_path):
    d = _data(tmp_path)
    catalog = json.loads((d / "workloads" / "workloads.json").read_text())
    catalog["workloads"] = [w for w in catalog["workloads"] if w["id"] != "W5"]
    (d / "workloads" / "workloads.json").write_text(json.dumps(catalog))
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(d)])
    assert r.exit_code == Exit.USER_ERROR
    assert "workloads.json: field workloads: expected an entry with id W5" in _one_error_line(r)
    (d / "hardware" / "hardware.json").write_bytes(b'{"hardware": "\xfe"}')
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(DATA), "--config", str(tmp_path / "nope.json")])
    assert r.exit_code == Exit.USER_ERROR and "nope.json: cannot read" in _one_error_line(r)
    shutil.copyfile(DATA / "workloads" / "workloads.json", d / "workloads" / "workloads.json")
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(d)])
    assert r.exit_code == Exit.USER_ERROR and "hardware.json: not UTF-8" in _one_error_line(r)
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(DATA), "--tool-path", str(tmp_path / "nope"), "--output", str(out)])
    assert r.exit_code == Exit.USER_ERROR and "--tool-path: no such file" in _one_error_line(r)
    assert _nothing_written(out)


def test_unwritable_output_fails_before_the_first_case(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    r = CliRunner().invoke(main, ["run", "--data-dir", str(DATA), "--output", str(blocker / "out"),
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == Exit.USER_ERROR, r.output
    assert "output folder" in _one_error_line(r)
    assert not (tmp_path / "cache").exists()  # nothing was set up, no case ran


def test_no_profiles_gives_unavailable_cases(tmp_path):
    data = _data(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(data), "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == Exit.OK, r.output
    doc = ms.read_tool_run(out / "vidur.tool-run.json")
    assert len(doc["cases"]) == 18
    for c in doc["cases"]:
        assert c["status"] == "unavailable" and c["error"]["kind"] == "profile-missing"
        dev = "h100" if c["hardware"].startswith("H100") else "a100"
        assert f"{dev}/meta-llama/Llama-2-7b-hf/attention.csv" in c["error"]["message"] and "--profiles DIR" in c["error"]["message"]
    assert doc["tool"]["version"] == "0.0.26"
    assert str(tmp_path) not in json.dumps(doc)  # no machine path in the document


def test_an_unavailable_run_never_replaces_a_document_with_results(tmp_path):
    """The committed document (9 ok cases) stays; the new one goes beside it (exit 4)."""
    out = tmp_path / "out"
    out.mkdir()
    committed = DATA / "evaluation" / "vidur" / "vidur.tool-run.json"
    shutil.copyfile(committed, out / "vidur.tool-run.json")
    r = CliRunner().invoke(main, ["run", "--data-dir", str(_data(tmp_path)), "--output", str(out),
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == Exit.KEPT_EXISTING, r.output
    assert (out / "vidur.tool-run.json").read_bytes() == committed.read_bytes()
    assert (out / "vidur.refused-fewer-ok.json").is_file() and "--overwrite" in r.output


def test_missing_vidur_gives_unavailable(tmp_path):
    """A python without vidur: every case unavailable, naming how to install it."""
    import venv

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data-dir", str(DATA), "--tool-path", str(env), "--output", str(out), "--limit", "2", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == Exit.OK, r.output
    doc = ms.read_tool_run(out / "vidur.tool-run.json")
    assert doc["tool"]["version"] is None
    assert {c["error"]["kind"] for c in doc["cases"]} == {"package-missing"}
    assert {c["status"] for c in doc["cases"]} == {"unavailable"}
    assert "pip install vidur==0.0.26" in doc["cases"][0]["error"]["message"]


def test_profile_refuses_unknown_model(tmp_path):
    r = CliRunner().invoke(main, ["profile", "--model", "acme/nothing", "--output-dir", str(tmp_path / "p")])
    assert r.exit_code == Exit.USER_ERROR
    line = _one_error_line(r)
    assert ("acme/nothing" in line) or ("torch: not installed" in line)
    assert not (tmp_path / "p").exists()


def test_committed_w5_h200_config_adds_qps8_and_the_h200():
    r = CliRunner().invoke(main, ["cases", "--data-dir", str(DATA), "--config", str(PKG / "config" / "w5-h200.json")])
    assert r.exit_code == Exit.OK, r.output
    cases = [json.loads(line) for line in r.output.splitlines()]
    assert len(cases) == 36 and len({c["id"] for c in cases}) == 36
    h200 = [c for c in cases if c["hardware"] == "H200-SXM-141GB"]
    assert sorted({c["parameters"]["qps"] for c in h200}) == [1.0, 2.0, 4.0, 8.0]
    assert {c["parameters"]["scheduler"] for c in h200} == {"vllm", "sarathi", "orca"}
    assert "W5/H200-SXM-141GB/sarathi/qps=8" in {c["id"] for c in h200}


def test_h200_device_sku_is_registered_in_the_real_vidur():
    """vidur 0.0.26 has no H200: the launcher's registration makes vidur's own ReplicaConfig and
    memory planner accept `h200` (140 GiB: a larger KV cache than the H100's 80)."""
    import subprocess
    import sys

    pytest.importorskip("vidur")
    from mtap_vidur_runner import simulate

    check = "import sys\nsku = sys.argv.pop(1)\n" + simulate.LAUNCHER_SKU + (
        "from vidur.config import ReplicaConfig, CacheConfig\n"
        "from vidur.utils.memory_planner import MemoryPlanner\n"
        "out = []\n"
        "for dev in ('h200', 'h100'):\n"
        "    rc = ReplicaConfig(model_name='meta-llama/Llama-2-7b-hf', device=dev, network_device='h100_pairwise_nvlink', tensor_parallel_size=1)\n"
        "    out.append((rc.device_config.total_memory_gb, MemoryPlanner(rc, CacheConfig()).get_max_kv_cache_size_in_tokens()))\n"
        "print(out)\n"
    )
    cmd = simulate.vidur_command(sys.executable, "h200", [])
    assert cmd[1] == "-c" and cmd[3:5] == ["h200:1000:140", "-"]
    res = subprocess.run([sys.executable, "-c", check, "h200:1000:140"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (h200_gb, h200_tokens), (h100_gb, h100_tokens) = eval(res.stdout.strip().splitlines()[-1])  # noqa: S307 - our own print
    assert (h200_gb, h100_gb) == (140, 80) and h200_tokens > 1.7 * h100_tokens  # 491,392 vs 270,208 tokens (weights take the same 13.5 GB of each)
    assert simulate.vidur_command("py", "h100", ["--x"]) == ["py", "-m", "vidur.main", "--x"]
    assert simulate.vidur_command("py", "h100", ["--x"], Path("c.csv"))[3:] == ["-", "c.csv", "--x"]
