"""What the LLM-peer runners share (genz-runner, aiconfigurator-runner, llmcompass-runner): the case
matrix's dimensions and its cases, planned and checked the same way, the case records every tool gives
for the same reasons, and the comparison of a tool's latencies with our GPU measurements.

The matrix is exactly the keys our GPU ground truth measured (data/evaluation/groundtruth/h100-x1 and
h200-x1), the same keys for every peer, so a cross-tool table joins them:

* W5 ``llama2-7b.prefill.b1.t{128,256,512,1024,2048}.fp16``: one forward pass over ``t`` tokens
* W5 ``llama2-7b.decode.b{1,2,4,8,16,32}.kv{512,1024,2048}.fp16``: one decode step, each sequence with
  ``kv`` cached tokens (the measured cache holds kv+1 entries: the new token's own K/V too)
* W7 ``gpt2.model.b{1,8}.s{128,512}.{fp32,fp16}``: GPT2LMHeadModel forward over ``s`` tokens
* W4 ``bert-base.model.b{1,8}.s{128,512}.{fp32,fp16}``: BertModel forward

Each runner's ``cases.hardware_cases`` writes its table of one GPU's cases from these dimensions (the
place a new workload goes: data/extensibility/extension-points.json names it); ``plan`` and
``planned_cases`` take that table. What a tool makes of a case, and which cases it cannot take, stays
in its runner.

The comparison pairs a tool's document with the measured ones by (hardware, key). Error of one
case: |tool - measured| / measured. Per GPU and scope: n, MAPE (mean of the errors, %), the
geometric-mean error (exp of the mean log error, %) and the ratio tool / measured (mean, min, max).
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from . import SchemaError, read, read_tool_run, toolrun
from .cli import RunOptions, UserError, finish
from .execute import run_cases

# --- the case matrix -------------------------------------------------------------------------------

HARDWARE = ("H100-SXM5-80GB", "H200-SXM-141GB")
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_KV = (512, 1024, 2048)
TRANSFORMER_BATCHES = (1, 8)
TRANSFORMER_SEQS = (128, 512)
TRANSFORMER_DTYPES = ("fp32", "fp16")

#: our model definitions (the ground truth's case parameters); each runner checks its tool's own model against them
MODELS: dict[str, dict[str, Any]] = {
    "llama2-7b": {"layers": 32, "hidden": 4096, "heads": 32, "ffn": 11008, "vocab": 32000},
    "gpt2": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 50257},
    "bert-base": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 30522},
}


@dataclass(frozen=True)
class Case:
    key: str
    workload: str
    hardware: str
    model: str
    scope: str  # prefill | decode | model
    batch: int
    dtype: str
    tokens: int | None = None  # prefill tokens
    kv: int | None = None  # decode: cached tokens per sequence
    seq: int | None = None  # gpt2/bert sequence length

    @property
    def id(self) -> str:
        return f"{self.hardware}:{self.key}"

    def parameters(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model, "scope": self.scope, "batch": self.batch, "dtype": self.dtype}
        for name in ("tokens", "kv", "seq"):
            if getattr(self, name) is not None:
                p[name] = getattr(self, name)
        return p

    def planned(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "workload": self.workload, "hardware": self.hardware, "parameters": self.parameters()}

    def where(self) -> dict[str, Any]:
        """The record's workload, hardware and key (keyword arguments of the toolrun constructors)."""
        return {"workload": self.workload, "hardware": self.hardware, "key": self.key}


#: a runner's table of one GPU's cases (its ``cases.hardware_cases``)
Table = Callable[[str], list[Case]]


def plan(table: Table, hardware: tuple[str, ...] = HARDWARE) -> list[Case]:
    """Every GPU's cases from ``table``, GPU by GPU."""
    return [c for hw in hardware for c in table(hw)]


def select(cases: list[Case], include: list[str] | None = None, exclude: list[str] | None = None) -> list[Case]:
    """Cases whose key matches an ``include`` glob (all if none) and no ``exclude`` glob, in plan order."""
    return [
        c
        for c in cases
        if (not include or any(fnmatch.fnmatchcase(c.key, g) for g in include))
        and not any(fnmatch.fnmatchcase(c.key, g) for g in (exclude or []))
    ]


# --- planning (the `cases` and `run` verbs) -------------------------------------------------------


