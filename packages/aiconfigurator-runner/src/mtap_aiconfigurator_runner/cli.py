"""aiconfigurator-runner: AIConfigurator (NVIDIA Dynamo) as an mtap runner, built on the runner kit."""

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

TOOL = "aiconfigurator"
RUNNER = "aiconfigurator-runner"
OUTPUT = "data/evaluation/aiconfigurator"
CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids]}.'
GROUNDTRUTH = (Path("data/evaluation/groundtruth/h100-x1.tool-run.json"), Path("data/evaluation/groundtruth/h200-x1.tool-run.json"))


def _plan(opts: RunOptions) -> list[Case]:
    """The selected cases; every check before any work."""
    cfg: dict[str, Any] = opts.config_doc or {}
    hardware = list(dict.fromkeys(cfg.get("hardware", HARDWARE)))
    path = opts.data_dir / "hardware" / "hardware.json"
    entries = {e["id"] for e in ms.read(path, "hardware")["hardware"]}
    where = f"{opts.config}: field hardware" if opts.config is not None else f"{path}: field hardware"
    for hid in hardware:
        if hid not in HARDWARE:
            raise UserError(f"{where}: {hid!r} is not a GPU this runner has ground truth for (known: {', '.join(HARDWARE)})")
        if hid not in entries:
            raise UserError(f"{where}: no entry with id {hid!r} in {path}")
    wpath = opts.data_dir / "workloads" / "workloads.json"
    known = {w["id"] for w in ms.read(wpath, "workloads")["workloads"]}
    planned = plan(tuple(hardware))
    for wid in sorted({c.workload for c in planned} - known):
        raise UserError(f"{wpath}: field workloads: no entry with id {wid!r}, which the case matrix files cases under")
    return opts.select(select(planned, cfg.get("include"), cfg.get("exclude")))


@runner_group(RUNNER, __version__)
def main() -> None:
    """AIConfigurator's latency predictions for Llama-2-7B prefill and decode (W5) on H100 SXM and H200 SXM.

    AIConfigurator (aiconfigurator 0.12.0, Apache-2.0, NVIDIA Dynamo, from PyPI) is called through its
    public single-point API cli_estimate (the programmatic `aiconfigurator cli estimate`) in its
    static_ctx (one prefill) and static_gen (one decode step) modes, at exactly the cases our GPU
    ground truth measured (same model shape, batch, tokens/KV length, one GPU, TP=1), with its own
    default backend (trtllm), database version and database mode (SILICON): the operation times
    NVIDIA collected on its own H100 SXM / H200 SXM machines. GPT-2, BERT and fp32 cases are
    recorded as unsupported, with the reason.

    The tool is the pinned Python package (a dependency): there is no --tool-path, --image,
    --timeout or --keep-raw. Options, exit codes and the document follow the runner contract of
    packages/README.md. `compare` prints the table of AIConfigurator vs the measurements.

    Example: aiconfigurator-runner run --output data/evaluation/aiconfigurator
    """


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    for case in _plan(opts):
        click.echo(json.dumps(case.planned(), sort_keys=True))


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="run", tool_path=False, keep_raw=False, config_schema=RUNNER, config_help=CONFIG_HELP)
def run(opts: RunOptions) -> None:
    """Run AIConfigurator on every selected case and write one tool-run v2 document."""
    from . import aic

    selected = _plan(opts)
    version = aic.aic_version()
    packages = {aic.AIC_DIST: version, aic.AIC_CORE_DIST: aic.aic_core_version()}
    builder = toolrun.ToolRun(
        RUNNER,
        __version__,
        toolrun.Tool(TOOL, version, "native", aic.location(version)),
        config=opts.config,
        packages={k: v for k, v in packages.items() if v},
    )
    try:  # setup: import AIConfigurator, read its defaults, resolve each GPU's database version
        defaults = aic.defaults(sorted({aic.SYSTEMS[c.hardware] for c in selected}))
    except ImportError:
        defaults, version = None, None
        builder.with_tool(toolrun.Tool(TOOL, None, "native", aic.location(None)))
        builder.packages = {}
    units = [aic.Unit(c, defaults) for c in selected]
    plan_doc = {
        "cases": [c.planned() for c in selected],
        "aiconfigurator": version,
        "defaults": None
        if defaults is None
        else [defaults.backend, defaults.database_mode, defaults.stride, [list(v) for v in defaults.versions]],
    }
    checkpoint = opts.checkpoint(plan_doc)
    builder.setup_done()
    results = run_cases(units, aic.run_unit, jobs=opts.jobs, label="aiconfigurator", ident=lambda u: u.ident, checkpoint=checkpoint)
    finish(builder, results, opts, checkpoint)


@main.command()
@click.option(
    "--aic",
    "aic_doc",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(f"{OUTPUT}/aiconfigurator.tool-run.json"),
    show_default=True,
    help="AIConfigurator's tool-run document.",
)
@click.option(
    "--groundtruth",
    "gt_docs",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    default=list(GROUNDTRUTH),
    show_default=True,
    help="Measured tool-run documents (repeatable).",
)
@click.option(
    "--timing",
    "timings",
    multiple=True,
    default=["device", "eager-end-to-end"],
    show_default=True,
    help="Which measured latency (repeatable): device (CUDA graphs) and/or eager-end-to-end.",
)
@click.option("--cases/--no-cases", "per_case", default=True, help="Also print one row per paired case (first timing).")
@click.option(
    "--readme",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the table into this README between its compare markers instead of printing it.",
)
def compare(aic_doc: Path, gt_docs: tuple[Path, ...], timings: tuple[str, ...], per_case: bool, readme: Path | None) -> None:
    """Print AIConfigurator vs measured latency per GPU (Markdown): n, MAPE, geomean error, mean ratio, per case."""
    from .compare import BEGIN, END, pair, render, with_block

    try:
        doc = ms.read_tool_run(aic_doc)
        gts = [ms.read_tool_run(p) for p in gt_docs]
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    pairs = {t: pair(doc, gts, t) for t in timings}
    for t, got in pairs.items():
        if not got:
            raise UserError(f"{aic_doc}: no ok case pairs with a measured {t} latency in {', '.join(map(str, gt_docs))}")
    table = render(pairs, per_case)
    if readme is None:
        click.echo(table, nl=False)
        return
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{readme}: cannot read: {exc.strerror or exc}") from None
    if BEGIN not in text or END not in text:
        raise UserError(f"{readme}: no {BEGIN} ... {END} markers to write the table between")
    readme.write_text(with_block(text, table), encoding="utf-8")
    click.echo(f"table written to {readme}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
