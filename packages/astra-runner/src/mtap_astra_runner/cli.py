"""astra-runner: ASTRA-sim 2.0 (analytical network backend) on mtap's workload matrix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__, calibration, compute, resnet50, traces
from . import cases as cases_mod
from .runner import Unit, derived_case, run_unit
from .setup import setup_cmd
from .tool import ENV_VAR, HOW_TO, IMAGE_BIN_DIR, OLD_ENV_VAR, Tool, docker_tool, native_tool, no_tool

TOOL = "astra-sim"
#: the tool name of a document run with a network calibration: its D1 rows stay apart from astra-sim's
CALIBRATED_TOOL = "astra-sim-calibrated"
PROG = "astra-runner"
OUTPUT = "data/evaluation/astra-sim"
DEFAULT_TIMEOUT = 900.0
CONFIG_HELP = ("JSON selecting cases and run defaults (schemas/config/astra-runner.v1.schema.json): platform, "
               "include/exclude (case-id globs), studies, binaries, compute_source, timeout_s.")


@runner_group(PROG, __version__)
def main() -> None:
    """Run ASTRA-sim 2.0's analytical network backend on mtap's workload matrix and write one
    tool-run v2 document (data/evaluation/astra-sim/astra-sim.tool-run.json).

    \b
    Cases: W6 collectives (all-reduce, all-gather, reduce-scatter, all-to-all x 2-16 NPUs
    x 1 MiB, 64 MiB, 1 GiB), W2/W3/W10 data-parallel ResNet-50 training steps (2-16 NPUs),
    the topology study (Ring/Switch/FullyConnected x ring/direct/halvingDoubling/
    doubleBinaryTree), ASTRA-sim's HGX-H100 reference example and the 2->8 NPU
    communication scaling, on both binaries (Congestion_Aware, Congestion_Unaware).
    Every input is generated here: network YAML, system and memory JSON from
    data/hardware/hardware.json, Chakra execution traces with PyPI's mlc-chakra, ResNet-50's
    layers from data/workloads/layers/resnet50.layers.json.

    \b
    Where ASTRA-sim comes from (first found wins): --tool-path (a binary, its folder or a
    built checkout), --image (a Docker image holding the binaries), MTAP_ASTRA_SIM_PATH,
    then a verified build made by `astra-runner setup` (~/.cache/mtap/astra-sim/<commit>/).
    Without one every case is written `unavailable` with instructions.

    \b
    Examples:
      astra-runner setup                      # build the pinned ASTRA-sim once
      astra-runner run                        # the full matrix -> data/evaluation/astra-sim
      astra-runner cases --shard 1/4          # the planned cases of one shard, run nothing
      astra-runner calibrate --measured data/evaluation/groundtruth/h200-x2.tool-run.json
                                              # fit the 2-GPU host's link latency and bandwidth
    """


def choose(opts: RunOptions, planned: list[cases_mod.Case]) -> list[cases_mod.Case]:
    """--shard over groups (a derived case with its inputs), then --limit over cases (plus the
    inputs of derived ones); nothing left is the kit's one-line user error."""
    index = {c.id: i for i, c in enumerate(planned)}
    sliced = [c for g in replace(opts, limit=None).select(cases_mod.groups(planned)) for c in g]
    sliced.sort(key=lambda c: index[c.id])
    if opts.limit:
        sliced = cases_mod.with_inputs(sliced[: opts.limit], planned)
    return sliced


def platform_of(opts: RunOptions, platform: str | None) -> str:
    """--platform, else the config's ``platform``, else HGX-H100."""
    return platform or (opts.config_doc or {}).get("platform") or cases_mod.DEFAULT_PLATFORM


def plan(opts: RunOptions, platform: str | None = None, calib: calibration.Calibration | None = None) -> list[cases_mod.Case]:
    name = platform_of(opts, platform)
    built = cases_mod.build(name)
    if calib is not None:
        built = calibrated(built, calib, name)
    return choose(opts, cases_mod.select(built, opts.config_doc or {}))


