"""The multi suite's hardware ids come from the GPU count (issue 25): a 1-GPU case under the GPU's id,
a multi-GPU case under the catalog's node of that GPU with this host's GPU count, never an 8-GPU id for
a 2-GPU host. CPU only: the host is simulated (torch.cuda's answers, nvidia-smi's rows) and the rank
processes are replaced by a stand-in that returns one ok case each; the real process groups are tested
on gloo in test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_groundtruth import cases, env, multi
from mtap_groundtruth.cli import main
from mtap_schemas import consume

H200, X2, HGX = "H200-SXM-141GB", "H200-SXM-141GB-x2-nvlink", "HGX-H200x8"


def _catalog(data_dir: Path) -> list[dict]:
    return ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]


def test_ids_follow_the_hosts_gpu_count(data_dir: Path) -> None:
    cat = _catalog(data_dir)
    assert multi.hardware_ids(cat, H200, host_gpus=2, gpus=2) == {1: H200, 0: X2}
    assert multi.hardware_ids(cat, H200, host_gpus=8, gpus=8) == {1: H200, 0: HGX}
    assert multi.hardware_ids(cat, "H100-SXM5-80GB", host_gpus=8, gpus=8) == {1: "H100-SXM5-80GB", 0: "HGX-H100x8"}
    # one GPU used: only the GPU's id, whatever the host has
    assert multi.hardware_ids(cat, H200, host_gpus=1, gpus=1) == {1: H200}
    assert multi.hardware_ids(cat, H200, host_gpus=2, gpus=1) == {1: H200}
    # the host named: its 1-GPU cases still go under the GPU
    assert multi.hardware_ids(cat, H200, host_gpus=2, gpus=1, requested=X2) == {1: H200, 0: X2}
    assert multi.hardware_ids(cat, H200, host_gpus=1, gpus=1, requested=H200) == {1: H200}
    plan = cases.plan("multi", 2)
    got = {c.key: multi.case_hardware(c, {1: H200, 0: X2}) for c in plan}
    assert got["resnet50.ddp-step.n1.b32.fp32"] == H200
    assert {hw for k, hw in got.items() if ".n2." in k} == {X2} and len(got) == 14


@pytest.mark.parametrize(("card", "host", "gpus", "requested", "message"), [
    (H200, 2, 2, HGX, "--hardware: HGX-H200x8 has 8 GPUs, this host has 2"),
    (H200, 2, 2, H200, "--hardware: H200-SXM-141GB is one GPU, the run uses 2 (--gpus)"),
    (H200, 8, 2, None, "--gpus: 2 of this host's 8"),
    (H200, 4, 4, None, "--hardware: the catalog has no node of 4 x H200-SXM-141GB"),
    ("H100-SXM5-80GB", 2, 2, None, "--hardware: the catalog has no node of 2 x H100-SXM5-80GB"),
    (H200, 2, 2, "HGX-H100x8", "--hardware: 'HGX-H100x8' is not a multi-GPU node of H200-SXM-141GB"),
])
def test_ids_that_would_misfile_are_refused_in_one_line(data_dir, card, host, gpus, requested, message) -> None:
    with pytest.raises(ValueError) as info:
        multi.hardware_ids(_catalog(data_dir), card, host_gpus=host, gpus=gpus, requested=requested)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_two_nodes_of_the_same_count_must_be_named(data_dir: Path) -> None:
    cat = _catalog(data_dir)
    twin = dict(next(h for h in cat if h["id"] == X2), id="H200-SXM-141GB-x2-pcie-bridge")
    with pytest.raises(ValueError, match="several nodes of 2 x H200-SXM-141GB .*H200-SXM-141GB-x2-nvlink"):
        multi.hardware_ids([*cat, twin], H200, host_gpus=2, gpus=2)
    assert multi.hardware_ids([*cat, twin], H200, host_gpus=2, gpus=2, requested=X2) == {1: H200, 0: X2}


@pytest.fixture
def two_h200(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """This process sees a host of two NVIDIA H200 (torch.cuda, nvidia-smi); the rank processes are a
    stand-in returning one ok case per planned case, under the id run_cases is given for its GPU count."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(env, "nvidia_smi", lambda: [{"name": "NVIDIA H200"}, {"name": "NVIDIA H200"}])
    monkeypatch.setattr(env, "packages", lambda device: {"torch": "2.11.0"})
    monkeypatch.setattr(env, "gpu_info", lambda device, used=1: {"name": "NVIDIA H200", "count": used})
    given: list[dict] = []

    def run_cases(todo, hardware, device, gpus, *args, **kwargs):
        given.append(hardware)
        out = []
        for c in todo:
            hw = multi.case_hardware(c, hardware)
            n = c.params["npus"]
            out.append(tr.ok(c.case_id(hw), workload=c.workload, hardware=hw, key=c.key,
                             parameters=dict(c.params, ranks=n), metrics=[tr.metric("latency", 1.0, "ms", "measurement")]))
        return out

    monkeypatch.setattr(multi, "run_cases", run_cases)
    return given


def _run(tmp_path: Path, data_dir: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--suite", "multi", "--data-dir", str(data_dir), "--output", str(tmp_path / "out"),
                                     "--name", "h200-x2", *extra])


def test_a_two_gpu_h200_host_files_its_cases_by_gpu_count(tmp_path: Path, data_dir: Path, two_h200) -> None:
    r = _run(tmp_path, data_dir)
    assert r.exit_code == 0, r.output
    assert two_h200 == [{1: H200, 0: X2}]
    doc = ms.read_tool_run(tmp_path / "out" / "h200-x2.tool-run.json")
    by_key = {c["key"]: c for c in doc["cases"]}
    assert by_key["resnet50.ddp-step.n1.b32.fp32"]["hardware"] == H200
    assert by_key["resnet50.ddp-step.n1.b32.fp32"]["id"] == f"{H200}:resnet50.ddp-step.n1.b32.fp32"
    assert {c["hardware"] for k, c in by_key.items() if ".n2." in k} == {X2}
    # what consumers read back: nothing refused
    assert consume.gpu_mismatch(doc, consume.gpu_tokens(ms.read(data_dir / "hardware" / "hardware.json", "hardware"))) is None
    # naming the host gives the same document's ids
    r = _run(tmp_path / "b", data_dir, "--hardware", X2)
    assert r.exit_code == 0, r.output
    again = ms.read_tool_run(tmp_path / "b" / "out" / "h200-x2.tool-run.json")
    assert [(c["id"], c["hardware"]) for c in again["cases"]] == [(c["id"], c["hardware"]) for c in doc["cases"]]


@pytest.mark.parametrize(("args", "message"), [
    (("--hardware", HGX), "HGX-H200x8 has 8 GPUs, this host has 2"),
    (("--hardware", "HGX-H100x8"), "is not the GPU this machine has"),
    (("--hardware", H200), "H200-SXM-141GB is one GPU, the run uses 2"),
])
def test_a_misfiling_hardware_id_is_refused_and_nothing_is_written(tmp_path: Path, data_dir: Path, two_h200, args, message) -> None:
    r = _run(tmp_path, data_dir, *args)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert two_h200 == [] and not list((tmp_path / "out").glob("*.json"))


def test_cases_lists_one_gpu_cases_under_the_nodes_gpu(data_dir: Path) -> None:
    r = CliRunner().invoke(main, ["cases", "--suite", "multi", "--hardware", X2, "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert {(row["parameters"]["npus"], row["hardware"]) for row in rows} == {(1, H200), (2, X2)}
