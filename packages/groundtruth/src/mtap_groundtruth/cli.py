"""The ``groundtruth`` console script: ``cases`` and ``run`` (packages/README.md's runner contract)."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms

from . import __version__
from . import cases as cases_mod
from . import config as config_mod

HELP = """Measure mtap's workloads on real GPUs with PyTorch (random weights) and write one
tool-run v1 document (tool "groundtruth", backend "measured").

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

Each compute case gets `latency` twice: timing "device" (CUDA-graph replays: what
kernel-level predictors model) and timing "eager-end-to-end" (eager PyTorch, host
launch gaps included), as median with _p10/_p90/_mean/_std/_min/_max, plus FLOPs
from torch.utils.flop_counter. The "tool" is the PyTorch on the machine it runs on;
nothing is downloaded.

\b
Example (on a GPU machine):
  groundtruth run --suite single --output data/evaluation/groundtruth --name h200-x1
  groundtruth cases --suite multi --gpus 8
CPU smoke test (not evaluation data): groundtruth run --device cpu --tiny --limit 3
"""


class UserError(click.ClickException):
    """A known user error: one line, exit 2, nothing written."""

    exit_code = 2


def common(fn: Any) -> Any:
    opts = [
        click.option("--suite", type=click.Choice(cases_mod.SUITES), default="single", show_default=True, help="Which case matrix."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="JSON file: include/exclude key globs, iters, warmup."),
        click.option("--output", type=click.Path(file_okay=False), default="data/evaluation/groundtruth", show_default=True, help="Folder for <name>.tool-run.json."),
        click.option("--name", default="groundtruth", show_default=True, help="File stem of the document."),
        click.option("--data-dir", type=click.Path(file_okay=False), default="data", show_default=True, help="The repository's data/ (hardware and workload catalogs)."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N selected cases."),
        click.option("--gpus", type=click.IntRange(min=1), default=None, help="multi: GPUs to use (default: all visible; `cases` plans 2)."),
        click.option("--hardware", default=None, help="Hardware id for the cases (default from the GPU: H100 -> H100-SXM5-80GB, H200 -> H200-SXM-141GB; for multi HGX-H100x8 / HGX-H200x8). Must name the GPU the machine has; `cases` defaults to the H100 ids."),
        click.option("--tiny", is_flag=True, help="Small stand-in models and sizes with the same code paths (CPU tests; never evaluation data)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load_catalogs(data_dir: str) -> tuple[set[str], set[str], dict[str, str]]:
    """(hardware ids, workload ids, hardware id -> the id of its GPU: a node's ``device``, else itself)."""
    try:
        hw = ms.read(Path(data_dir) / "hardware" / "hardware.json", "hardware")
        wl = ms.read(Path(data_dir) / "workloads" / "workloads.json", "workloads")
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    gpu_of = {h["id"]: h.get("device", h["id"]) for h in hw["hardware"]}
    return set(gpu_of), {w["id"] for w in wl["workloads"]}, gpu_of


def _select(suite: str, gpus: int, config: dict[str, Any], limit: int | None) -> list[cases_mod.Case]:
    planned = cases_mod.plan(suite, gpus)
    return cases_mod.select(planned, config.get("include"), config.get("exclude"), limit)


def _config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise UserError(str(exc)) from None


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="groundtruth")
def main() -> None:
    pass


@main.command("cases")
@common
def cases_cmd(suite: str, config_path: str | None, output: str, name: str, data_dir: str, limit: int | None, gpus: int | None,
              hardware: str | None, tiny: bool) -> None:
    """Print the planned cases as JSON lines; measures nothing and needs no GPU."""
    config = _config(config_path)
    hw_ids, wl_ids, _ = _load_catalogs(data_dir)
    hw = hardware or ("HGX-H100x8" if suite == "multi" else "H100-SXM5-80GB")
    if hw not in hw_ids:
        raise UserError(f"--hardware: {hw!r} is not an id in {Path(data_dir) / 'hardware' / 'hardware.json'}")
    for case in _select(suite, gpus or 2, config, limit):
        click.echo(_line(case.planned(hw)))