def calibrated(built: list[cases_mod.Case], calib: calibration.Calibration, platform: str) -> list[cases_mod.Case]:
    """The plan with a network calibration: its own points (and derived cases of them) left out, never
    scored; the cases on the calibrated machine name the calibration in their parameters."""
    nodes = sorted({c.hardware for c in built})
    if calib.hardware not in nodes:
        raise UserError(f"{calib.given}: field hardware: {calib.hardware!r} is not a machine of --platform {platform} "
                        f"(its machines: {', '.join(nodes)})")
    by_id = {c.id: c for c in built}
    out = []
    for c in built:
        if calib.covers(c) or any(calib.covers(by_id[i]) for i in c.inputs):
            continue
        if c.hardware == calib.hardware and "bandwidth_gbps" not in c.params:  # the reference example keeps its own network
            c = replace(c, params={**c.params, "calibration": calib.path, "calibration_sha256": calib.sha256})
        out.append(c)
    return out


calibration_option = click.option(
    "--calibration", "calibration_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="A network calibration (schemas/calibration.v1.schema.json, written by `astra-runner calibrate`): its "
         "machine's cases run with the fitted link latency and bandwidth and declare independence "
         "calibrated-separately; its own points are left out (never scored); the document's tool is "
         "astra-sim-calibrated (give --name, e.g. astra-sim-h200-x2-nvlink-calibrated).")


platform_option = click.option(
    "--platform", type=click.Choice(sorted(cases_mod.PLATFORMS)), default=None,
    help="The GPU machine the matrix runs on: HGX-H100 (HGX-H100x8, HGX-H100x16 at 16 NPUs), HGX-H200 (HGX-H200x8, "
         "up to 8 NPUs, ids prefixed hgx-h200/) or H200-x2-NVLink (H200-SXM-141GB-x2-nvlink, the 2-GPU direct-NVLink "
         "host: 2 NPUs, one direct link, W6 and the W3 step only, ids prefixed h200-x2-nvlink/; write it with "
         "--name astra-sim-h200-x2-nvlink).  [default: the config's platform, else HGX-H100]")


def load_hardware(data_dir: Path, ids: set[str], network: str | None = None) -> dict[str, dict[str, Any]]:
    """The catalog entries of ``ids``, each with the figures a network needs; with ``network`` (the
    platform's ASTRA-sim topology) each entry's interconnect.topology must be the one it models."""
    path = data_dir / "hardware" / "hardware.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (--data-dir must be the repository's data/ folder)")
    by_id = {h["id"]: h for h in ms.read(path, "hardware")["hardware"]}
    for hid in sorted(ids):
        if hid not in by_id:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r}")
        h = by_id[hid]
        ic = h.get("interconnect") or {}
        for field, value in (("interconnect.bandwidth_bytes_per_s", ic.get("bandwidth_bytes_per_s")),
                             ("interconnect.latency_ns", ic.get("latency_ns")),
                             ("memory.bandwidth_bytes_per_s", (h.get("memory") or {}).get("bandwidth_bytes_per_s")),
                             ("peak_flops.fp32", (h.get("peak_flops") or {}).get("fp32"))):
            if not isinstance(value, (int, float)) or value <= 0:
                raise UserError(f"{path}: hardware {hid}: field {field}: expected a positive number")
        modelled = cases_mod.CATALOG_TOPOLOGY.get(ic.get("topology", ""))
        if network is not None and modelled != network:
            raise UserError(f"{path}: hardware {hid}: field interconnect.topology: expected one ASTRA-sim models as {network} "
                            f"(the platform's network), got {ic.get('topology')!r}")
    return by_id


def check_workloads(data_dir: Path, workloads: set[str]) -> None:
    path = data_dir / "workloads" / "workloads.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (--data-dir must be the repository's data/ folder)")
    known = {w["id"] for w in ms.read(path, "workloads")["workloads"]}
    for w in sorted(workloads - known):
        raise UserError(f"{path}: field workloads: no workload {w}")


def cached_build() -> Path | None:
    """A verified build made by ``astra-runner setup`` (setup.find_cached_build), or None."""
    from .setup import find_cached_build

    return find_cached_build()


