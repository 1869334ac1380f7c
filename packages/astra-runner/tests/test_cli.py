"""The CLI: the case matrix, where the tool comes from, the no-tool and bad-input paths, and the
real binary on ASTRA-sim's published reference example (skipped without one)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REAL_BIN, config, fake_bin, invoke

import mtap_schemas as ms
from mtap_astra_runner import __version__

REFERENCE = {"studies": ["reference"]}


def test_help_says_what_runs_and_where_the_tool_comes_from():
    res = invoke("--help")
    assert res.exit_code == 0
    for needle in ("ASTRA-sim", "--tool-path", "--image", "MTAP_ASTRA_SIM_PATH", "astra-runner setup"):
        assert needle in res.output
    run_help = invoke("run", "--help").output
    for option in ("--config", "--output", "--tool-path", "--image", "--timeout", "--keep-raw", "--jobs", "--shard",
                   "--overwrite", "--resume", "--compute-source", "--image-bin-dir"):
        assert option in run_help
    for hidden in ("--binary", "--keep-logs"):
        assert hidden not in run_help
    cases_help = invoke("cases", "--help").output
    for option in ("--config", "--data-dir", "--limit", "--shard"):
        assert option in cases_help
    for absent in ("--output", "--tool-path", "--image", "--timeout", "--jobs", "--keep-raw"):
        assert absent not in cases_help  # options that do nothing for `cases` are not offered
    assert invoke("--version").output.strip().endswith(__version__)


def test_cases_matrix(data_dir):
    res = invoke("cases", "--data-dir", data_dir)
    assert res.exit_code == 0
    planned = [json.loads(line) for line in res.output.splitlines()]
    ids = [c["id"] for c in planned]
    assert len(ids) == len(set(ids)) == 373
    keyed = [c for c in planned if c["key"]]
    # one keyed (hardware-as-is, Congestion_Aware) case per W6 key and per DDP workload/npus
    assert len(keyed) == 48 + 5
    assert len({(c["workload"], c["hardware"], c["key"]) for c in keyed}) == len(keyed)
    assert {"all-reduce.n8.1mib", "resnet50.ddp-step.n8.b32.fp32", "all-to-all.n16.1gib"} <= {c["key"] for c in keyed}
    assert all(c["hardware"] == ("HGX-H100x16" if c["parameters"].get("npus") == 16 else "HGX-H100x8") for c in planned)


def _ids(*args) -> list[str]:
    res = invoke("cases", *args)
    assert res.exit_code == 0, res.output
    return [json.loads(line)["id"] for line in res.output.splitlines()]


def test_shards_partition_the_cases_and_keep_derived_cases_with_their_inputs():
    everything = _ids()
    shards = [_ids("--shard", f"{k}/3") for k in (1, 2, 3)]
    assert sorted(i for s in shards for i in s) == sorted(everything)  # a partition: no case twice, none lost
    for s in shards:
        assert s == [i for i in everything if i in set(s)]  # plan order inside a shard
        for i in s:
            if i.startswith("scaling/"):  # its two input cases are in the same shard
                assert sum(1 for j in s if j.startswith("w6/" if "resnet50" not in i else "w3/")) >= 2
    assert _ids("--shard", "2/3") == shards[1]  # deterministic


def test_limit_and_derived_cases_bring_their_inputs(tmp_path):
    assert _ids("--limit", "2") == _ids()[:2]
    ids = _ids("--config", config(tmp_path, {"include": ["scaling/all-reduce.1mib.*/congestion-aware"]}))
    assert ids == ["w6/all-reduce.n2.1mib/switch.ring/congestion-aware", "w6/all-reduce.n8.1mib/switch.ring/congestion-aware",
                   "scaling/all-reduce.1mib.n2-n8/congestion-aware"]
    scaling = _ids("--config", config(tmp_path, {"studies": ["scaling"]}))
    assert len(scaling) == 26 + 2 * 26 and scaling[-1].startswith("scaling/")


def test_no_tool_writes_honest_unavailable_cases(tmp_path, data_dir):
    res = invoke("run", "--output", tmp_path, "--data-dir", data_dir, "--jobs", "1")
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "astra-sim.tool-run.json")
    statuses = {c["status"] for c in doc["cases"]}
    assert statuses == {"unavailable", "unsupported"}
    for c in doc["cases"]:
        if c["status"] == "unavailable":
            assert c["error"]["kind"] == "binary-missing"
            assert "astra-runner setup" in c["error"]["message"] and "--tool-path" in c["error"]["message"]
    unsupported = [c for c in doc["cases"] if c["status"] == "unsupported"]
    assert unsupported and all(c["parameters"]["algorithm"] == "doubleBinaryTree" for c in unsupported)
    assert doc["tool"]["version"] is None
    # deterministic apart from wall_clock and the command line
    again = invoke("run", "--output", tmp_path / "again", "--data-dir", data_dir, "--jobs", "1")
    assert again.exit_code == 0
    other = ms.read_tool_run(tmp_path / "again" / "astra-sim.tool-run.json")
    doc["invocation"] = other["invocation"] = None
    assert ms.canonical(doc) == ms.canonical(other)


def test_folder_without_binaries_is_unavailable_naming_it(tmp_path, data_dir):
    empty = tmp_path / "bin"
    empty.mkdir()
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--binary", empty,
                 "--config", config(tmp_path, REFERENCE))
    assert res.exit_code == 0, res.output
    (case,) = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")["cases"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "binary-missing"
    assert "<external>/bin" in case["error"]["message"] and str(tmp_path) not in case["error"]["message"]


def test_image_without_docker_daemon_is_unavailable(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("MTAP_ASTRA_SIM_PATH", str(tmp_path / "does-not-matter"))  # --image beats the environment
    res = invoke("run", "--output", tmp_path, "--data-dir", data_dir, "--image", "astra-sim:none",
                 "--name", "img", "--config", config(tmp_path, REFERENCE))
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "img.tool-run.json")
    assert doc["tool"]["backend"] == "docker" and doc["tool"]["location"] == "astra-sim:none"
    (case,) = doc["cases"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "docker-unavailable"


def test_tool_path_and_image_together_is_a_user_error(tmp_path, data_dir):
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--image", "x", "--tool-path", tmp_path)
    assert res.exit_code == 2 and "--image-bin-dir" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()


ECHO = "#!/bin/sh\necho 'sys[0] finished, 10 cycles, exposed communication 10 cycles.'\n"


def test_tool_lookup_order(tmp_path, data_dir, monkeypatch):
    """--tool-path, then (--image, then) the environment (new name before the old), then a cached setup build."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MTAP_CACHE_DIR", str(cache))
    from mtap_astra_runner import setup

    build = cache / "astra-sim" / setup.COMMIT
    fake_bin(build / "bin", ECHO + "# cached\n")
    (build / "build.json").write_text(json.dumps({"version": f"git:{setup.COMMIT}", "verify": {"ok": True}}))
    env_new = fake_bin(tmp_path / "new", ECHO + "# new\n")
    env_old = fake_bin(tmp_path / "old", ECHO + "# old\n")
    flag = fake_bin(tmp_path / "flag", ECHO + "# flag\n")
    cfg = config(tmp_path, REFERENCE)

    def used(*extra) -> dict:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        res = invoke("run", "--output", out, "--data-dir", data_dir, "--config", cfg, *extra)
        assert res.exit_code == 3, res.output  # one NPU of 8 reported: parse-failed
        return ms.read_tool_run(out / "astra-sim.tool-run.json")["tool"]

    def sha(folder):
        return ms.sha256_file(folder / "AstraSim_Analytical_Congestion_Aware")

    tool = used()
    assert sha(build / "bin") in tool["location"] and tool["version"] == f"git:{setup.COMMIT}"
    monkeypatch.setenv("ASTRA_SIM_BIN", str(env_old))
    assert sha(env_old) in used()["location"]
    monkeypatch.setenv("MTAP_ASTRA_SIM_PATH", str(env_new))
    assert sha(env_new) in used()["location"]
    assert sha(flag) in used("--tool-path", flag)["location"]
    assert sha(flag) in used("--binary", flag)["location"]  # the old flag name, hidden