def planned_cases(opts: RunOptions, table: Table) -> tuple[list[Case], dict[str, dict[str, Any]], Path]:
    """The selected cases of ``table`` (config ``hardware``, ``include``, ``exclude``, then --shard/--limit),
    the hardware catalog's entries of their GPUs and the catalog's path; every check before any work."""
    cfg: dict[str, Any] = opts.config_doc or {}
    hardware = list(dict.fromkeys(cfg.get("hardware", HARDWARE)))
    path = opts.data_dir / "hardware" / "hardware.json"
    entries = {e["id"]: e for e in read(path, "hardware")["hardware"]}
    where = f"{opts.config}: field hardware" if opts.config is not None else f"{path}: field hardware"
    for hid in hardware:
        if hid not in HARDWARE:
            raise UserError(f"{where}: {hid!r} is not a GPU this runner has ground truth for (known: {', '.join(HARDWARE)})")
        if hid not in entries:
            raise UserError(f"{where}: no entry with id {hid!r} in {path}")
    wpath = opts.data_dir / "workloads" / "workloads.json"
    known = {w["id"] for w in read(wpath, "workloads")["workloads"]}
    planned = plan(table, tuple(hardware))
    for wid in sorted({c.workload for c in planned} - known):
        raise UserError(f"{wpath}: field workloads: no entry with id {wid!r}, which the case matrix files cases under")
    selected = opts.select(select(planned, cfg.get("include"), cfg.get("exclude")))
    return selected, {h: entries[h] for h in hardware}, path


def print_cases(cases: Sequence[Case]) -> None:
    """The `cases` verb's output: one JSON line per planned case."""
    for case in cases:
        click.echo(json.dumps(case.planned(), sort_keys=True))


# --- case records ---------------------------------------------------------------------------------


def sig(x: float, digits: int = 6) -> float:
    """``x`` to ``digits`` significant digits (what the documents record)."""
    return float(f"{x:.{digits}g}")


def unsupported(case: Case, message: str, params: dict[str, Any]) -> dict[str, Any]:
    """The tool cannot take this case: ``message`` says why."""
    return toolrun.unsupported(case.id, kind="unsupported-case", message=message, parameters=params, **case.where())


def unavailable(case: Case, kind: str, message: str, params: dict[str, Any]) -> dict[str, Any]:
    """The tool, or what it needs for this case, is not here: ``message`` says how to provide it."""
    return toolrun.unavailable(case.id, kind=kind, message=message, parameters=params, **case.where())


def crashed(case: Case, tool: str, exc: Exception, params: dict[str, Any]) -> dict[str, Any]:
    """The tool raised on this case: a failed case naming the exception and its first line."""
    first = f"{exc}".splitlines()[0][:400] if str(exc) else ""
    return toolrun.failed(case.id, kind="tool-crashed", message=f"{tool} raised {type(exc).__name__}: {first}", parameters=params, **case.where())


def invalid_value(case: Case, exc: Exception, params: dict[str, Any]) -> dict[str, Any]:
    """The tool answered with a value no metric may hold (not finite, not its parts' sum, ...)."""
    return toolrun.failed(case.id, kind="invalid-value", message=f"{case.key} on {case.hardware}: {exc}", parameters=params, **case.where())


def finish_unavailable(builder: toolrun.ToolRun, opts: RunOptions, selected: Sequence[Case], kind: str, message: str) -> NoReturn:
    """Setup found no tool to run: every selected case ``unavailable`` with ``message``, the document written, exit."""
    builder.setup_done()
    finish(builder, [unavailable(c, kind, message, c.parameters()) for c in selected], opts)


def run_units(builder: toolrun.ToolRun, opts: RunOptions, plan_doc: Any, units: Sequence[Any], fn: Callable[[Any], dict[str, Any]],
              label: str) -> NoReturn:
    """Setup done: every unit through ``fn`` (``--jobs``, ``--resume`` against ``plan_doc``), the document written, exit."""
    checkpoint = opts.checkpoint(plan_doc)
    builder.setup_done()
    results = run_cases(units, fn, jobs=opts.jobs, label=label, ident=lambda u: u.ident, checkpoint=checkpoint)
    finish(builder, results, opts, checkpoint)


# --- the comparison with the measurements (the `compare` verb) ------------------------------------

#: the measured documents a tool is compared with
GROUNDTRUTH = (Path("data/evaluation/groundtruth/h100-x1.tool-run.json"), Path("data/evaluation/groundtruth/h200-x1.tool-run.json"))


