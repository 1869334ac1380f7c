"""Consumers refuse a measurement whose GPU count is not its hardware id's (consume.gpu_count_mismatch,
through gpu_tokens' ``devices`` and iter_tool_runs), and the committed documents pass the check."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import consume

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "data" / "hardware" / "hardware.json"
EVALUATION = REPO / "data" / "evaluation"

#: a small catalog: one H200, its 2-GPU direct-NVLink host, its 8-GPU HGX node, and a CPU target
SMALL = {"schema": "hardware", "schema_version": "1.0.0", "hardware": [
    {"id": "H200-SXM-141GB", "name": "NVIDIA H200 SXM 141GB", "kind": "gpu", "devices": 1},
    {"id": "H200-SXM-141GB-x2-nvlink", "name": "Two H200 by NVLink", "kind": "gpu-node", "devices": 2, "device": "H200-SXM-141GB"},
    {"id": "HGX-H200x8", "name": "NVIDIA HGX H200 8-GPU", "kind": "gpu-node", "devices": 8, "device": "H200-SXM-141GB"},
    {"id": "xeon", "name": "a CPU", "kind": "edge-cpu", "devices": 1},
]}


def _doc(cases: list[tuple[str, str, dict]], gpu_count: int | None, backend: str = "measured") -> dict:
    gpu = {"name": "NVIDIA H200", "count": gpu_count} if gpu_count is not None else None
    run = tr.ToolRun("groundtruth", "1", tr.Tool("groundtruth", "1", backend, "torch 2.11"), argv=["run"],
                     environment={"python": "3", "platform": "linux", "cpu": "x", "gpu": gpu})
    return run.document([tr.ok(cid, metrics=[tr.metric("latency", 1.0, "ms", "measurement")], workload="W6",
                               hardware=hw, parameters=params) for cid, hw, params in cases])


def _why(doc: dict, catalog: dict = SMALL) -> str | None:
    return consume.gpu_mismatch(doc, consume.gpu_tokens(catalog))


def test_gpu_tokens_carry_each_ids_gpu_count():
    tokens = consume.gpu_tokens(SMALL)
    assert dict(tokens) == {"H200-SXM-141GB": "H200", "H200-SXM-141GB-x2-nvlink": "H200", "HGX-H200x8": "H200"}
    assert tokens.devices == {"H200-SXM-141GB": 1, "H200-SXM-141GB-x2-nvlink": 2, "HGX-H200x8": 8}
    real = consume.gpu_tokens(ms.read(CATALOG, "hardware"))
    assert real["H200-SXM-141GB-x2-nvlink"] == "H200" and real.devices["H200-SXM-141GB-x2-nvlink"] == 2
    assert real.devices["HGX-H100x8"] == 8 and real.devices["H100-SXM5-80GB"] == 1


def test_a_two_gpu_host_under_an_eight_gpu_id_is_refused_naming_the_case_and_both_counts():
    doc = _doc([("all-reduce.n2.1mib", "HGX-H200x8", {"ranks": 2, "npus": 2})], gpu_count=2)
    why = _why(doc)
    assert why == ("case all-reduce.n2.1mib: ran on 2 GPU(s) (parameter ranks, the run 2 (environment.gpu.count)), "
                   "but hardware HGX-H200x8 has 8")
    # filed under the machine it ran on, it passes
    assert _why(_doc([("all-reduce.n2.1mib", "H200-SXM-141GB-x2-nvlink", {"ranks": 2, "npus": 2})], gpu_count=2)) is None


def test_one_gpu_cases_belong_under_the_one_gpu_id():
    # the 1-GPU step of a 2-GPU host: under the GPU's own id it passes
    assert _why(_doc([("s", "H200-SXM-141GB", {"ranks": 1, "npus": 1})], gpu_count=2)) is None
    # from a run with one GPU (h200-x1-ddp on a 1-GPU machine), under a multi-GPU id it does not
    assert _why(_doc([("s", "H200-SXM-141GB-x2-nvlink", {"ranks": 1})], gpu_count=1)) == (
        "case s: ran on 1 GPU(s) (parameter ranks, the run 1 (environment.gpu.count)), but hardware H200-SXM-141GB-x2-nvlink has 2")
    assert "has 8" in _why(_doc([("s", "HGX-H200x8", {"ranks": 1, "npus": 1})], gpu_count=1))
    # a 2-GPU case under a 1-GPU id: more GPUs than the hardware has, whatever the run had
    assert "ran on 2 GPU(s)" in _why(_doc([("c", "H200-SXM-141GB", {"npus": 2})], gpu_count=8))


def test_without_a_count_parameter_the_environment_count_is_the_cases():
    assert _why(_doc([("x", "H200-SXM-141GB", {})], gpu_count=1)) is None
    assert _why(_doc([("x", "HGX-H200x8", {})], gpu_count=1)) == (
        "case x: ran with 1 GPU(s) (environment.gpu.count), but hardware HGX-H200x8 has 8")
    assert "ran with 2 GPU(s)" in _why(_doc([("x", "H200-SXM-141GB", {})], gpu_count=2))
    # the gpus parameter (NeuSight's configurations) counts like ranks
    assert "parameter gpus" in _why(_doc([("x", "H200-SXM-141GB", {"gpus": 4})], gpu_count=4))


def test_fewer_gpus_of_a_node_the_run_had_whole_are_accepted():
    # 2 and 4 of an 8-GPU node's GPUs, in a run that had all 8 (the key carries the count, as the simulators file it)
    doc = _doc([("a.n2", "HGX-H200x8", {"ranks": 2}), ("a.n4", "HGX-H200x8", {"ranks": 4}),
                ("a.n8", "HGX-H200x8", {"ranks": 8})], gpu_count=8)
    assert _why(doc) is None
    # ... but not when the run had fewer GPUs than the node
    assert "the run 4 (environment.gpu.count)" in _why(_doc([("a.n2", "HGX-H200x8", {"ranks": 2})], gpu_count=4))


def test_what_is_not_checked():
    # predictions are never checked (a simulator's 2-NPU case under an 8-GPU node is its model)
    assert _why(_doc([("p", "HGX-H200x8", {"npus": 2})], gpu_count=None, backend="native")) is None
    # no GPU in the environment: nothing to compare with; ids outside the GPU catalog: not counted
    assert _why(_doc([("p", "HGX-H200x8", {"npus": 2})], gpu_count=None)) is None
    assert _why(_doc([("p", "xeon", {"gpus": 4})], gpu_count=1)) is None
    # a caller's plain token dict (no devices) keeps the old check only
    doc = _doc([("all-reduce.n2.1mib", "HGX-H200x8", {"ranks": 2})], gpu_count=2)
    assert consume.gpu_mismatch(doc, {"HGX-H200x8": "H200"}) is None
    assert consume.gpu_count_mismatch(doc, None) is None
    # a case that measured nothing is not counted (a 4-GPU case a 2-GPU host could not run)
    gone = _doc([("all-reduce.n2.1mib", "H200-SXM-141GB-x2-nvlink", {"ranks": 2})], gpu_count=2)
    gone["cases"].append(tr.unavailable("all-reduce.n4.1mib", workload="W6", hardware="H200-SXM-141GB-x2-nvlink",
                                        parameters={"npus": 4}, kind="gpus-missing", message="needs 4 GPUs, this host has 2"))
    assert _why(gone) is None
    # a bool is not a count
    assert consume.case_gpus({"parameters": {"ranks": True, "npus": 2}}) == (2, "npus")


def test_iter_tool_runs_skips_the_document_with_a_one_line_reason(tmp_path: Path):
    bad = _doc([("all-reduce.n2.1mib", "HGX-H200x8", {"ranks": 2})], gpu_count=2)
    good = _doc([("all-reduce.n2.1mib", "H200-SXM-141GB-x2-nvlink", {"ranks": 2}),
                 ("ddp.n1", "H200-SXM-141GB", {"ranks": 1})], gpu_count=2)
    ms.write(tmp_path / "a-bad.tool-run.json", bad, "tool-run", 2)
    ms.write(tmp_path / "b-good.tool-run.json", good, "tool-run", 2)
    skipped: list = []
    kept = [rel for rel, _doc_, _sha in consume.iter_tool_runs(tmp_path, skipped, hardware_gpus=consume.gpu_tokens(SMALL))]
    assert kept == ["b-good.tool-run.json"]
    (s,) = skipped
    assert s.path == "a-bad.tool-run.json" and "\n" not in s.reason
    assert s.reason.startswith("hardware mislabel: case all-reduce.n2.1mib: ran on 2 GPU(s)") and s.reason.endswith("has 8")


def _committed(name: str) -> dict:
    path = EVALUATION / "groundtruth" / name
    if not path.is_file():
        pytest.skip(f"{name} not committed")
    return ms.read_tool_run(path)


def test_the_committed_measurements_pass_and_their_old_filing_does_not():
    catalog = ms.read(CATALOG, "hardware")
    skipped: list = []
    kept = {rel for rel, _d, _s in consume.iter_tool_runs(EVALUATION, skipped, hardware_gpus=consume.gpu_tokens(catalog))}
    assert not [s for s in skipped if s.reason.startswith("hardware mislabel")], skipped
    assert "groundtruth/h200-x2.tool-run.json" in kept or not (EVALUATION / "groundtruth" / "h200-x2.tool-run.json").is_file()
    # h200-x2 as it was filed until 2026-12-07 (every case under HGX-H200x8) is refused
    old = copy.deepcopy(_committed("h200-x2.tool-run.json"))
    for case in old["cases"]:
        case["hardware"] = "HGX-H200x8"
    why = consume.gpu_mismatch(old, consume.gpu_tokens(catalog))
    assert why is not None and "ran on 2 GPU(s)" in why and "has 8" in why