def test_unknown_binary_path_is_exit_2(tmp_path, data_dir):
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--tool-path", tmp_path / "nope")
    assert res.exit_code == 2 and "no such file" in res.output and "--tool-path" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()


@pytest.mark.parametrize("cfg,needle", [
    ({"studies": ["nope"]}, "field studies[0]"),
    ({"binaries": "congestion-aware"}, "field binaries"),
    ({"colour": 1}, "colour"),
    ({"timeout_s": -1}, "field timeout_s"),
    ({"timeout_s": True}, "field timeout_s"),
    ({"compute_source": "guess"}, "field compute_source"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, data_dir, cfg, needle):
    path = config(tmp_path, cfg)
    for verb in ("run", "cases"):
        args = ["--output", tmp_path / "out"] if verb == "run" else []
        res = invoke(verb, *args, "--data-dir", data_dir, "--config", path)
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and needle in res.output and "sel.json" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()


def test_non_utf8_config_is_one_line_exit_2(tmp_path, data_dir):
    path = tmp_path / "sel.json"
    path.write_bytes(b'{"include": ["w6/\xff*"]}')
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir, "--config", path)
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.output.count("\n") == 1 and "sel.json" in res.output and "UTF-8" in res.output


def test_config_selecting_nothing_is_exit_2(tmp_path, data_dir):
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data_dir,
                 "--config", config(tmp_path, {"include": ["W99*"]}))
    assert res.exit_code == 2 and "selects no cases" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()


def test_catalog_problems_are_exit_2_naming_file_and_field(tmp_path, data_dir):
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", tmp_path)
    assert res.exit_code == 2 and "hardware.json: not found" in res.output
    data = tmp_path / "data"
    shutil.copytree(data_dir / "workloads", data / "workloads")
    (data / "hardware").mkdir()
    catalog = json.loads((data_dir / "hardware" / "hardware.json").read_text())
    catalog["hardware"] = [h for h in catalog["hardware"] if h["id"] != "HGX-H100x16"]
    (data / "hardware" / "hardware.json").write_text(json.dumps(catalog))
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", data)
    assert res.exit_code == 2, res.output
    assert "hardware.json: field hardware: no entry with id 'HGX-H100x16'" in res.output
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()


@pytest.mark.skipif(not REAL_BIN, reason="set MTAP_ASTRA_SIM_PATH (or ASTRA_SIM_BIN) to a built ASTRA-sim analytical binary or folder")
def test_reference_reproduces_57426_cycles(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MTAP_ASTRA_SIM_PATH", REAL_BIN)
    res = invoke("run", "--output", tmp_path, "--data-dir", data_dir, "--config", config(tmp_path, REFERENCE))
    assert res.exit_code == 0, res.output
    (case,) = ms.read_tool_run(tmp_path / "astra-sim.tool-run.json")["cases"]
    assert case["status"] == "ok", case["error"]
    metrics = {m["name"]: m for m in case["metrics"]}
    assert metrics["cycles"]["value"] == 57426
    assert metrics["latency"]["value"] == 57426 and metrics["latency"]["unit"] == "ns"
    assert case["parameters"]["reproduces_expected"] is True
