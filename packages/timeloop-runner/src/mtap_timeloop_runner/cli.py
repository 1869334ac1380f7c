"""timeloop-runner: NVlabs Timeloop's mapper on ResNet-50's layers and BERT-base's matmuls."""

from __future__ import annotations

import click
from click.core import ParameterSource

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import accel
from mtap_schemas.accel import Case
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__
from .cases import CATALOG, DEFAULT_ARCHITECTURES, Config, config_from, spec_paths
from .run import TimeloopResults, Unit, run_unit
from .setup import setup_cmd
from .tool import Lookup, Tool, ToolPathError, locate

TOOL = "timeloop"
PROG = "timeloop-runner"
OUTPUT = "data/evaluation/timeloop"
DEFAULT_TIMEOUT = 3600.0
CONFIG_HELP = accel.config_help(PROG, CATALOG.config_field, DEFAULT_ARCHITECTURES, ', "timeout_s": 3600')


@runner_group(PROG, __version__)
def main() -> None:
    """Run NVlabs Timeloop (v3.0.3, timeloop-mapper) on mtap's accelerator workloads and write one
    tool-run v2 document (data/evaluation/timeloop/timeloop.tool-run.json).

    \b
    Cases: every ResNet-50 convolution and its fc layer (W1, batch 1; conv1 also as the W1
    headline case) and BERT-base's encoder matmuls as 1x1 convolutions (W4, batch 1, seq 128),
    on two architecture specs of our own in data/timeloop/: eyeriss-like (168 PEs, row
    stationary, hardware Eyeriss-like) and simba-like (one Simba chiplet, 1,024 MACs, hardware
    Simba-like); a config can add eyeriss-chip (the Eyeriss chip, hardware Eyeriss) and the
    AlexNet and VGG-16 tables. Layer shapes come from data/workloads/layers/*.layers.json.
    The mapper settings are fixed (data/timeloop/mapper.yaml) so runs repeat. Each distinct
    layer shape is mapped once per spec and yields cycles, energy, utilization, pJ/MAC and MACs;
    model totals sum their layers' runs.

    \b
    Where Timeloop comes from (first found wins): --tool-path (the timeloop-mapper binary, its
    folder or a build tree with bin/ and lib/), --image (a Docker image holding it, e.g.
    timeloopaccelergy/accelergy-timeloop-infrastructure:latest), MTAP_TIMELOOP_PATH, then a
    verified build made by `timeloop-runner setup` (~/.cache/mtap/timeloop/<commit>/). Without
    one every case is written `unavailable` with instructions (and a document with real
    results is kept, exit 4).

    \b
    Examples:
      timeloop-runner setup                       # build and verify the pinned Timeloop once
      timeloop-runner run --jobs 1                # the full matrix -> data/evaluation/timeloop
      timeloop-runner cases --shard 1/4           # the planned cases of one shard, run nothing
    """


def load_plan(opts: RunOptions) -> tuple[Config, list[Case], dict[str, dict]]:
    """The config, every planned case (before --shard/--limit) and the hardware catalog, checked."""
    cfg = config_from(opts.config_doc)
    return (cfg, *accel.load_plan(opts, CATALOG, cfg))


def find_tool(opts: RunOptions) -> Tool:
    """--tool-path (or --timeloop-bin), --image, MTAP_TIMELOOP_PATH, then setup's cached build."""
    from .setup import find_cached_build

    ctx = click.get_current_context()
    source = ctx.get_parameter_source("tool_path")
    lookup = Lookup(image=opts.image)
    if source == ParameterSource.COMMANDLINE:
        lookup.tool_path = str(opts.tool_path)
    elif ctx.get_parameter_source("_alias_tool_path_0") == ParameterSource.COMMANDLINE:
        lookup.tool_path, lookup.tool_path_source = str(ctx.params["_alias_tool_path_0"]), "--timeloop-bin"
    elif source == ParameterSource.ENVIRONMENT and opts.tool_path is not None:
        lookup.env_path = str(opts.tool_path)
    if lookup.tool_path and opts.image:
        raise UserError(f"{lookup.tool_path_source} and --image: give one")
    if not (lookup.tool_path or opts.image or lookup.env_path):
        lookup.cached = find_cached_build()
    try:
        return locate(lookup)
    except ToolPathError as exc:
        raise UserError(str(exc)) from None


