from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
from mtap_groundtruth.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_help_and_version() -> None:
    r = invoke("--help")
    assert r.exit_code == 0 and "CUDA-graph" in r.output and "Example" in r.output
    assert invoke("--version").output.strip().endswith("0.4.0")


def test_cases_prints_json_lines(data_dir: Path) -> None:
    r = invoke("cases", "--data-dir", str(data_dir), "--limit", "3")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["key"] for row in rows] == ["resnet50.conv1.b1.fp32", "resnet50.conv1.b1.fp16", "resnet50.conv1.b32.fp32"]
    assert rows[0]["hardware"] == "H100-SXM5-80GB" and rows[0]["workload"] == "W1"
    assert rows[0]["id"] == "H100-SXM5-80GB:resnet50.conv1.b1.fp32"


def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"iters": 0}')
    r = invoke("run", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(tmp_path / "out"), "--device", "cpu")
    assert r.exit_code == 2
    assert "field iters" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob("*"))  # the kit checked the folder is writable; nothing written into it
    cfg.write_text('{"includes": ["x"]}')
    r = invoke("cases", "--config", str(cfg), "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "'includes' was unexpected" in r.output and len(r.output.strip().splitlines()) == 1


def test_unknown_hardware_and_missing_catalog_exit_2(tmp_path: Path, data_dir: Path) -> None:
    r = invoke("cases", "--hardware", "TPU-v9", "--data-dir", str(data_dir))
    assert r.exit_code == 2 and "TPU-v9" in r.output
    r = invoke("cases", "--data-dir", str(tmp_path))
    assert r.exit_code == 2 and "hardware.json" in r.output


def test_cpu_run_writes_a_valid_honest_document(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include": ["resnet50.conv1.b1.fp32", "resnet50.layer.fc.b1.fp32", "bert-base.model.b1.s128.fp32",
                                           "gpt2.model.b1.s128.fp32", "llama2-7b.prefill.b1.t128.fp16", "llama2-7b.decode.b2.kv512.fp16"],
                               "iters": 3, "warmup": 1}))
    r = invoke("run", "--device", "cpu", "--tiny", "--config", str(cfg), "--data-dir", str(data_dir), "--output", str(tmp_path), "--name", "cpu")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "cpu.tool-run.json")
    assert doc["tool"]["name"] == "groundtruth" and doc["tool"]["backend"] == "measured"
    assert doc["environment"]["gpu"] is None and "torch" in doc["environment"]["packages"]
    assert [c["status"] for c in doc["cases"]] == ["ok"] * 6
    for c in doc["cases"]:
        assert c["hardware"] == "cpu" and c["parameters"]["device"] == "cpu" and c["parameters"]["tiny"] is True
        assert c["id"] == f"cpu:{c['key']}"
        timings = {m.get("timing") for m in c["metrics"] if m["unit"] == "ms"}
        assert timings == {"eager-end-to-end"}  # no CUDA graphs on a CPU: never labelled device time
        names = {m["name"] for m in c["metrics"]}
        assert {"latency", "latency_p10", "latency_p90", "flops"} <= names
        assert next(m for m in c["metrics"] if m["name"] == "latency_samples")["value"] == 3
    fc = next(c for c in doc["cases"] if c["key"] == "resnet50.layer.fc.b1.fp32")
    assert {"forward_backward_latency", "forward_backward_flops"} <= {m["name"] for m in fc["metrics"]}
    assert doc["invocation"]["config"]["sha256"] == ms.sha256_file(cfg)


@pytest.mark.skipif(os.environ.get("MTAP_SKIP_SLOW") == "1", reason="spawns two processes")
def test_multi_suite_on_gloo_with_two_processes(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include": ["all-reduce.n2.1mib", "all-gather.n2.1mib"], "iters": 3, "warmup": 1}))
    r = invoke("run", "--suite", "multi", "--device", "cpu", "--gpus", "2", "--config", str(cfg), "--data-dir", str(data_dir),
               "--output", str(tmp_path), "--name", "multi")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "multi.tool-run.json")
    for c in doc["cases"]:
        assert c["status"] == "ok", c["error"]
        by = {(m["name"], m.get("timing")): m["value"] for m in c["metrics"]}
        lat = by[("latency", "eager-end-to-end")]
        alg, bus = by[("algbw", "eager-end-to-end")], by[("busbw", "eager-end-to-end")]
        assert alg == pytest.approx((1 << 20) / (lat / 1e3), rel=1e-4)
        factor = 1.0 if c["key"].startswith("all-reduce") else 0.5
        assert bus == pytest.approx(alg * factor, rel=1e-6)
        assert c["parameters"]["ranks"] == 2 and c["parameters"]["nccl_nvls_enable"] == "0"


