"""zigzag-runner: ZigZag (zigzag-dse) on ResNet-50's layers and BERT-base's matmuls."""

from __future__ import annotations

from importlib import metadata

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import accel
from mtap_schemas.accel import Case
from mtap_schemas.cli import RunOptions, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__
from .cases import CATALOG, DEFAULT_HARDWARE, HARDWARE, Config, config_from
from .run import Unit, ZigZagResults, run_unit, spec_file, spec_where

TOOL = "zigzag"
PROG = "zigzag-runner"
DIST = "zigzag-dse"
OUTPUT = "data/evaluation/zigzag"
DEFAULT_TIMEOUT = 1800.0
CONFIG_HELP = accel.config_help(PROG, CATALOG.config_field, DEFAULT_HARDWARE)


@runner_group(PROG, __version__)
def main() -> None:
    """Run ZigZag (KU Leuven's analytical DNN-accelerator cost model, `zigzag-dse` on PyPI,
    installed with this package) on mtap's accelerator workloads and write one tool-run v2
    document (data/evaluation/zigzag/zigzag.tool-run.json).

    \b
    Cases: every ResNet-50 convolution and its fc layer (W1, batch 1; conv1 also as the W1
    headline case) and BERT-base's encoder matmuls as 1x1 convolutions (W4, batch 1, seq 128)
    on ZigZag's shipped eyeriss-like (14x12 PEs, 16-bit operands, hardware Eyeriss-like),
    tpu-like (32x32 MACs, 8-bit, hardware TPU-like) and edge-tpu-like (8x8x4x4 MACs, 8-bit,
    hardware Edge-TPU-like) examples with their mapping files, ZigZag's LOMA mapper minimising
    latency; every case names the files and their sha256. A config can add eyeriss-chip (our
    Eyeriss chip spec with row-stationary unrolling, hardware Eyeriss) and the AlexNet and VGG-16
    tables. Layer shapes come from
    data/workloads/layers/*.layers.json. Keys match timeloop-runner's, so `aggregate` can join
    the two tools. Each distinct layer shape runs once per accelerator and yields cycles,
    energy, utilization, pJ/MAC and MACs; model totals sum their layers' runs.

    \b
    Examples:
      zigzag-runner run                            # the full matrix (90 ZigZag runs)
      zigzag-runner run --limit 3 --output /tmp/zz # a smoke test
      zigzag-runner cases --shard 1/4              # the planned cases of one shard, run nothing
    """


def load_plan(opts: RunOptions) -> tuple[Config, list[Case], dict[str, dict]]:
    """The config, every planned case (before --shard/--limit) and the hardware catalog, checked."""
    cfg = config_from(opts.config_doc)
    return (cfg, *accel.load_plan(opts, CATALOG, cfg))


@main.command("cases")
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=PROG, config_help=CONFIG_HELP)
def cases_cmd(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    accel.echo_plan(opts, load_plan(opts)[1])


def _builder(opts: RunOptions) -> tuple[tr.ToolRun, str]:
    """The document's builder, naming zigzag-dse (and numpy, onnx) as installed, and ZigZag's version."""
    version = metadata.version(DIST)
    builder = tr.ToolRun(PROG, __version__, tr.Tool(TOOL, version, "native", f"{DIST}=={version} (PyPI)"), prog=PROG,
                         config=opts.config)
    builder.packages[DIST] = version
    for dep in ("numpy", "onnx"):
        try:
            builder.packages[dep] = metadata.version(dep)
        except metadata.PackageNotFoundError:
            pass
    return builder, version


def _artifacts(arch: str) -> list[dict]:
    """The accelerator and mapping files every case of ``arch`` names (none for a mapping written per layer)."""
    return [{"path": spec_where(arch, part), "sha256": ms.sha256_file(spec_file(arch, part))}
            for part in ("accelerator", "mapping") if HARDWARE[arch][part] is not None]


@main.command("run")
@run_options(tool=TOOL, output=OUTPUT, verb="run", tool_path=False, timeout=DEFAULT_TIMEOUT, config_schema=PROG,
             config_help=CONFIG_HELP)
def run_cmd(opts: RunOptions) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v2).

    ZigZag is the zigzag-dse package installed with this runner (no tool path). Each distinct
    layer shape is one ZigZag run (a unit of --jobs, --shard and --resume), single-threaded, so
    --jobs N uses N cores; a model total needs every layer's run, so a shard holding a total
    runs that model's layers. ZigZag runs inside the worker process: --timeout stops a run with
    SIGALRM there (recorded `timeout`).
    """
    builder, version = _builder(opts)
    cfg, planned, hardware = load_plan(opts)
    selected = opts.select(planned)
    keep_raw = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units = [Unit(accel.unit_ident(arch, la), arch, la, opts.timeout, keep_raw)
             for arch, la in accel.unit_layers(planned, selected)]
    plan_json = {"units": [[u.ident, u.layer.shape_text()] for u in units], "zigzag": version, "timeout": opts.timeout,
                 "keep_raw": keep_raw}
    checkpoint = opts.checkpoint(plan_json)
    artifacts = {arch: _artifacts(arch) for arch in cfg.hardware}
    builder.setup_done()
    results = run_cases(units, run_unit, jobs=opts.jobs, label=TOOL, ident=lambda u: u.ident, checkpoint=checkpoint)
    by_shape = accel.by_shape(units, results)
    out = [accel.build_case(c, by_shape, hardware[c.hardware].get("clock_hz"), artifacts[c.arch], ZigZagResults())
           for c in selected]
    finish(builder, out, opts, checkpoint)


if __name__ == "__main__":  # pragma: no cover
    main()
