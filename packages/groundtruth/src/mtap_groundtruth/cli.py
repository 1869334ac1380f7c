"""The ``groundtruth`` console script: ``cases`` and ``run`` on the runner kit (packages/README.md's runner contract)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.keep import save

from . import __version__
from . import cases as cases_mod

RUNNER = "groundtruth"
OUTPUT = "data/evaluation/groundtruth"
CONFIG_HELP = 'JSON: {"include": [key globs], "exclude": [key globs], "iters": N, "warmup": N}.'

HELP = """Measure mtap's workloads on real GPUs with PyTorch (random weights) and write one
tool-run v2 document (tool "groundtruth", backend "measured").

\b
Suites (--suite):
  single    one GPU: W1 ResNet-50 conv1, every ResNet-50 conv/fc layer and the whole
            model (batch 1, 32; fp32, fp16); W4 BERT-base and W7 GPT-2 (batch 1, 8;
            seq 128, 512); W5 Llama-2-7B-shaped prefill (128-2048 tokens) and decode
            steps (batch 1-32 x KV 512-2048), fp16; W8 MobileNet-V2 and W9 VGG-16
            (batch 1, 8, 32, 128; their conv/fc layers at batch 1; fp32, fp16).
  multi     all GPUs of one host, one process each: W6 all-reduce, all-gather,
            reduce-scatter, all-to-all at 1 MiB / 64 MiB / 1 GiB (algbw and busbw as
            nccl-tests defines them); W3 ResNet-50 DDP training step at 1..N GPUs.
  neusight  NeuSight's H100 inference configurations (BERT-large, GPT-2-large,
            GPT-3-XL/2.7B, OPT-1.3B), FP32 with TF32 off, as its labels were measured.
            --attention eager (also single's W4/W7 cases): the Hugging Face models
            NeuSight traces (transformers 4.38.1, attn_implementation="eager",
            BERT as AutoModelForSequenceClassification), keys <key>.eager-attn.
  floor     the per-kernel launch floor: an empty kernel and the smallest kernels the
            models launch (1-element fill and add, 16x16 GEMM), eager (host-observed,
            back-to-back launches) and in a CUDA graph (device time per node); no model
            is timed and nothing is fitted (keys floor.<kernel>.<mode>).
  replay    a serving simulator's batches (--plan: a batch-plan document, written by
            `vidur-runner batches`): one forward pass of the model's decoder layers per
            distinct batch composition (prefill chunks and decodes with their KV
            lengths), built from the VIDUR profile's operators, timed on the device and
            eager (keys <model>.batch.<composition>.fp16; mtap_groundtruth.replay).

Each compute case gets `latency` twice: timing "device" (CUDA-graph replays: what
kernel-level predictors model) and timing "eager-end-to-end" (eager PyTorch, host
launch gaps included), as median with _p10/_p90/_mean/_std/_min/_max, plus FLOPs
from torch.utils.flop_counter. The "tool" is the PyTorch on the machine it runs on;
nothing is downloaded.

One process owns the GPU, so cases run one after another: `run` has no --jobs. Each
finished case is checkpointed (OUTPUT/.NAME.progress.jsonl); --resume continues an
interrupted run of the same plan. Exit codes and the keep policy follow packages/README.md.

\b
Example (on a GPU machine):
  groundtruth run --suite single --output data/evaluation/groundtruth --name h200-x1
  groundtruth cases --suite multi --gpus 8
