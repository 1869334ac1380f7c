"""serving-groundtruth CLI: the runner kit's verbs (``run``, ``cases``) for a serving engine on a GPU."""

from __future__ import annotations

import json
import lzma
import time
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__
from .document import RUNNER, Point, build_cases, plan_points, raw_name

CONFIG_HELP = ('JSON: {"engine": {scheduler_type, block_size, max_batch_tokens, num_blocks, max_requests_per_batch, '
               'use_cuda_graph, use_async_batching, allow_block_sharing}, "points": [ids], "repeat": [ids]} '
               '(schemas/config/serving-groundtruth.v1.schema.json).')

#: (substring of the CUDA device name, catalog id) — data/hardware/hardware.json; the first match wins
CARDS = (("H200", "H200-SXM-141GB"), ("H100", "H100-SXM5-80GB"), ("A100-SXM4-80GB", "A100-SXM4-80GB"))


@runner_group(RUNNER, __version__)
def main() -> None:
    """Serve W5's requests through a real continuous-batching engine on a GPU and time every request.

    The engine is Hugging Face transformers' own (transformers.generation.continuous_batching,
    pinned 5.17.0 as on the GPU image): paged KV cache, FIFO scheduler with a token budget per
    step, CUDA graphs, paged SDPA attention. The model is Llama-2-7B's architecture in fp16 with
    random weights (latency depends on shapes, not values; nothing is downloaded) and EOS is
    ignored, so each request generates exactly its trace length. A load generator submits each
    request at its arrival time (--trace: a serving-trace v1 document, e.g. the one
    `vidur-runner trace` writes from VIDUR's W5 requests); per request the document records
    arrival, first token and completion, and per load point TTFT / TPOT / e2e percentiles,
    makespan and throughput, with the engine's resolved settings (cache blocks, token budget,
    CUDA graphs). --repeat serves a point again for the spread.

    Options, exit codes and the keep-results policy are the runner contract of packages/README.md.

    \b
    Example (on a GPU machine):
      serving-groundtruth run --trace data/workloads/serving/w5-serving-trace.json \\
          --keep-raw data/evaluation/serving/outputs --repeat qps4 --time-budget 300
      serving-groundtruth cases --trace data/workloads/serving/w5-serving-trace.json
    """


def _trace(path: Path | None) -> dict[str, Any]:
    if path is None:
        raise UserError("--trace: a serving-trace v1 document is required (e.g. data/workloads/serving/w5-serving-trace.json)")
    return ms.read(path, "serving-trace")


def _plan(opts: RunOptions, trace_path: Path | None, points: str | None, repeat: tuple[str, ...]) -> tuple[dict[str, Any], list[Point]]:
    trace = _trace(trace_path)
    cfg = opts.config_doc or {}
    chosen = [p.strip() for p in points.split(",") if p.strip()] if points else cfg.get("points")
    try:
        planned = plan_points(trace, chosen, list(repeat) or cfg.get("repeat", []))
    except ValueError as exc:
        where = "--points/--repeat" if points or repeat else (f"{opts.config}: field points" if opts.config else "--trace")
        raise UserError(f"{where}: {exc}") from None
    return trace, opts.select(planned)


def _trace_options(f: Any) -> Any:
    f = click.option("--repeat", multiple=True, metavar="ID",
                     help="Serve this point a second time after the others (the spread of a repeated point); repeatable.")(f)
    f = click.option("--points", default=None, metavar="ID,ID",
                     help="Only these points of the trace, in this order.  [default: every point, in the trace's order]")(f)
    f = click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="The serving-trace v1 document to serve (required).")(f)
    return f


@main.command("cases")
@run_options(tool="serving-groundtruth", output="data/evaluation/serving", verb="cases",
             config_schema=RUNNER, config_help=CONFIG_HELP)
@_trace_options
def cases_cmd(opts: RunOptions, trace_path: Path | None, points: str | None, repeat: tuple[str, ...]) -> None:
    """Print the planned load points as JSON lines; serves nothing."""
    _, planned = _plan(opts, trace_path, points, repeat)
    for p in planned:
        click.echo(json.dumps(p.planned(), sort_keys=True))


def _hardware(device: str, given: str | None) -> str:
    if given:
        return given
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    if not any(form in name for form in ("PCIe", "NVL")):
        for needle, hid in CARDS:
            if needle in name:
                return hid
    raise UserError(f"--hardware: the GPU {name!r} has no id in data/hardware/hardware.json; name the hardware it is")


@main.command("run")
@run_options(tool="serving-groundtruth", output="data/evaluation/serving", verb="run", tool_path=False, jobs=False,
             config_schema=RUNNER, config_help=CONFIG_HELP)
@_trace_options
@click.option("--device", default="cuda", show_default=True, help="torch device; a CPU run needs --tiny.")
@click.option("--tiny", is_flag=True, help="A tiny Llama instead of Llama-2-7B (CPU tests of the harness; its keys say so).")
@click.option("--hardware", default=None, help="Catalog id to file the measurements under.  [default: from the GPU's name]")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None,
              help="Seconds of serving; a point that would not fit is left unmeasured (unavailable, measured by --resume).")