def test_auto_device_refuses_a_machine_without_cuda(tmp_path: Path, data_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = invoke("run", "--data-dir", str(data_dir), "--output", str(tmp_path / "out"), "--limit", "1")
    assert r.exit_code == 2 and "--device cpu --tiny" in r.output
    assert not list((tmp_path / "out").glob("*"))  # the kit checked the folder is writable; nothing written into it


def test_hardware_ids_follow_the_card_never_a_neighbours() -> None:
    from mtap_groundtruth.env import hardware_for

    assert hardware_for("NVIDIA H200", "single") == "H200-SXM-141GB"
    assert hardware_for("NVIDIA H200", "multi") == "HGX-H200x8"
    assert hardware_for("NVIDIA H100 80GB HBM3", "single") == "H100-SXM5-80GB"
    assert hardware_for("NVIDIA H100 80GB HBM3", "multi") == "HGX-H100x8"
    assert hardware_for("NVIDIA A100-SXM4-80GB", "single") == "A100-SXM4-80GB"
    assert hardware_for("NVIDIA A100-SXM4-80GB", "multi") is None  # no A100 node in the catalog
    for other in ("NVIDIA H200 NVL", "NVIDIA H100 PCIe", "NVIDIA L40S", "NVIDIA A100 80GB PCIe"):  # other boards: no id
        assert hardware_for(other, "single") is None and hardware_for(other, "multi") is None


def test_every_card_id_is_in_the_catalog(data_dir: Path) -> None:
    from mtap_groundtruth.env import CARDS

    ids = {h["id"] for h in json.loads((data_dir / "hardware" / "hardware.json").read_text())["hardware"]}
    for _, single, multi in CARDS:
        assert single in ids and (multi is None or multi in ids)


def test_cpu_run_refuses_a_gpu_hardware_id(tmp_path: Path, data_dir: Path) -> None:
    r = invoke("run", "--device", "cpu", "--tiny", "--hardware", "H200-SXM-141GB", "--limit", "1", "--data-dir", str(data_dir),
               "--output", str(tmp_path / "out"))
    assert r.exit_code == 2 and "'cpu' only" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob("*"))  # the kit checked the folder is writable; nothing written into it