def find_tool(opts: RunOptions, image_bin_dir: str | None) -> Tool:
    """--tool-path, then --image, then the environment, then a cached setup build (module doc of tool.py)."""
    ctx = click.get_current_context()
    sources = {name: ctx.get_parameter_source(name) for name in ("tool_path", "_alias_tool_path_0")}
    on_command_line = ParameterSource.COMMANDLINE in sources.values()
    if on_command_line and opts.image:
        raise UserError("--tool-path and --image: give one (the binaries' folder inside the image is --image-bin-dir)")
    if opts.image:
        return docker_tool(opts.image, image_bin_dir)
    tool_path = opts.tool_path
    if sources["_alias_tool_path_0"] == ParameterSource.COMMANDLINE and sources["tool_path"] != ParameterSource.COMMANDLINE:
        tool_path = ctx.params["_alias_tool_path_0"]  # the kit lets the environment beat the old flag name
    if tool_path is not None:
        where = "--tool-path" if on_command_line else f"${ENV_VAR}/${OLD_ENV_VAR}"
        try:
            return native_tool(tool_path, where)
        except FileNotFoundError:
            raise UserError(f"{where} {tool_path}: no such file or directory ({HOW_TO})") from None
    cached = cached_build()
    if cached is not None:
        return native_tool(cached / "bin", "astra-runner setup's cached build")
    return no_tool()


@main.command("cases")
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=PROG, config_help=CONFIG_HELP)
@platform_option
@calibration_option
def cases_cmd(opts: RunOptions, platform: str | None, calibration_path: Path | None) -> None:
    """Print the planned case matrix as JSON lines; runs nothing."""
    calib = calibration.load(calibration_path) if calibration_path is not None else None
    for c in plan(opts, platform, calib):
        click.echo(json.dumps(c.planned(), sort_keys=True))


@main.command("run")
@run_options(tool=TOOL, output=OUTPUT, verb="run", image=True, timeout=DEFAULT_TIMEOUT, config_schema=PROG,
             config_help=CONFIG_HELP, aliases=["--binary"], env_aliases=[OLD_ENV_VAR], keep_raw_aliases=["--keep-logs"],
             tool_path_help="ASTRA-sim's analytical binary, its folder, a `setup` build folder or a built checkout.  "
                            "[default: a cached `astra-runner setup` build]")
@click.option("--image-bin-dir", default=None,
              help="With --image: the folder of the binaries inside the image.  [default: the image's "
                   f"{ENV_VAR} (or {OLD_ENV_VAR}) variable, as mtap's images set it, else {IMAGE_BIN_DIR}]")
@click.option("--compute-source", type=click.Choice(["auto", "groundtruth", "roofline"]), default=None,
              help="Per-layer ResNet-50 compute: committed GPU ground truth, the roofline, or auto (ground truth when "
                   "complete).  [default: the config's compute_source, else auto]")