def _line(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@main.command("run")
@common
@click.option("--iters", type=click.IntRange(min=1), default=None, help="Timed iterations per case [default: 50, or the config's].")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Untimed iterations before timing [default: 10, or the config's].")
@click.option("--device", "device_name", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
              help="auto = cuda (refused when there is none). cpu: eager host-clock timing, hardware id 'cpu' (smoke tests).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None,
              help="Seconds; cases not started in time are written as failed (error kind timeout), so the document still lands.")
@click.option("--tf32/--no-tf32", default=False, show_default=True, help="Let fp32 matmuls and convolutions use TF32.")
@click.option("--graphs/--no-graphs", default=True, show_default=True,
              help="Also time CUDA-graph replays (device time). --no-graphs: eager only (e.g. the neusight suite, whose labels are eager).")
@click.option("--checkpoint-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="single/neusight: rewrite the document with the cases measured so far this often (0: only at the end), so a killed run leaves them.")
def run_cmd(suite: str, config_path: str | None, output: str, name: str, data_dir: str, limit: int | None, gpus: int | None,
            hardware: str | None, tiny: bool, iters: int | None, warmup: int | None, device_name: str, time_budget: float | None,
            tf32: bool, graphs: bool, checkpoint_seconds: float) -> None:
    """Measure the cases and write <output>/<name>.tool-run.json."""
    t_start = time.monotonic()
    started_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    config = _config(config_path)
    hw_ids, wl_ids, hw_gpu = _load_catalogs(data_dir)
    iters = iters if iters is not None else config.get("iters", 50)
    warmup = warmup if warmup is not None else config.get("warmup", 10)

    import torch

    from . import env, measure, multi

    if device_name == "auto":
        if not torch.cuda.is_available():
            raise UserError("--device auto: this PyTorch sees no CUDA device; groundtruth measures GPUs "
                            "(for a CPU smoke test that is not evaluation data: --device cpu --tiny)")
        device_name = "cuda"
    if device_name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this PyTorch sees no CUDA device (use --device cpu for a smoke test)")
    device = torch.device("cuda", 0) if device_name == "cuda" else torch.device("cpu")
    visible = torch.cuda.device_count() if device.type == "cuda" else 1
    if suite == "multi":
        gpus = gpus or (visible if device.type == "cuda" else 2)
        if device.type == "cuda" and gpus > visible:
            raise UserError(f"--gpus: {gpus} asked for, {visible} visible")
    else:
        gpus = 1
    hw = hardware or env.default_hardware(device, suite)
    if hw is None:
        raise UserError(f"--hardware: the GPU {torch.cuda.get_device_name(device)!r} has no id in groundtruth's card table "
                        f"(mtap_groundtruth.env.CARDS); add the card to {Path(data_dir) / 'hardware' / 'hardware.json'} and that table")
    if device.type == "cpu" and hw != "cpu":
        raise UserError(f"--hardware: {hw!r} on --device cpu: CPU runs are filed under 'cpu' only (never evaluation data)")
    if hw not in hw_ids and not (device.type == "cpu" and hw == "cpu"):
        raise UserError(f"--hardware: {hw!r} is not an id in {Path(data_dir) / 'hardware' / 'hardware.json'}")
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    if gpu_name is not None:
        card = env.hardware_for(gpu_name, "single")
        if card is None or hw_gpu.get(hw) != card:
            raise UserError(f"--hardware: {hw!r} is not the GPU this machine has ({gpu_name!r}"
                            f"{', catalog id ' + card if card else ', which has no catalog id'}): a measurement is filed under the hardware it ran on")
    selected = _select(suite, gpus, config, limit)
    for c in selected:
        if c.workload not in wl_ids:
            raise UserError(f"{Path(data_dir) / 'workloads' / 'workloads.json'}: no workload {c.workload} (case {c.key})")
    out_path = Path(output) / f"{name}.tool-run.json"
    setup_s = time.monotonic() - t_start

    config_ref = None
    if config_path:
        config_ref = {"path": str(config_path), "sha256": ms.sha256_file(config_path)}
    t_run = time.monotonic()

    def document(results: list[dict], pending: list[cases_mod.Case]) -> dict[str, Any]:
        """The tool-run document for the cases measured so far; ``pending`` cases (a checkpoint
        written while the run goes on) are listed as failed, kind timeout."""
        rows = [dict(r) for r in results]
        for c in pending:
            rows.append({"id": c.id, "key": c.key, "workload": c.workload, "hardware": hw, "artifacts": [], "parameters": dict(c.params),
                         "status": "failed", "metrics": [],
                         "error": {"kind": "timeout", "message": "not measured: the run was cut off before this case (a checkpoint written during the run)"}})
        for r in rows:
            r["id"] = f"{r['hardware']}:{r['key']}"  # unique per tool across GPUs (see Case.case_id)
            r["parameters"] = dict(sorted(r["parameters"].items()))
            r["parameters"].update(iters=iters, warmup=warmup, suite=suite)
            if gpu_name:
                r["parameters"]["gpu_name"] = gpu_name  # the card really measured
        return {
            "schema": "tool-run",
            "schema_version": ms.version("tool-run"),
            "runner": {"name": "groundtruth", "version": __version__},
            "tool": {"name": "groundtruth", "version": f"torch {torch.__version__}", "backend": "measured",
                     "location": "PyTorch " + str(Path(torch.__file__).parent)},
            # read when the document is written: clocks are those at the end of the run (or the checkpoint)
            "environment": ms.environment(gpu=env.gpu_info(device, used=gpus if device.type == "cuda" else 1), packages=env.packages(device)),
            "invocation": {"command": ["groundtruth", *sys.argv[1:]], "config": config_ref},
            "wall_clock": {"started_at": started_at, "setup_seconds": round(setup_s, 3), "run_seconds": round(time.monotonic() - t_run, 3)},
            "cases": rows,
        }

    last_checkpoint = [time.monotonic()]

    def checkpoint(results: list[dict]) -> None:
        """Every --checkpoint-seconds, write what is measured so far (atomically), so a run
        killed from outside still leaves a valid document behind."""
        if not checkpoint_seconds or time.monotonic() - last_checkpoint[0] < checkpoint_seconds:
            return
        done = {r["key"] for r in results}
        ms.write(out_path, document(results, [c for c in selected if c.key not in done]), "tool-run")
        last_checkpoint[0] = time.monotonic()

    deadline = t_start + time_budget if time_budget else None
    with click.progressbar(length=len(selected), label=f"groundtruth {suite}", file=sys.stderr) as bar:
        step = lambda _case: bar.update(1)  # noqa: E731
        if suite == "multi":
            results = multi.run_cases(selected, hw, device, gpus, iters, warmup, tiny, tf32, progress=step)
            for r in results:
                if r["status"] == "ok" and r["key"].startswith("resnet50.ddp-step"):
                    p = r["parameters"]
                    r["metrics"].append({"name": "forward_backward_flops", "value": measure.resnet50_train_flops(p["batch_run"], p["image"]),
                                         "unit": "FLOP", "kind": "derived"})
        else:
            settings = measure.Settings(device=device, iters=iters, warmup=warmup, tiny=tiny, tf32=tf32, graphs=graphs)
            results = measure.run_cases(selected, settings, hw, progress=step, deadline=deadline, checkpoint=checkpoint)

    doc = document(results, [])
    try:
        ms.write(out_path, doc, "tool-run")
    except ms.SchemaError as exc:  # a bug here, not a user error: keep the traceback
        raise RuntimeError(f"the document failed its schema: {exc}") from exc
    ok = sum(r["status"] == "ok" for r in results)
    click.echo(f"{out_path}: {ok}/{len(results)} cases ok", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
