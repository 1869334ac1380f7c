"""aiconfigurator-runner: AIConfigurator (NVIDIA Dynamo) as an mtap runner, built on the runner kit."""

from __future__ import annotations

from pathlib import Path

import click

from mtap_schemas import llmpeer, toolrun
from mtap_schemas.cli import RunOptions, UserError, run_options, runner_group

from . import __version__
from .cases import hardware_cases

TOOL = "aiconfigurator"
RUNNER = "aiconfigurator-runner"
OUTPUT = "data/evaluation/aiconfigurator"
CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids]}.'


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
    llmpeer.print_cases(llmpeer.planned_cases(opts, hardware_cases)[0])


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="run", tool_path=False, keep_raw=False, config_schema=RUNNER, config_help=CONFIG_HELP)
def run(opts: RunOptions) -> None:
    """Run AIConfigurator on every selected case and write one tool-run v2 document."""
    from . import aic

    selected = llmpeer.planned_cases(opts, hardware_cases)[0]
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
    llmpeer.run_units(builder, opts, plan_doc, units, aic.run_unit, "aiconfigurator")


@main.command()
@llmpeer.documents_options("--aic", "AIConfigurator", Path(f"{OUTPUT}/aiconfigurator.tool-run.json"))
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
def compare(tool_doc: Path, gt_docs: tuple[Path, ...], timings: tuple[str, ...], per_case: bool, readme: Path | None) -> None:
    """Print AIConfigurator vs measured latency per GPU (Markdown): n, MAPE, geomean error, mean ratio, per case."""
    from .compare import BEGIN, END, render, with_block

    table = render(llmpeer.compare_pairs(tool_doc, gt_docs, timings), per_case)
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