@platform_option
@calibration_option
def run_cmd(opts: RunOptions, image_bin_dir: str | None, compute_source: str | None, platform: str | None,
            calibration_path: Path | None) -> None:
    """Run the cases and write one tool-run v2 document."""
    calib = calibration.load(calibration_path) if calibration_path is not None else None
    tool_name = TOOL if calib is None else CALIBRATED_TOOL
    builder = tr.ToolRun(PROG, __version__, tr.Tool(tool_name, None, "native"), prog=PROG, config=opts.config)
    cfg = opts.config_doc or {}
    ctx = click.get_current_context()
    timeout = opts.timeout or DEFAULT_TIMEOUT
    if ctx.get_parameter_source("timeout") == ParameterSource.DEFAULT and "timeout_s" in cfg:
        timeout = float(cfg["timeout_s"])
    choice = compute_source or cfg.get("compute_source", "auto")

    selected = plan(opts, platform, calib)
    hardware = load_hardware(opts.data_dir, {c.hardware for c in selected},
                             cases_mod.PLATFORMS[platform_of(opts, platform)].network)
    if calib is not None and calib.hardware in hardware:
        hardware = {**hardware, calib.hardware: calibration.with_network(hardware[calib.hardware], calib.latency_ns, calib.bandwidth)}
    check_workloads(opts.data_dir, {c.workload for c in selected})
    # per (batch, hardware) of the DDP cases: the same for a case whatever shard or selection it is in
    layer_times: dict[tuple[int, str], compute.LayerTimes] = {}
    wanted = sorted({(c.params["batch_per_gpu"], c.hardware) for c in selected if c.params.get("kind") == "ddp"})
    if wanted:
        layers = resnet50.layers(opts.data_dir)
        for b, hid in wanted:
            try:
                layer_times[b, hid] = compute.layer_times(choice, opts.data_dir, hardware[hid], b, layers,
                                                          gpu=compute.gpu_of(hardware[hid]))
            except LookupError as exc:
                raise UserError(str(exc)) from None
    tool = find_tool(opts, image_bin_dir)
    if tool.found_by == "none":
        click.echo(f"{PROG}: no ASTRA-sim found, writing unavailable cases: {HOW_TO}", err=True)
    builder.with_tool(tr.Tool(tool_name, tool.version, tool.backend, tool.location))
    packages = dict(tool.packages)
    for name, version in (("mlc-chakra", traces.chakra_version()), ("protobuf", _version("protobuf"))):
        if version:
            packages[name] = version
    builder.packages.update(packages)

    keep_raw = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units = [Unit(c, hardware[c.hardware], tool, layer_times.get((c.params.get("batch_per_gpu"), c.hardware)), timeout, keep_raw,
                  calib) for c in selected if not c.inputs]
    plan_json = {"cases": [u.case.planned() for u in units], "tool": tool.identity(), "timeout": timeout,
                 "calibration": calib.sha256 if calib else None,
                 "compute": {f"b{b}.{hid}": [lt.source, lt.detail, lt.sha256] for (b, hid), lt in layer_times.items()}, "keep_raw": keep_raw}
    checkpoint = opts.checkpoint(plan_json)
    builder.setup_done()
    results = run_cases(units, run_unit, jobs=opts.jobs, label=TOOL, ident=lambda u: u.case.id, checkpoint=checkpoint)
    done = {u.case.id: r for u, r in zip(units, results)}
    out = [done[c.id] if c.id in done else derived_case(c, done) for c in selected]
    finish(builder, out, opts, checkpoint)


def _point(value: str) -> tuple[str, str]:
    coll, _, size = value.partition(":")
    if coll not in cases_mod.COLLECTIVES or size not in cases_mod.SIZES:
        raise click.BadParameter(f"{value!r}: expected COLLECTIVE:SIZE, COLLECTIVE one of {', '.join(cases_mod.COLLECTIVES)}, "
                                 f"SIZE one of {', '.join(cases_mod.SIZES)}")
    return coll, size


@main.command("calibrate")
@click.option("--measured", "measured_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The measured tool-run document holding the calibration points (e.g. "
                   "data/evaluation/groundtruth/h200-x2.tool-run.json).")
@click.option("--output", "output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The calibration document to write.  [default: data/calibration/astra-sim-<platform>.json]")
@platform_option
@click.option("--npus", type=click.IntRange(2), default=None,
              help="NPUs of the calibration points.  [default: the most the platform's smallest machine holds: 2 on "
                   "H200-x2-NVLink, 8 on an HGX node]")
@click.option("--point", "points", multiple=True, callback=lambda _c, _p, v: [_point(x) for x in v],
              help="A calibration point COLLECTIVE:SIZE (repeatable).  [default: all-reduce:1mib and all-reduce:1gib]")
@click.option("--metric", default="latency", show_default=True, help="The measured metric (ms) fitted.")
@click.option("--timing", default="device", show_default=True, help="The measured metric's timing.")
@click.option("--tool-path", type=click.Path(path_type=Path), default=None, envvar=[ENV_VAR, OLD_ENV_VAR],
              help=f"ASTRA-sim's analytical binary, its folder, a `setup` build or a built checkout (also ${ENV_VAR}).  "
                   "[default: a cached `astra-runner setup` build]")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("data"), show_default=True,
              help="The repository's data/ folder (hardware catalog).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds one ASTRA-sim run may take.")