@click.option("--drain-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds after a point's last arrival for its requests to finish; later ones are errors (the engine saturated).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and prompt tokens.")
def run_cmd(opts: RunOptions, trace_path: Path | None, points: str | None, repeat: tuple[str, ...], device: str,
            tiny: bool, hardware: str | None, time_budget: float | None, drain_timeout: float, seed: int) -> None:
    """Serve the planned points on the GPU and write one tool-run v2 document."""
    from mtap_schemas import toolrun

    trace, planned = _plan(opts, trace_path, points, repeat)
    if not device.startswith("cuda") and not tiny:
        raise UserError("--device: Llama-2-7B is served on a CUDA GPU; a CPU run is a harness test and needs --tiny")
    engine_settings = (opts.config_doc or {}).get("engine", {})
    if hardware is None and device.startswith("cuda"):
        _require_cuda()
    hw = _hardware(device, hardware)
    plan_doc = {"trace": ms.sha256_file(trace_path), "points": [p.planned() for p in planned], "hardware": hw,
                "engine": engine_settings, "tiny": tiny, "seed": seed}
    checkpoint = opts.checkpoint(plan_doc)
    builder = toolrun.ToolRun(RUNNER, __version__, toolrun.Tool("transformers-cb", None, "measured"), config=opts.config)
    # a point left unmeasured by the last call's time budget is measured now
    for ident in [i for i, r in checkpoint.done.items() if r.get("skipped")]:
        del checkpoint.done[ident]
    todo = [p for p in planned if p.ident not in checkpoint.done]
    engine = None
    t0 = time.monotonic()  # --time-budget counts from here: model load and warm-up included
    here: dict[str, Any] | None = None  # this machine's environment, if it measures anything
    if todo:
        if device.startswith("cuda"):
            _require_cuda()
        here = ms.environment(gpu=_gpu_info(device) if device.startswith("cuda") else None,
                              packages={RUNNER: __version__, **_packages()})
        from .engine import Engine

        reqs = [r for p in todo for r in p.requests]
        click.echo(f"loading the model and warming the engine up ({'tiny Llama' if tiny else 'Llama-2-7B fp16'}, {device})", err=True)
        engine = Engine(device, tiny=tiny, seed=seed, settings=engine_settings,
                        max_prompt=max(r["prompt_tokens"] for r in reqs), max_output=max(r["output_tokens"] for r in reqs))
        click.echo(f"engine ready: load {engine.load_s:.1f} s, warmup {engine.warmup_s:.1f} s; "
                   f"{engine.resolved['num_blocks']} blocks of {engine.resolved['block_size']}, "
                   f"{engine.resolved['max_batch_tokens']} tokens per step", err=True)
        # one throw-away pass so the first measured point does not pay for the engine's lazy graph captures
        warm = todo[0].requests[: min(16, len(todo[0].requests))]
        engine.serve([{**r, "arrival_s": 0.0} for r in warm], seed=seed + 999, timeout_s=drain_timeout, label="warm-")
    builder.setup_done()

    def serve(p: Point) -> dict[str, Any]:
        assert engine is not None
        need = p.requests[-1]["arrival_s"] + 10.0
        if time_budget is not None and time.monotonic() - t0 + need > time_budget:
            return {"skipped": f"not measured: the rest of --time-budget {time_budget:g} s would not cover its {need:.0f} s"}
        served = engine.serve(p.requests, seed=seed + p.run, timeout_s=drain_timeout, label=f"{p.ident}-")
        raw = {"point": p.planned(), "hardware": hw, "environment": here, "settings": served.settings, "wall_s": served.wall_s,
               "complete": served.complete, "note": served.note, "requests": served.requests, "steps": served.steps}
        if opts.keep_raw is not None:
            _save_raw(opts.keep_raw / raw_name(hw, p), raw)
        return raw

    try:
        results = run_cases(planned, serve, jobs=1, label="points", ident=lambda p: p.ident, checkpoint=checkpoint)
    finally:
        if engine is not None:
            engine.close()
    measured = [r for r in results if not r.get("skipped")]
    environment = measured[0]["environment"] if measured else here
    version = (environment or {}).get("packages", {}).get("transformers") or _packages().get("transformers")
    builder.with_tool(toolrun.Tool("transformers-cb", version, "measured",
                                   f"transformers {version} continuous batching (the measuring machine's Python)"))
    # the machine that served the points, also when this call only assembles a resumed run's results
    builder._environment = environment
    cases = build_cases(planned, results, hw, trace, opts.keep_raw, tiny=tiny)
    # a point the time budget left out keeps the checkpoint, so --resume serves just the rest
    finish(builder, cases, opts, None if len(measured) < len(results) else checkpoint)


def _save_raw(path: Path, raw: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(lzma.compress(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode(), preset=9))
    tmp.replace(path)


def _require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UserError("--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() is False)")


def _gpu_info(device: str) -> dict[str, Any]:
    import subprocess

    import torch

    dev = torch.device(device)
    props = torch.cuda.get_device_properties(dev)
    info: dict[str, Any] = {"name": torch.cuda.get_device_name(dev), "count": 1, "cuda_version": torch.version.cuda,
                            "memory_mib": round(props.total_memory / 2**20, 1), "driver_version": None,
                            "sm_clock_mhz": None, "max_sm_clock_mhz": None, "memory_clock_mhz": None}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,clocks.mem",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30, check=True).stdout
        drv, sm, smax, mem = [x.strip() for x in out.splitlines()[0].split(",")]
        info.update(driver_version=drv, sm_clock_mhz=float(sm), max_sm_clock_mhz=float(smax), memory_clock_mhz=float(mem))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        pass
    return info


def _packages() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for name in ("torch", "transformers", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
