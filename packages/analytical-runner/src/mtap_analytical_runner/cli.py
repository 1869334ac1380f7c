"""analytical-runner: the roofline baseline ("Analytical") as an mtap runner, built on the runner kit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms
from mtap_schemas import toolrun
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__
from .cases import HARDWARE, Case, plan, select
from .document import (
    FLOOR_METHOD_VERSION,
    LOCATION,
    LOCATION_FLOOR,
    METHOD_VERSION,
    RUNNER,
    TOOL,
    TOOL_FLOOR,
    packages,
    read_floors,
    run_unit,
    units_for,
)
from .roofline import PRECISIONS, Hardware

CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids]}.'


def _catalogs(data_dir: Path, ids: list[str], config: Path | None, workloads: set[str]) -> dict[str, Hardware]:
    """The hardware entries the roofline needs, and a check that the workload ids exist."""
    path = data_dir / "hardware" / "hardware.json"
    entries = {e["id"]: e for e in ms.read(path, "hardware")["hardware"]}
    where = f"{config}: field hardware" if config is not None else f"{path}: field hardware"
    out = {}
    for hid in ids:
        if hid not in entries:
            raise UserError(f"{where}: no entry with id {hid!r} in {path} (known: {', '.join(sorted(entries))})")
        hw = Hardware.from_catalog(entries[hid])
        missing = [k for k in PRECISIONS if k not in hw.peak_flops]
        if missing or not hw.bandwidth:
            what = ", ".join([f"peak_flops.{k}" for k in missing] + ([] if hw.bandwidth else ["memory.bandwidth_bytes_per_s"]))
            raise UserError(f"{where}: {hid!r}: the roofline needs {what} in {path}")
        out[hid] = hw
    wpath = data_dir / "workloads" / "workloads.json"
    known = {w["id"] for w in ms.read(wpath, "workloads")["workloads"]}
    for wid in sorted(workloads - known):
        raise UserError(f"{wpath}: field workloads: no entry with id {wid!r}, which the case matrix files cases under")
    return out


def _plan(opts: RunOptions) -> tuple[list[Case], dict[str, Hardware]]:
    """The selected cases (config, then --shard/--limit) and the hardware they run on; checks before any work."""
    cfg: dict[str, Any] = opts.config_doc or {}
    hardware = list(dict.fromkeys(cfg.get("hardware", HARDWARE)))
    planned = plan(tuple(hardware))
    hw = _catalogs(opts.data_dir, hardware, opts.config, {c.workload for c in planned})
    return opts.select(select(planned, cfg.get("include"), cfg.get("exclude"))), hw


@runner_group(RUNNER, __version__)
def main() -> None:
    """Roofline ("Analytical") predictions for ResNet-50, MobileNet-V2, VGG-16, BERT-base, GPT-2 and Llama-2-7B.

    Every model is built on PyTorch's meta device (no weights, no GPU): ResNet-50 as a
    torchvision-equal definition, BERT/GPT-2/Llama-2-7B from transformers configs. Each ATen
    operator it runs is recorded with its FLOPs (torch.utils.flop_counter's formulas) and the
    bytes it moves (inputs incl. weights + outputs, per dtype; views free). Per operator,
    latency = max(FLOPs / peak, bytes / bandwidth) with the datasheet figures of
    data/hardware/hardware.json (A100-SXM4-80GB, H100-SXM5-80GB, H200-SXM-141GB); a layer or
    model is the sum of its operators. With --floor FILE, the second baseline (tool
    analytical-floor): each operator takes max(roofline, the per-kernel floor measured on its
    GPU by groundtruth's floor suite).

    The "tool" is this package plus torch and transformers (its dependencies): there is no
    --tool-path, --image or --timeout. Options, exit codes and the document follow the runner
    contract of packages/README.md.

    Example: analytical-runner run --output data/evaluation/analytical
    """


@main.command()
@run_options(tool=TOOL, output="data/evaluation/analytical", verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    selected, _ = _plan(opts)
    for case in selected:
        click.echo(json.dumps(case.planned(), sort_keys=True))


@main.command()
@run_options(tool=TOOL, output="data/evaluation/analytical", verb="run", tool_path=False, keep_raw=False,
             config_schema=RUNNER, config_help=CONFIG_HELP)
@click.option("--floor", "floor_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The second baseline: a groundtruth `--suite floor` tool-run document; each operator gets "
                   "max(roofline, the measured floor of its GPU) and the document is tool analytical-floor "
                   "[default name: analytical-floor]. A GPU the document has no floor for gets unavailable cases.")
def run(opts: RunOptions, floor_path: Path | None) -> None:
    """Trace every computation the selected cases need and write one tool-run v2 document."""
    if floor_path is None:
        tool = toolrun.Tool(TOOL, METHOD_VERSION, "native", LOCATION)
    else:
        tool = toolrun.Tool(TOOL_FLOOR, FLOOR_METHOD_VERSION, "native", LOCATION_FLOOR)
        if click.get_current_context().params.get("name") is None:
            opts.name = f"{TOOL_FLOOR}.shard-{opts.shard[0]}-of-{opts.shard[1]}" if opts.shard and opts.shard[1] > 1 else TOOL_FLOOR
    builder = toolrun.ToolRun(RUNNER, __version__, tool, config=opts.config, packages=packages())
    selected, hw = _plan(opts)
    hw_path = opts.data_dir / "hardware" / "hardware.json"
    artifacts = [toolrun.artifact(hw_path)]
    floors = None
    if floor_path is not None:
        try:
            floors = read_floors(floor_path, list(hw))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        artifacts.append(toolrun.artifact(floor_path))
    units = units_for(selected, hw, artifacts, floors)
    plan_doc: dict[str, Any] = {"cases": [c.planned() for c in selected], "hardware": artifacts}
    if floors is not None:
        plan_doc["floors"] = {k: (v if isinstance(v, str) else [v.gemm_s, v.other_s]) for k, v in floors.items()}
    checkpoint = opts.checkpoint(plan_doc)
    builder.setup_done()
    results = run_cases(units, run_unit, jobs=opts.jobs, label="tracing", ident=lambda u: u.ident, checkpoint=checkpoint)
    by_id = {case["id"]: case for unit_cases in results for case in unit_cases}
    finish(builder, [by_id[c.id] for c in selected], opts, checkpoint)


if __name__ == "__main__":  # pragma: no cover
    main()
