"""mtap_schemas.llmpeer: the LLM peers' case matrix and its checks, their shared case records, and the
comparison with the measurements (pairing, statistics, table, the `compare` options)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import llmpeer
from mtap_schemas.cli import RunOptions, UserError, run_options, runner_group
from mtap_schemas.llmpeer import Case, Pair

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
H100, H200 = llmpeer.HARDWARE


# --- the case matrix ----------------------------------------------------------------------------


def table(hw: str) -> list[Case]:
    """A small table in the runners' form (each runner's cases.hardware_cases is the full one)."""
    return [
        Case("llama2-7b.prefill.b1.t128.fp16", "W5", hw, "llama2-7b", "prefill", 1, "fp16", tokens=128),
        Case("llama2-7b.decode.b1.kv512.fp16", "W5", hw, "llama2-7b", "decode", 1, "fp16", kv=512),
        Case("gpt2.model.b1.s128.fp32", "W7", hw, "gpt2", "model", 1, "fp32", seq=128),
        Case("gpt2.model.b1.s128.fp16", "W7", hw, "gpt2", "model", 1, "fp16", seq=128),
    ]


def test_the_dimensions_are_the_measured_ones() -> None:
    assert llmpeer.HARDWARE == ("H100-SXM5-80GB", "H200-SXM-141GB")
    assert (llmpeer.PREFILL_TOKENS, llmpeer.DECODE_BATCHES, llmpeer.DECODE_KV) == ((128, 256, 512, 1024, 2048), (1, 2, 4, 8, 16, 32), (512, 1024, 2048))
    assert (llmpeer.TRANSFORMER_BATCHES, llmpeer.TRANSFORMER_SEQS, llmpeer.TRANSFORMER_DTYPES) == ((1, 8), (128, 512), ("fp32", "fp16"))
    assert llmpeer.MODELS["llama2-7b"] == {"layers": 32, "hidden": 4096, "heads": 32, "ffn": 11008, "vocab": 32000}
    assert set(llmpeer.MODELS) == {"llama2-7b", "gpt2", "bert-base"}


def test_plan_is_the_table_gpu_by_gpu() -> None:
    cases = llmpeer.plan(table)
    assert [c.id for c in cases] == [f"{hw}:{c.key}" for hw in llmpeer.HARDWARE for c in table(hw)]
    assert [c.hardware for c in llmpeer.plan(table, (H200,))] == [H200] * 4


def test_case_records_fields() -> None:
    prefill, decode = table(H100)[:2]
    assert prefill.parameters() == {"model": "llama2-7b", "scope": "prefill", "batch": 1, "dtype": "fp16", "tokens": 128}
    assert decode.parameters() == {"model": "llama2-7b", "scope": "decode", "batch": 1, "dtype": "fp16", "kv": 512}
    assert decode.planned() == {"id": decode.id, "key": decode.key, "workload": "W5", "hardware": H100, "parameters": decode.parameters()}
    assert decode.where() == {"workload": "W5", "hardware": H100, "key": decode.key}


def test_select_by_key_globs_in_plan_order() -> None:
    cases = llmpeer.plan(table)
    assert llmpeer.select(cases) == cases
    got = llmpeer.select(cases, ["*.decode.*", "gpt2.*"], ["*.fp32"])
    assert [c.id for c in got] == [f"{hw}:{k}" for hw in llmpeer.HARDWARE for k in ("llama2-7b.decode.b1.kv512.fp16", "gpt2.model.b1.s128.fp16")]


# --- planning -----------------------------------------------------------------------------------


def options(data_dir: Path = DATA, cfg: dict | None = None, config: Path | None = None, limit: int | None = None) -> RunOptions:
    return RunOptions(verb="cases", config=config, data_dir=data_dir, limit=limit, shard=None, config_doc=cfg)


def test_planned_cases_default_and_config() -> None:
    selected, entries, path = llmpeer.planned_cases(table=table, opts=options())
    assert selected == llmpeer.plan(table) and list(entries) == list(llmpeer.HARDWARE) and path == DATA / "hardware" / "hardware.json"
    assert entries[H100]["id"] == H100
    cfg = {"hardware": [H200, H200], "include": ["*.fp16"], "exclude": ["gpt2.*"]}
    selected, entries, _ = llmpeer.planned_cases(table=table, opts=options(cfg=cfg))
    assert [c.id for c in selected] == [f"{H200}:llama2-7b.{k}.fp16" for k in ("prefill.b1.t128", "decode.b1.kv512")] and list(entries) == [H200]
    assert [c.id for c in llmpeer.planned_cases(table=table, opts=options(cfg=cfg, limit=1))[0]] == [selected[0].id]


def test_planned_cases_refuses_what_it_cannot_plan(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"sel.json: field hardware: 'B200' is not a GPU this runner has ground truth for"):
        llmpeer.planned_cases(table=table, opts=options(cfg={"hardware": ["B200"]}, config=Path("sel.json")))
    with pytest.raises(UserError, match="selects no cases"):
        llmpeer.planned_cases(table=table, opts=options(cfg={"include": ["nothing.*"]}))
    data = tmp_path / "data"
    (data / "hardware").mkdir(parents=True)
    (data / "workloads").mkdir()
    catalog = ms.read(DATA / "hardware" / "hardware.json", "hardware")
    catalog["hardware"] = [e for e in catalog["hardware"] if e["id"] != H200]
    ms.write(data / "hardware" / "hardware.json", catalog, "hardware")
    workloads = ms.read(DATA / "workloads" / "workloads.json", "workloads")
    ms.write(data / "workloads" / "workloads.json", workloads, "workloads")
    with pytest.raises(UserError, match=f"hardware.json: field hardware: no entry with id '{H200}'"):
        llmpeer.planned_cases(table=table, opts=options(data))
    assert len(llmpeer.planned_cases(table=table, opts=options(data, cfg={"hardware": [H100]}))[0]) == 4
    workloads["workloads"] = [w for w in workloads["workloads"] if w["id"] != "W7"]
    ms.write(data / "workloads" / "workloads.json", workloads, "workloads")
    with pytest.raises(UserError, match="no entry with id 'W7', which the case matrix files cases under"):
        llmpeer.planned_cases(table=table, opts=options(data, cfg={"hardware": [H100]}))


# --- case records -------------------------------------------------------------------------------

CASE = table(H100)[0]


def valid(case: dict) -> dict:
    ms.validate(tr.ToolRun("t", "1", tr.Tool("demo", "1", "native", "demo"), argv=["run"]).document([case]), "tool-run", ms.TOOL_RUN_MAJOR)
    return case


def test_sig() -> None:
    assert llmpeer.sig(1.23456789) == 1.23457 and llmpeer.sig(123456789.0, 3) == 1.23e8


def test_unsupported_crashed_and_invalid_records() -> None:
    params = CASE.parameters()
    u = valid(llmpeer.unsupported(CASE, "no such model", params))
    assert (u["status"], u["error"], u["key"], u["parameters"]) == ("unsupported", {"kind": "unsupported-case", "message": "no such model"}, CASE.key, params)
    c = valid(llmpeer.crashed(CASE, "Tool", ValueError("first line " + "x" * 500 + "\nsecond"), params))
    assert c["status"] == "failed" and c["error"]["kind"] == "tool-crashed"
    assert c["error"]["message"] == "Tool raised ValueError: first line " + "x" * (400 - len("first line "))
    assert valid(llmpeer.crashed(CASE, "Tool", KeyError(), params))["error"]["message"] == "Tool raised KeyError:"  # toolrun strips the message
    i = valid(llmpeer.invalid_value(CASE, tr.InvalidValue("metric latency: got nan"), params))
    assert i["error"] == {"kind": "invalid-value", "message": f"{CASE.key} on {H100}: metric latency: got nan"}


@runner_group("peerdemo", "0.1.0")
def demo() -> None:
    """A demo LLM peer (tests only)."""


def _predict(unit: Case) -> dict:
    return tr.ok(unit.id, metrics=[tr.metric("latency", 1.0, "ms", "prediction", timing="simulated")], parameters=unit.parameters(),
                 **unit.where())


class _Unit:
    def __init__(self, case: Case) -> None:
        self.case = case
        self.ident = case.id


@demo.command()
@run_options(tool="peerdemo", output="out", tool_path=False, keep_raw=False)
@click.option("--missing", is_flag=True)
def run(opts: RunOptions, missing: bool) -> None:
    selected = llmpeer.planned_cases(opts, table)[0]
    builder = tr.ToolRun("peerdemo", "0.1.0", tr.Tool("peerdemo", "1", "native", "demo"))
    if missing:
        llmpeer.finish_unavailable(builder, opts, selected, "package-missing", "install it")
    llmpeer.run_units(builder, opts, {"cases": [c.planned() for c in selected]}, [_Unit(c) for c in selected],
                      lambda u: _predict(u.case), "peerdemo")


@demo.command()
@run_options(tool="peerdemo", output="out", verb="cases")
def cases(opts: RunOptions) -> None:
    llmpeer.print_cases(llmpeer.planned_cases(opts, table)[0])


def test_cases_verb_prints_json_lines() -> None:
    r = CliRunner().invoke(demo, ["cases", "--data-dir", str(DATA), "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in r.output.splitlines()] == [c.planned() for c in llmpeer.plan(table)[:2]]


@pytest.mark.parametrize("missing", [True, False])
def test_finish_unavailable_and_run_units_write_the_document(tmp_path: Path, missing: bool) -> None:
    args = ["run", "--data-dir", str(DATA), "--output", str(tmp_path), "--limit", "3", "--jobs", "1"] + (["--missing"] if missing else [])
    r = CliRunner().invoke(demo, args)
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "peerdemo.tool-run.json")
    assert [c["id"] for c in doc["cases"]] == [c.id for c in llmpeer.plan(table)[:3]]
    want = {"status": "unavailable", "error": {"kind": "package-missing", "message": "install it"}} if missing else {"status": "ok", "error": None}
    for c, case in zip(doc["cases"], llmpeer.plan(table)):
        assert {k: c[k] for k in want} == want and c["parameters"] == case.parameters() and c["key"] == case.key


# --- the comparison -----------------------------------------------------------------------------


def measured(hw: str, key: str, value: float, timing: str = "device", unit: str = "ms", status: str = "ok") -> dict:
    metrics = [tr.metric("latency", value, unit, "measurement", timing=timing)]
    if status == "ok":
        return tr.ok(f"{hw}/{key}", workload="W5", hardware=hw, key=key, metrics=metrics)
    return tr.failed(f"{hw}/{key}", workload="W5", hardware=hw, key=key, kind="tool-crashed", message="x")


def predicted(hw: str, key: str, value: float, unit: str = "ms", workload: str = "W5") -> dict:
    return tr.ok(f"{hw}:{key}", workload=workload, hardware=hw, key=key, metrics=[tr.metric("latency", value, unit, "prediction", timing="simulated")])


def documents() -> tuple[dict, list[dict]]:
    tool = {"cases": [
        predicted(H100, "llama2-7b.prefill.b1.t128.fp16", 2.0),
        predicted(H100, "llama2-7b.decode.b1.kv512.fp16", 5000.0, unit="us"),
        predicted(H100, "gpt2.model.b1.s128.fp16", 0.3, workload="W7"),
        predicted(H200, "llama2-7b.decode.b1.kv512.fp16", 4.0),
        predicted(H200, "llama2-7b.decode.b2.kv512.fp16", 4.0),  # measured failed: not paired
        llmpeer.unsupported(Case("bert-base.model.b1.s128.fp16", "W4", H100, "bert-base", "model", 1, "fp16", seq=128), "no", {}),
    ]}
    gt = {"cases": [
        measured(H100, "llama2-7b.prefill.b1.t128.fp16", 1.0),
        measured(H100, "llama2-7b.prefill.b1.t128.fp16", 1.5, timing="eager-end-to-end"),
        measured(H100, "llama2-7b.decode.b1.kv512.fp16", 0.004, unit="s"),
        measured(H100, "gpt2.model.b1.s128.fp16", 0.2),
    ]}
    gt2 = {"cases": [measured(H200, "llama2-7b.decode.b1.kv512.fp16", 5.0), measured(H200, "llama2-7b.decode.b2.kv512.fp16", 5.0, status="failed")]}
    return tool, [gt, gt2]


def test_pair_by_hardware_and_key_in_the_tools_order() -> None:
    tool, gts = documents()
    pairs = llmpeer.pair(tool, gts)
    assert [(p.hardware, p.key, p.predicted_ms, p.measured_ms) for p in pairs] == [
        (H100, "llama2-7b.prefill.b1.t128.fp16", 2.0, 1.0),
        (H100, "llama2-7b.decode.b1.kv512.fp16", 5.0, 4.0),
        (H100, "gpt2.model.b1.s128.fp16", 0.3, 0.2),
        (H200, "llama2-7b.decode.b1.kv512.fp16", 4.0, 5.0),
    ]
    assert [(p.key, p.measured_ms) for p in llmpeer.pair(tool, gts, "eager-end-to-end")] == [("llama2-7b.prefill.b1.t128.fp16", 1.5)]


def test_summary_and_groups() -> None:
    pairs = [Pair("G", "a.prefill.x", "W5", 1.0, 2.0), Pair("G", "b.decode.x", "W5", 3.0, 2.0), Pair("G", "c.model.x", "W7", 2.2, 2.0)]
    s = llmpeer.summary(pairs)
    errors = [0.5, 0.5, 0.1]
    assert s["n"] == 3 and s["mape_pct"] == pytest.approx(100 * sum(errors) / 3)
    assert s["geomean_error_pct"] == pytest.approx(100 * math.exp(sum(map(math.log, errors)) / 3))
    assert s["mean_ratio"] == pytest.approx((0.5 + 1.5 + 1.1) / 3) and (s["min_ratio"], s["max_ratio"]) == (0.5, 1.5)
    assert llmpeer.summary([Pair("G", "k", "W5", 2.0, 2.0)])["geomean_error_pct"] == 0.0
    assert [(hw, label, len(sel)) for hw, label, sel in llmpeer.groups(pairs + [Pair("H", "d.decode.x", "W5", 1.0, 1.0)])] == [
        ("G", "W5 prefill", 1), ("G", "W5 decode", 1), ("G", "W7 GPT-2", 1), ("G", "all", 3), ("H", "W5 decode", 1), ("H", "all", 1)]
    assert [label for _, label, _ in llmpeer.groups(pairs, llmpeer.SCOPES[:1])] == ["W5 prefill"]


def test_render_names_the_tool() -> None:
    tool, gts = documents()
    text = llmpeer.render(llmpeer.pair(tool, gts), "device", "Tool")
    lines = text.splitlines()
    assert lines[0] == "| GPU | cases | n | MAPE | geomean error | mean Tool/measured |"
    assert lines[2] == f"| {H100} | W5 prefill | 1 | 100.0 % | 100.0 % | 2.000 |"
    assert f"| {H100} | all | 3 | 58.3 % | 50.0 % | 1.583 |" in lines
    assert "Measured: `latency` of timing `device`; error = |Tool - measured| / measured." in lines
    assert f"| {H200} | `llama2-7b.decode.b1.kv512.fp16` | 4 | 5 | 0.800 |" in lines and text.endswith("|\n\n")
    assert "| GPU | key |" not in llmpeer.render(llmpeer.pair(tool, gts), "device", "Tool", per_case=False)


def test_compare_pairs_reads_checks_and_refuses(tmp_path: Path) -> None:
    tool, (gt, gt2) = documents()
    paths = []
    for name, doc in (("tool", tool), ("h100", gt), ("h200", gt2)):
        full = tr.ToolRun("t", "1", tr.Tool(name, "1", "native", "x"), argv=["run"]).document(doc["cases"])
        paths.append(ms.write(tmp_path / f"{name}.tool-run.json", full, "tool-run", ms.TOOL_RUN_MAJOR))
    got = llmpeer.compare_pairs(paths[0], paths[1:], ["device", "eager-end-to-end"])
    assert {t: len(p) for t, p in got.items()} == {"device": 4, "eager-end-to-end": 1}
    with pytest.raises(UserError, match=r"tool.tool-run.json: no ok case pairs with a measured eager-end-to-end latency in .*h200"):
        llmpeer.compare_pairs(paths[0], paths[2:], ["eager-end-to-end"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="bad.json"):
        llmpeer.compare_pairs(tmp_path / "bad.json", paths[1:], ["device"])


def test_compare_options() -> None:
    seen = {}

    @click.command()
    @llmpeer.documents_options("--tool", "Tool", Path("t.json"))
    @llmpeer.timing_options()
    def compare(**kwargs) -> None:
        seen.update(kwargs)

    r = CliRunner().invoke(compare, ["--help"])
    assert r.exit_code == 0
    flags = [line.split()[0] for line in r.output.splitlines() if line.startswith("  --")]
    assert flags == ["--tool", "--groundtruth", "--timing", "--cases", "--help"]
    assert "Tool's tool-run document." in r.output and "[default: t.json]" in r.output
    assert CliRunner().invoke(compare, []).exit_code == 0
    assert seen == {"tool_doc": Path("t.json"), "gt_docs": llmpeer.GROUNDTRUTH, "timing": "device", "per_case": True}
    CliRunner().invoke(compare, ["--groundtruth", "a.json", "--timing", "eager-end-to-end", "--no-cases"])
    assert seen == {"tool_doc": Path("t.json"), "gt_docs": (Path("a.json"),), "timing": "eager-end-to-end", "per_case": False}