CPU smoke test (not evaluation data): groundtruth run --device cpu --tiny --limit 3
"""


def plan_options(fn: Any) -> Any:
    opts = [
        click.option("--suite", type=click.Choice(cases_mod.SUITES), default="single", show_default=True, help="Which case matrix."),
        click.option("--gpus", type=click.IntRange(min=1), default=None, help="multi: GPUs to use (default: all visible; `cases` plans 2)."),
        click.option("--hardware", default=None, help="Hardware id for the cases (default from the GPU: H100 -> H100-SXM5-80GB, H200 -> H200-SXM-141GB; for multi the catalog's node of that GPU with this host's GPU count, e.g. 2 x H200 -> H200-SXM-141GB-x2-nvlink, 8 -> HGX-H200x8, and 1-GPU cases under the GPU's id). Must name the GPU (multi: the node with the GPU count) the machine has; `cases` defaults to the H100 ids."),
        click.option("--tiny", is_flag=True, help="Small stand-in models and sizes with the same code paths (CPU tests; never evaluation data)."),
        click.option("--attention", type=click.Choice(cases_mod.ATTENTIONS), default="sdpa", show_default=True,
                     help="Transformer cases (suite neusight; single's W4/W7): sdpa = the plain-PyTorch models (fused "
                          "F.scaled_dot_product_attention); eager = the Hugging Face models NeuSight traces, with "
                          "attn_implementation=\"eager\" (transformers==4.38.1, NeuSight's pin; keys end in .eager-attn; "
                          "single then plans only its W4/W7 cases)."),
        click.option("--plan", "plan_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="replay: the batch-plan document (schemas/batch-plan.v1.schema.json) whose compositions to measure."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load_catalogs(data_dir: Path) -> tuple[set[str], set[str], dict[str, str]]:
    """(hardware ids, workload ids, hardware id -> the id of its GPU: a node's ``device``, else itself)."""
    hw = ms.read(data_dir / "hardware" / "hardware.json", "hardware")
    wl = ms.read(data_dir / "workloads" / "workloads.json", "workloads")
    gpu_of = {h["id"]: h.get("device", h["id"]) for h in hw["hardware"]}
    return set(gpu_of), {w["id"] for w in wl["workloads"]}, gpu_of


#: the largest batch-plan file read (the committed ones are under 3 MB)
MAX_PLAN_BYTES = 64 << 20


def _read_plan(suite: str, plan_path: Path | None) -> dict[str, Any] | None:
    if suite != "replay":
        if plan_path is not None:
            raise UserError(f"--plan: only suite replay takes a plan (this is suite {suite})")
        return None
    if plan_path is None:
        raise UserError("--plan: suite replay needs a batch-plan document (vidur-runner batches writes one)")
    # read once, at most MAX_PLAN_BYTES (an endless file, a FIFO or /dev/zero, is refused, not read to the end)
    try:
        with open(plan_path, "rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{plan_path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise UserError(f"{plan_path}: larger than {MAX_PLAN_BYTES:,} bytes, refused (a plan of 10^5 compositions is ~40 MB)")
    import orjson  # the kit's JSON reader (as ms.read, from the bytes read here)

    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        what = "not UTF-8 text" if "utf-8" in str(exc).lower() or "surrogate" in str(exc).lower() else "not valid JSON"
        raise UserError(f"{plan_path}: {what}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    # v2 (each decode request at its own KV) or v1 (decode padded to the longest): the file says which
    version = str(doc.get("schema_version", "1")) if isinstance(doc, dict) else "1"
    major = 2 if version.startswith("2.") else 1
    try:
        ms.check_header(doc, "batch-plan", major, str(plan_path))
        ms.validate(doc, "batch-plan", major, str(plan_path))
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    return doc


def _plan_cases(suite: str, gpus: int, plan: dict[str, Any] | None, plan_path: Path | None, attention: str = "sdpa") -> list[cases_mod.Case]:
    if attention != "sdpa" and suite not in cases_mod.ATTENTION_SUITES:
        raise UserError(f"--attention {attention}: suite {suite} has no transformer cases whose attention it chooses "
                        f"(only suites {' and '.join(cases_mod.ATTENTION_SUITES)})")
    if plan is None:
        return cases_mod.plan(suite, gpus, attention)
    from . import replay

    try:
        return replay.plan_cases(plan)
    except ValueError as exc:
        raise UserError(f"{plan_path}: field compositions: {exc}") from None


def _select(opts: RunOptions, suite: str, gpus: int, plan: dict[str, Any] | None = None, plan_path: Path | None = None,
            attention: str = "sdpa") -> list[cases_mod.Case]:
    config = opts.config_doc or {}
    planned = cases_mod.select(_plan_cases(suite, gpus, plan, plan_path, attention), config.get("include"), config.get("exclude"), None)
    if not planned:
        raise UserError(f"config {opts.config}: selects no cases; nothing to run")
    return opts.select(planned)


@runner_group(RUNNER, __version__, HELP)
def main() -> None:
    pass


@main.command("cases")
@run_options(tool=RUNNER, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
@plan_options
def cases_cmd(opts: RunOptions, suite: str, gpus: int | None, hardware: str | None, tiny: bool, attention: str,
              plan_path: Path | None) -> None:
    """Print the planned cases as JSON lines; measures nothing and needs no GPU."""
    hw_ids, _, hw_gpu = _load_catalogs(opts.data_dir)
    plan = _read_plan(suite, plan_path)
    hw = hardware or (plan["hardware"] if plan else "HGX-H100x8" if suite == "multi" else "H100-SXM5-80GB")
    if hw not in hw_ids:
        raise UserError(f"--hardware: {hw!r} is not an id in {opts.data_dir / 'hardware' / 'hardware.json'}")
    for case in _select(opts, suite, gpus or 2, plan, plan_path, attention):
        one_gpu = suite == "multi" and case.params.get("npus") == 1  # a 1-GPU case is filed under the node's GPU
        click.echo(json.dumps(case.planned(hw_gpu[hw] if one_gpu else hw), sort_keys=True, separators=(",", ":")))


def _device(device_name: str):
    """The torch device ``--device`` names (auto: CUDA, refused where this PyTorch sees none)."""
    import torch

    if device_name == "auto":
        if not torch.cuda.is_available():
            raise UserError("--device auto: this PyTorch sees no CUDA device; groundtruth measures GPUs "
                            "(for a CPU smoke test that is not evaluation data: --device cpu --tiny)")
        device_name = "cuda"
    if device_name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this PyTorch sees no CUDA device (use --device cpu for a smoke test)")
    return torch.device("cuda", 0) if device_name == "cuda" else torch.device("cpu")


def _hardware(data_dir: Path, suite: str, device, hardware: str | None, gpus: int, visible: int, hw_ids, hw_gpu
              ) -> tuple[str, dict, str | None]:
    """(hardware id, {GPU count: id}, the GPU's name): the id a measurement is filed under, checked against
    the catalog and against the card this machine has (the multi suite: one id per GPU count)."""
    import torch

    from . import env

    hw = hardware or env.default_hardware(device, suite)
    catalog = data_dir / "hardware" / "hardware.json"
    if hw is None:
        raise UserError(f"--hardware: the GPU {torch.cuda.get_device_name(device)!r} has no id in groundtruth's card table "
                        f"(mtap_groundtruth.env.CARDS); add the card to {catalog} and that table")
    if device.type == "cpu" and hw != "cpu":
        raise UserError(f"--hardware: {hw!r} on --device cpu: CPU runs are filed under 'cpu' only (never evaluation data)")
    if hw not in hw_ids and not (device.type == "cpu" and hw == "cpu"):
        raise UserError(f"--hardware: {hw!r} is not an id in {catalog}")
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    if gpu_name is not None:
        card = env.hardware_for(gpu_name, "single")
        if card is None or hw_gpu.get(hw) != card:
            raise UserError(f"--hardware: {hw!r} is not the GPU this machine has ({gpu_name!r}"
                            f"{', catalog id ' + card if card else ', which has no catalog id'}): a measurement is filed under the hardware it ran on")
    # multi: each case under its GPU count's id (1 GPU: the card's; more: this host's node, by its GPU count)
    ids = {1: hw}
    if suite == "multi":
        from . import multi
    if suite == "multi" and gpu_name is not None:
        try:
            ids = multi.hardware_ids(ms.read(catalog, "hardware")["hardware"], str(card), len(env.nvidia_smi()) or visible, gpus,
                                     hardware)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        hw = ids.get(0, ids[1])
    return hw, ids, gpu_name


@dataclass(frozen=True)
class Measuring:
    """What every suite's measuring loop is given: the device and a measurement's settings."""

    device: Any
    gpus: int
    iters: int
    warmup: int
    tiny: bool
    tf32: bool
    graphs: bool


def _measure(suite: str, todo: list, m: Measuring, plan: dict | None, hw: str, ids: dict, common: dict[str, Any], *,
             progress, deadline: float | None, on_case) -> None:
    """Measure ``todo`` with the suite's own loop (multi, replay, floor; the others: measure), calling
    ``on_case`` with each result."""
    if suite == "multi":
        from . import multi

        for result, case in zip(multi.run_cases(todo, ids, m.device, m.gpus, m.iters, m.warmup, m.tiny, m.tf32, progress=progress, common=common), todo):
            on_case(case, result)
    elif suite == "replay":
        from . import replay

        settings = replay.ReplaySettings(device=m.device, reps=m.iters, warmup=m.warmup, tiny=m.tiny, log=lambda msg: click.echo(msg, err=True),
                                         sync_debug=os.environ.get("MTAP_REPLAY_SYNC_DEBUG") == "1")
        replay.run_cases(todo, plan, settings, hw, progress=progress, deadline=deadline, on_case=on_case, common=common)
    elif suite == "floor":
        from . import floor

        floor.run_cases(todo, floor.FloorSettings(device=m.device, reps=m.iters), hw, progress=progress, deadline=deadline,
                        on_case=on_case, common=common)
    else:
        from . import measure

        settings = measure.Settings(device=m.device, iters=m.iters, warmup=m.warmup, tiny=m.tiny, tf32=m.tf32, graphs=m.graphs)
        measure.run_cases(todo, settings, hw, progress=progress, deadline=deadline, on_case=on_case, common=common)


@main.command("run")
@run_options(tool=RUNNER, output=OUTPUT, verb="run", tool_path=False, timeout=None, keep_raw=False, jobs=False,
             config_schema=RUNNER, config_help=CONFIG_HELP)
@plan_options
@click.option("--iters", type=click.IntRange(min=1), default=None,
              help="Timed iterations per case (floor: repetitions) [default: 50, or the config's].")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Untimed iterations before timing [default: 10, or the config's].")
@click.option("--device", "device_name", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
              help="auto = cuda (refused when there is none). cpu: eager host-clock timing, hardware id 'cpu' (smoke tests).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None,
              help="Seconds; cases not started in time are written as failed (error kind timeout), so the document still lands.")
@click.option("--tf32/--no-tf32", default=False, show_default=True, help="Let fp32 matmuls and convolutions use TF32.")
@click.option("--graphs/--no-graphs", default=True, show_default=True,
              help="Also time CUDA-graph replays (device time). --no-graphs: eager only (e.g. the neusight suite, whose labels are eager).")
@click.option("--checkpoint-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="single/neusight/floor: also write the document with the cases measured so far this often, under the keep "
                   "policy (0: only at the end), so a run killed from outside leaves a document; --resume uses the progress file.")
def run_cmd(opts: RunOptions, suite: str, gpus: int | None, hardware: str | None, tiny: bool, attention: str, plan_path: Path | None,
            iters: int | None, warmup: int | None, device_name: str, time_budget: float | None, tf32: bool, graphs: bool,
            checkpoint_seconds: float) -> None:
    """Measure the cases and write OUTPUT/NAME.tool-run.json.

    No --jobs: one process owns the GPU, so cases run one after another (the multi suite
    starts one rank process per GPU itself). --resume continues from OUTPUT/.NAME.progress.jsonl.
    """
    t_start = time.monotonic()
    import torch

    from . import env

    builder = tr.ToolRun(RUNNER, __version__,
                         tr.Tool(RUNNER, f"torch {torch.__version__}", "measured", f"torch {torch.__version__} (the machine's PyTorch)"),
                         prog=RUNNER, config=opts.config)
    config = opts.config_doc or {}
    hw_ids, wl_ids, hw_gpu = _load_catalogs(opts.data_dir)
    plan = _read_plan(suite, plan_path)
    # replay: device-timed calls per composition (3) after one warm-up call
    default_iters, default_warmup = (3, 1) if suite == "replay" else (50, 10)
    iters = iters if iters is not None else config.get("iters", default_iters)
    warmup = warmup if warmup is not None else config.get("warmup", default_warmup)

    device = _device(device_name)
    visible = torch.cuda.device_count() if device.type == "cuda" else 1
    if suite == "multi":
        gpus = gpus or (visible if device.type == "cuda" else 2)
        if device.type == "cuda" and gpus > visible:
            raise UserError(f"--gpus: {gpus} asked for, {visible} visible")
    else:
        gpus = 1
    hw, ids, gpu_name = _hardware(opts.data_dir, suite, device, hardware, gpus, visible, hw_ids, hw_gpu)
    if suite == "multi":
        from . import multi
    hw_of = (lambda c: multi.case_hardware(c, ids)) if suite == "multi" else (lambda c: hw)  # noqa: E731
    if plan is not None and device.type == "cuda" and plan["hardware"] != hw:
        raise UserError(f"--plan {plan_path}: the plan's batches were predicted for {plan['hardware']}, this machine is {hw}: "
                        "replay them on that hardware (a measurement is filed under the hardware it ran on)")
    selected = _select(opts, suite, gpus, plan, plan_path, attention)
    if attention == "eager":
        from . import hf

        try:
            hf.require()
        except hf.TransformersMissing as exc:
            raise UserError(str(exc)) from None
    for c in selected:
        if c.workload not in wl_ids:
            raise UserError(f"{opts.data_dir / 'workloads' / 'workloads.json'}: no workload {c.workload} (case {c.key})")

    common: dict[str, Any] = {"iters": iters, "warmup": warmup, "suite": suite}
    if gpu_name:
        common["gpu_name"] = gpu_name  # the card really measured
    builder.packages = env.packages(device)
    # the plan: cases, hardware and every setting that changes a measurement (a resumed run must match it)
    cp = opts.checkpoint({"cases": [c.planned(hw_of(c)) for c in selected], "settings": common | {"tiny": tiny, "tf32": tf32, "graphs": graphs}})
    todo = [c for c in selected if c.case_id(hw_of(c)) not in cp.done]
    if cp.done:
        click.echo(f"--resume: {len(selected) - len(todo)} of {len(selected)} cases already measured", err=True)
    builder.setup_done()

    def document_cases(pending: bool) -> list[dict]:
        """The finished cases in plan order; with ``pending``, the rest as failed/timeout (a checkpoint)."""
        out = []
        for c in selected:
            if c.case_id(hw_of(c)) in cp.done:
                out.append(cp.done[c.case_id(hw_of(c))])
            elif pending:
                out.append(tr.failed(c.case_id(hw_of(c)), workload=c.workload, hardware=hw_of(c), key=c.key,
                                     parameters=dict(sorted((dict(c.params) | common).items())), kind="timeout",
                                     message="not measured: the run was cut off before this case (a checkpoint written during the run)"))
        return out

    last_write = [time.monotonic()]

    def on_case(case: cases_mod.Case, result: dict) -> None:
        cp.record(case.case_id(hw_of(case)), result)
        if checkpoint_seconds and time.monotonic() - last_write[0] >= checkpoint_seconds:
            builder.gpu = env.gpu_info(device, used=gpus if device.type == "cuda" else 1)
            save(builder.document(document_cases(True), shard=opts.shard), opts.output, opts.name, overwrite=opts.overwrite)
            last_write[0] = time.monotonic()

    deadline = t_start + time_budget if time_budget else None
    with click.progressbar(length=len(todo), label=f"groundtruth {suite}", file=sys.stderr) as bar:
        _measure(suite, todo, Measuring(device, gpus, iters, warmup, tiny, tf32, graphs), plan, hw, ids, common,
                 progress=lambda _case: bar.update(1), deadline=deadline, on_case=on_case)

    # clocks are read when the document is written: those at the end of the run
    builder.gpu = env.gpu_info(device, used=gpus if device.type == "cuda" else 1)
    finish(builder, document_cases(False), opts, cp)


if __name__ == "__main__":  # pragma: no cover
    main()