@dataclass(frozen=True)
class Pair:
    hardware: str
    key: str
    workload: str
    predicted_ms: float
    measured_ms: float

    @property
    def error(self) -> float:
        return abs(self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def ratio(self) -> float:
        return self.predicted_ms / self.measured_ms


def to_ms(metric: dict[str, Any]) -> float:
    """A time metric's value in ms."""
    scale = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
    return float(metric["value"]) * scale[metric["unit"]]


def pair(tool_doc: dict[str, Any], groundtruths: list[dict[str, Any]], timing: str = "device") -> list[Pair]:
    """Every ok case of the tool whose (hardware, key) has an ok measured ``latency`` of ``timing``, in the tool's order."""
    measured: dict[tuple[str, str], float] = {}
    for gt in groundtruths:
        for c in gt["cases"]:
            if c["status"] != "ok" or not c.get("key"):
                continue
            for m in c["metrics"]:
                if m["name"] == "latency" and m.get("timing") == timing and m["kind"] == "measurement":
                    measured[(c["hardware"], c["key"])] = to_ms(m)
    out = []
    for c in tool_doc["cases"]:
        if c["status"] != "ok":
            continue
        lat = next((m for m in c["metrics"] if m["name"] == "latency"), None)
        got = measured.get((c["hardware"], c.get("key")))
        if lat is None or got is None or not got > 0:
            continue
        out.append(Pair(c["hardware"], c["key"], c["workload"], to_ms(lat), got))
    return out


def summary(pairs: list[Pair]) -> dict[str, Any]:
    n = len(pairs)
    errors = [p.error for p in pairs]
    geo = math.exp(sum(math.log(e) for e in errors) / n) if all(e > 0 for e in errors) else 0.0
    return {
        "n": n,
        "mape_pct": 100 * sum(errors) / n,
        "geomean_error_pct": 100 * geo,
        "mean_ratio": sum(p.ratio for p in pairs) / n,
        "min_ratio": min(p.ratio for p in pairs),
        "max_ratio": max(p.ratio for p in pairs),
    }


#: the scopes a table splits each GPU's pairs into (a scope with no pair is left out)
SCOPES: tuple[tuple[str, Callable[[Pair], bool]], ...] = (
    ("W5 prefill", lambda p: ".prefill." in p.key),
    ("W5 decode", lambda p: ".decode." in p.key),
    ("W7 GPT-2", lambda p: p.workload == "W7"),
    ("all", lambda p: True),
)


def groups(pairs: list[Pair], scopes: Sequence[tuple[str, Callable[[Pair], bool]]] = SCOPES) -> list[tuple[str, str, list[Pair]]]:
    """(hardware, scope label, pairs): each GPU's pairs in each scope that has any, GPUs in the pairs' order."""
    out = []
    for hw in dict.fromkeys(p.hardware for p in pairs):
        mine = [p for p in pairs if p.hardware == hw]
        for label, pick in scopes:
            sel = [p for p in mine if pick(p)]
            if sel:
                out.append((hw, label, sel))
    return out


def render(pairs: list[Pair], timing: str, tool: str, per_case: bool = True) -> str:
    """The Markdown table of ``tool`` (its name in the headers) vs one measured timing: per GPU and scope, then per case."""
    lines = [f"| GPU | cases | n | MAPE | geomean error | mean {tool}/measured |", "|---|---|---:|---:|---:|---:|"]
    for hw, label, sel in groups(pairs):
        s = summary(sel)
        lines.append(f"| {hw} | {label} | {s['n']} | {s['mape_pct']:.1f} % | {s['geomean_error_pct']:.1f} % | {s['mean_ratio']:.3f} |")
    lines.append("")
    lines.append(f"Measured: `latency` of timing `{timing}`; error = |{tool} - measured| / measured.")
    lines.append("")
    if per_case:
        lines += [f"| GPU | key | {tool} (ms) | measured (ms) | {tool}/measured |", "|---|---|---:|---:|---:|"]
        for p in pairs:
            lines.append(f"| {p.hardware} | `{p.key}` | {p.predicted_ms:.4g} | {p.measured_ms:.4g} | {p.ratio:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def compare_pairs(tool_doc: Path, gt_docs: Sequence[Path], timings: Sequence[str]) -> dict[str, list[Pair]]:
    """timing -> the pairs of the tool's document with the measured ones; an unreadable document or a
    timing with no pair is a UserError (one line)."""
    try:
        doc = read_tool_run(tool_doc)
        gts = [read_tool_run(p) for p in gt_docs]
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    pairs = {t: pair(doc, gts, t) for t in timings}
    for t, got in pairs.items():
        if not got:
            raise UserError(f"{tool_doc}: no ok case pairs with a measured {t} latency in {', '.join(map(str, gt_docs))}")
    return pairs


def _options(*options: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # listed as given in --help
            f = option(f)
        return f

    return apply


def documents_options(flag: str, tool: str, default: Path) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A `compare` verb's documents: the tool's (``flag``, parameter ``tool_doc``) and the measured ones (``gt_docs``)."""
    return _options(
        click.option(flag, "tool_doc", type=click.Path(dir_okay=False, path_type=Path), default=default, show_default=True,
                     help=f"{tool}'s tool-run document."),
        click.option("--groundtruth", "gt_docs", type=click.Path(dir_okay=False, path_type=Path), multiple=True, default=list(GROUNDTRUTH),
                     show_default=True, help="Measured tool-run documents (repeatable)."),
    )


def timing_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One measured timing (``timing``) and the per-case rows on or off (``per_case``)."""
    return _options(
        click.option("--timing", default="device", show_default=True, help="Which measured latency: device (CUDA graphs) or eager-end-to-end."),
        click.option("--cases/--no-cases", "per_case", default=True, help="Also print one row per paired case."),
    )