def calibrate_cmd(measured_path: Path, output: Path | None, platform: str | None, npus: int | None,
                  points: list[tuple[str, str]], metric: str, timing: str, tool_path: Path | None, data_dir: Path,
                  timeout: float) -> None:
    """Fit a machine's network link latency and bandwidth by running ASTRA-sim against measured
    collectives (the calibration split, by default all-reduce at 1 MiB and 1 GiB: two points, two
    unknowns) and write a calibration v1 document (schemas/calibration.v1.schema.json).

    \b
    The fit is Newton's method on (latency, 1/bandwidth) from the catalog's figures, every time
    simulated by ASTRA-sim (Congestion_Aware, the platform's own network, ring); the document holds
    its inputs (the measured document's path and sha256, the cases, values and spread), every
    iterate, ASTRA-sim's local affine model around the fit (checked on probes), the fitted values
    and the residuals. `astra-runner run --calibration FILE` then scores the other cases with it.

    \b
    Example (from the repository root):
      astra-runner calibrate --measured data/evaluation/groundtruth/h200-x2.tool-run.json
    """
    import sys

    name = platform or cases_mod.DEFAULT_CALIBRATION_PLATFORM
    n = npus or calibration.default_npus(name)
    keys = points or list(calibration.DEFAULT_POINTS)
    if len(keys) != 2:
        raise UserError(f"--point: expected 2 points (two unknowns: latency and bandwidth), got {len(keys)}")
    out = output or Path(calibration.default_output(name))
    pts, _doc = calibration.measured_points(measured_path, name, n, keys, metric, timing)
    hardware = load_hardware(data_dir, {pts[0].case.hardware}, cases_mod.PLATFORMS[name].network)[pts[0].case.hardware]
    if tool_path is not None:
        try:
            tool = native_tool(tool_path, "--tool-path")
        except FileNotFoundError:
            raise UserError(f"--tool-path {tool_path}: no such file or directory ({HOW_TO})") from None
    else:
        cached = cached_build()
        if cached is None:
            raise UserError(f"no ASTRA-sim to fit with: {HOW_TO}")
        tool = native_tool(cached / "bin", "astra-runner setup's cached build")
    if calibration.BINARY in tool.missing:
        raise UserError(f"{calibration.BINARY} binary: {tool.missing[calibration.BINARY][1]}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {out}: cannot create its folder: {exc.strerror or exc}") from None
    sim = calibration.Simulator(tool, hardware, pts, timeout)
    ic = hardware["interconnect"]
    try:
        fitted = calibration.fit(sim, float(ic["latency_ns"]), float(ic["bandwidth_bytes_per_s"]))
    except calibration.FitError as exc:
        raise click.ClickException(f"the fit failed: {exc}") from None
    model = calibration.local_model(sim, fitted["latency_ns"], fitted["bandwidth_bytes_per_s"])
    doc = calibration.document(runner=(PROG, __version__), command=["calibrate", *sys.argv[2:]] if sys.argv[1:2] == ["calibrate"]
                               else ["calibrate"], tool=tool, platform=name, npus=n, hardware=hardware, measured_path=measured_path,
                               points=pts, metric=metric, timing=timing, fitted=fitted, model=model)
    ms.write(out, doc, calibration.SCHEMA)
    res = ", ".join(f"{p['key']} {p['residual_ns']:+g} ns" for p in doc["points"])
    click.echo(f"{hardware['id']}: latency {fitted['latency_ns']:g} ns, bandwidth {fitted['bandwidth_bytes_per_s'] / 1e9:.3f} GB/s "
               f"(catalog {float(ic['latency_ns']):g} ns, {float(ic['bandwidth_bytes_per_s']) / 1e9:g} GB/s); residuals {res}; "
               f"{len(sim.runs)} ASTRA-sim runs -> {out}", err=True)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


main.add_command(setup_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