@main.command("cases")
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=PROG, config_help=CONFIG_HELP)
def cases_cmd(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    accel.echo_plan(opts, load_plan(opts)[1])


def _timeout(opts: RunOptions, cfg: Config) -> float:
    """--timeout, else the config's timeout_s, else the default."""
    if click.get_current_context().get_parameter_source("timeout") == ParameterSource.DEFAULT and cfg.timeout_s:
        return float(cfg.timeout_s)
    return opts.timeout or DEFAULT_TIMEOUT


def _tool(opts: RunOptions, builder: tr.ToolRun) -> Tool:
    """The Timeloop to run, recorded in the document; without one every case will be unavailable."""
    tool = find_tool(opts)
    builder.with_tool(tr.Tool(TOOL, tool.version, tool.backend, tool.location))
    if tool.version:
        builder.packages[TOOL] = tool.version
    if tool.missing is not None:
        click.echo(f"{PROG}: {tool.missing[1]}; writing unavailable cases", err=True)
    return tool


def _units(opts: RunOptions, cfg: Config, planned: list[Case], selected: list[Case], tool: Tool, timeout: float,
           keep_raw: str | None) -> list[Unit]:
    """One mapper run per (spec, shape) the selected cases need."""
    specs = {arch: tuple(str(p) for p in spec_paths(opts.data_dir, arch)) for arch in cfg.architectures}
    return [Unit(accel.unit_ident(arch, la), arch, la, specs[arch], tool, timeout, keep_raw)
            for arch, la in accel.unit_layers(planned, selected)]


def _save_maps(opts: RunOptions, units: list[Unit], by_shape: dict[tuple, dict]) -> dict[tuple, dict]:
    """Each mapped unit's best mapping written to OUTPUT/NAME.maps/<spec>/<layer>.map.txt: its artifact by (spec, shape)."""
    assert opts.output is not None and opts.name is not None
    maps: dict[tuple, dict] = {}
    for u in units:
        r = by_shape[u.arch, u.layer.shape]
        if r["map"] is not None and r["stats"] is not None:
            path = ms.write_text_atomic(opts.output / f"{opts.name}.maps" / u.arch / f"{u.layer.name}.map.txt", r["map"])
            maps[u.arch, u.layer.shape] = tr.artifact(path)
    return maps


@main.command("run")
@run_options(tool=TOOL, output=OUTPUT, verb="run", image=True, timeout=DEFAULT_TIMEOUT, config_schema=PROG,
             config_help=CONFIG_HELP, aliases=["--timeloop-bin"],
             tool_path_help="Timeloop v3.0.3: the timeloop-mapper binary, its folder, or a build tree with bin/ and lib/ "
                            "(lib/ goes on LD_LIBRARY_PATH).  [default: a cached `timeloop-runner setup` build]")
@click.option("--save-maps/--no-save-maps", default=True, show_default=True,
              help="Write each best mapping to OUTPUT/NAME.maps/<spec>/<layer>.map.txt and list it as an artifact.")
def run_cmd(opts: RunOptions, save_maps: bool) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v2).

    Each distinct layer shape is one mapper run (a unit of --jobs, --shard and --resume); a
    model total needs every layer's run, so a shard holding a total runs that model's layers.
    Each timeloop-mapper runs 2 threads (num-threads in data/timeloop/mapper.yaml), so --jobs N
    keeps up to 2 x N threads busy: on a machine of C cores, --jobs C/2 fills it (--jobs 1 on
    2 cores). The document is the same for any --jobs: the threads never exchange mappings.
    """
    builder = tr.ToolRun(PROG, __version__, tr.Tool(TOOL, None, "native"), prog=PROG, config=opts.config)
    cfg, planned, hardware = load_plan(opts)
    selected = opts.select(planned)
    timeout = _timeout(opts, cfg)
    tool = _tool(opts, builder)
    keep_raw = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units = _units(opts, cfg, planned, selected, tool, timeout, keep_raw)
    plan_json = {"units": [[u.ident, u.layer.shape_text()] for u in units], "tool": tool.identity(), "timeout": timeout,
                 "keep_raw": keep_raw}
    checkpoint = opts.checkpoint(plan_json)
    builder.setup_done()
    jobs = 1 if tool.missing is not None else opts.jobs
    results = run_cases(units, run_unit, jobs=jobs, label=f"timeloop-mapper ({tool.backend})", ident=lambda u: u.ident,
                        checkpoint=checkpoint)
    by_shape = accel.by_shape(units, results)
    adapter = TimeloopResults(tool.energy_model, _save_maps(opts, units, by_shape) if save_maps else {})
    artifacts = {arch: [tr.artifact(p) for p in spec_paths(opts.data_dir, arch)] for arch in cfg.architectures}
    out = [accel.build_case(c, by_shape, hardware[c.hardware].get("clock_hz"), artifacts[c.arch], adapter)
           for c in selected]
    finish(builder, out, opts, checkpoint)


main.add_command(setup_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
