"""genz-runner: GenZ (genz-llm) as an mtap runner, built on the runner kit."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click

from mtap_schemas import llmpeer, toolrun
from mtap_schemas.cli import RunOptions, run_options, runner_group
from mtap_schemas.paths import relative_to_repo

from . import __version__
from .cases import hardware_cases

TOOL = "genz"
RUNNER = "genz-runner"
GENZ_DIST = "genz-llm"
CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids]}.'


def genz_version() -> str | None:
    try:
        return metadata.version(GENZ_DIST)
    except metadata.PackageNotFoundError:
        return None


def _location(version: str | None) -> str:
    if version is None:
        return f"{GENZ_DIST} (not installed)"
    try:
        from GenZ.version import __version__ as inner
    except ImportError:  # pragma: no cover - the distribution is there but not importable
        inner = "?"
    return f"{GENZ_DIST} {version} from PyPI (GenZ.version.__version__ {inner})"


@runner_group(RUNNER, __version__)
def main() -> None:
    """GenZ's latency predictions for Llama-2-7B prefill and decode (W5) and GPT-2 (W7) on H100 and H200.

    GenZ (genz-llm 0.0.16, MIT, from PyPI) is called through its own prefill_moddeling and
    decode_moddeling, at exactly the cases our GPU ground truth measured (same model, batch,
    tokens/KV length, 16-bit, one GPU, TP=1). H100 uses the system GenZ ships (H100_GPU); the
    H200, which GenZ does not ship, uses the datasheet figures of data/hardware/hardware.json.
    BERT and fp32 cases are recorded as unsupported, with the reason.

    The tool is the pinned Python package (a dependency): there is no --tool-path, --image,
    --timeout or --keep-raw. Options, exit codes and the document follow the runner contract of
    packages/README.md. `compare` prints the table of GenZ vs the measurements.

    Example: genz-runner run --output data/evaluation/genz
    """


@main.command()
@run_options(tool=TOOL, output="data/evaluation/genz", verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    llmpeer.print_cases(llmpeer.planned_cases(opts, hardware_cases)[0])


@main.command()
@run_options(
    tool=TOOL, output="data/evaluation/genz", verb="run", tool_path=False, keep_raw=False, config_schema=RUNNER, config_help=CONFIG_HELP
)
def run(opts: RunOptions) -> None:
    """Run GenZ on every selected case and write one tool-run v2 document."""
    version = genz_version()
    builder = toolrun.ToolRun(
        RUNNER,
        __version__,
        toolrun.Tool(TOOL, version, "native", _location(version)),
        config=opts.config,
        packages={GENZ_DIST: version} if version else {},
    )
    selected, entries, hw_path = llmpeer.planned_cases(opts, hardware_cases)
    from .genz import Unit, genz_system, run_unit

    try:
        systems = {h: genz_system(h, e, relative_to_repo(hw_path)) for h, e in entries.items()}
    except ImportError:
        msg = f"the Python package {GENZ_DIST} is not installed; install {GENZ_DIST}==0.0.16 (pip install ./packages/genz-runner brings it)"
        llmpeer.finish_unavailable(builder, opts, selected, "package-missing", msg)
    artifacts = [toolrun.artifact(hw_path)]
    units = [Unit(c, systems[c.hardware], tuple(artifacts)) for c in selected]
    plan_doc = {"cases": [c.planned() for c in selected], "hardware": artifacts, "genz": version}
    llmpeer.run_units(builder, opts, plan_doc, units, run_unit, "genz")


@main.command()
@llmpeer.documents_options("--genz", "GenZ", Path("data/evaluation/genz/genz.tool-run.json"))
@llmpeer.timing_options()
def compare(tool_doc: Path, gt_docs: tuple[Path, ...], timing: str, per_case: bool) -> None:
    """Print GenZ vs measured latency per GPU (Markdown): n, MAPE, geomean error, per case."""
    from .compare import render

    pairs = llmpeer.compare_pairs(tool_doc, gt_docs, [timing])[timing]
    click.echo(render(pairs, timing, per_case), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