def _cut_after(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Make the n-th measured case raise KeyboardInterrupt (as if the machine were taken away)."""
    from mtap_groundtruth import measure

    real, calls = measure.measure, []

    def measure_then_die(bench, case):
        calls.append(case.key)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(bench, case)

    monkeypatch.setattr(measure, "measure", measure_then_die)
    return calls


def test_a_run_cut_off_midway_leaves_a_valid_checkpoint_and_resumes(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _cut_after(monkeypatch, 3)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include": ["resnet50.layer.fc.*", "vgg16.layer.classifier-6.*"], "iters": 2, "warmup": 0}))
    args = ["run", "--device", "cpu", "--tiny", "--config", str(cfg), "--checkpoint-seconds", "0.000001",
            "--data-dir", str(data_dir), "--output", str(tmp_path), "--name", "cut"]
    r = invoke(*args)
    assert r.exit_code == 130 and "--resume" in r.output
    doc = ms.read_tool_run(tmp_path / "cut.tool-run.json")
    assert [c["status"] for c in doc["cases"]] == ["ok", "ok", "failed", "failed", "failed", "failed"]
    assert {c["error"]["kind"] for c in doc["cases"][2:]} == {"timeout"} and "cut off" in doc["cases"][2]["error"]["message"]
    assert (tmp_path / ".cut.progress.jsonl").exists()
    # --resume measures only the four cases not finished; the two finished ones are taken as they were
    calls.extend(["resumed"] * 100)  # past the cut: the wrapped measure no longer raises
    r = invoke(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert len(calls) == 3 + 100 + 4 and "2 of 6 cases already measured" in r.output
    final = ms.read_tool_run(tmp_path / "cut.tool-run.json")
    assert [c["status"] for c in final["cases"]] == ["ok"] * 6
    assert final["cases"][:2] == doc["cases"][:2]
    assert not (tmp_path / ".cut.progress.jsonl").exists()


def test_every_case_failed_exits_3_and_keeps_the_better_document(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mtap_groundtruth import measure

    base = ["run", "--device", "cpu", "--tiny", "--limit", "2", "--iters", "2", "--warmup", "0", "--data-dir", str(data_dir),
            "--output", str(tmp_path), "--name", "gt"]
    assert invoke(*base).exit_code == 0
    good = (tmp_path / "gt.tool-run.json").read_bytes()

    def broken(bench, case):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(measure, "measure", broken)
    r = invoke(*base)
    assert r.exit_code == 4 and "kept" in r.output  # fewer ok cases than the document on disk: kept, not replaced
    assert (tmp_path / "gt.tool-run.json").read_bytes() == good
    refused = ms.read_tool_run(tmp_path / "gt.refused-fewer-ok.json")
    assert {c["error"]["kind"] for c in refused["cases"]} == {"measurement-failed"}
    r = invoke(*base, "--name", "fresh")
    assert r.exit_code == 3 and "every case failed" in r.output


def test_floor_suite_on_cpu(tmp_path: Path, data_dir: Path) -> None:
    r = invoke("run", "--suite", "floor", "--device", "cpu", "--iters", "3", "--data-dir", str(data_dir), "--output", str(tmp_path),
               "--name", "floor")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "floor.tool-run.json")
    by = {c["key"]: c for c in doc["cases"]}
    assert set(by) == {f"floor.{k}.{m}" for k in ("empty-kernel", "fill-1", "add-1", "mm-16") for m in ("eager", "graph")} | {
        "floor.empty-kernel.eager-sync"}
    for key, c in by.items():
        if key.endswith(".graph"):  # no CUDA graphs on a CPU: unsupported, never a number
            assert c["status"] == "unsupported" and c["metrics"] == []
            continue
        assert c["status"] == "ok" and c["hardware"] == "cpu"
        m = {x["name"]: x for x in c["metrics"]}
        assert m["latency"]["timing"] == "eager-end-to-end" and m["latency_samples"]["value"] == (30 if "sync" in key else 3)
        assert m["latency_p10"]["value"] <= m["latency"]["value"] <= m["latency_p90"]["value"]
        assert c["parameters"]["launches_per_rep"] == (1 if "sync" in key else 2000)


def test_floor_timing_counts_every_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from mtap_groundtruth import floor

    calls = []
    s = floor.FloorSettings(device=torch.device("cpu"), reps=4, launches=10, warmup=2)
    samples = floor.eager_samples(lambda: calls.append(1), s)
    assert len(samples) == 4 and len(calls) == 2 + 4 * 10 and all(x >= 0 for x in samples)
    with pytest.raises(NotImplementedError):
        floor.measure(floor.Case("floor.add-1.graph", "W1", "floor", "floor", {"kernel": "add-1", "mode": "graph"}), s)


@pytest.mark.skipif(os.environ.get("MTAP_SKIP_SLOW") == "1", reason="starts two processes")
def test_ranks_past_their_timeout_are_killed_and_named(tmp_path: Path) -> None:
    from mtap_groundtruth import multi

    with pytest.raises(multi.RankError) as info:  # real processes: importing torch alone takes longer than 0.2 s
        multi.run_ranks(2, [], str(tmp_path / "r.json"), 1, 0, True, False, False, str(tmp_path), timeout=0.2)
    assert info.value.kind == "timeout" and "ran past 0.2 s" in str(info.value)


def test_run_has_no_jobs_option() -> None:
    r = invoke("run", "--help")
    assert r.exit_code == 0 and "--jobs" in r.output and "No --jobs" in r.output.replace("\n", " ")
    assert invoke("run", "--jobs", "2").exit_code == 2
