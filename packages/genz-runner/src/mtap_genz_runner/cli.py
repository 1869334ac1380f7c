"""genz-runner: GenZ (genz-llm) as an mtap runner, built on the runner kit."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms
from mtap_schemas import toolrun
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases
from mtap_schemas.paths import relative_to_repo

from . import __version__
from .cases import HARDWARE, Case, plan, select

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


def _plan(opts: RunOptions) -> tuple[list[Case], dict[str, Any], Path]:
    """The selected cases and the catalog entries of their hardware; every check before any work."""
    cfg: dict[str, Any] = opts.config_doc or {}
    hardware = list(dict.fromkeys(cfg.get("hardware", HARDWARE)))
    path = opts.data_dir / "hardware" / "hardware.json"
    entries = {e["id"]: e for e in ms.read(path, "hardware")["hardware"]}
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
    selected = opts.select(select(planned, cfg.get("include"), cfg.get("exclude")))
    return selected, {h: entries[h] for h in hardware}, path


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
    selected, _, _ = _plan(opts)
    for case in selected:
        click.echo(json.dumps(case.planned(), sort_keys=True))


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
    selected, entries, hw_path = _plan(opts)
    from .genz import Unit, genz_system, run_unit

    try:
        systems = {h: genz_system(h, e, relative_to_repo(hw_path)) for h, e in entries.items()}
    except ImportError:
        systems = None
    artifacts = [toolrun.artifact(hw_path)]
    if systems is None:
        msg = f"the Python package {GENZ_DIST} is not installed; install {GENZ_DIST}==0.0.16 (pip install ./packages/genz-runner brings it)"
        records = [
            toolrun.unavailable(
                c.id, kind="package-missing", message=msg, parameters=c.parameters(), workload=c.workload, hardware=c.hardware, key=c.key
            )
            for c in selected
        ]
        builder.setup_done()
        finish(builder, records, opts)
    units = [Unit(c, systems[c.hardware], tuple(artifacts)) for c in selected]
    plan_doc = {"cases": [c.planned() for c in selected], "hardware": artifacts, "genz": version}
    checkpoint = opts.checkpoint(plan_doc)
    builder.setup_done()
    results = run_cases(units, run_unit, jobs=opts.jobs, label="genz", ident=lambda u: u.ident, checkpoint=checkpoint)
    finish(builder, results, opts, checkpoint)


@main.command()
@click.option(
    "--genz",
    "genz_doc",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/evaluation/genz/genz.tool-run.json"),
    show_default=True,
    help="GenZ's tool-run document.",
)
@click.option(
    "--groundtruth",
    "gt_docs",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    default=[Path("data/evaluation/groundtruth/h100-x1.tool-run.json"), Path("data/evaluation/groundtruth/h200-x1.tool-run.json")],
    show_default=True,
    help="Measured tool-run documents (repeatable).",
)
@click.option("--timing", default="device", show_default=True, help="Which measured latency: device (CUDA graphs) or eager-end-to-end.")
@click.option("--cases/--no-cases", "per_case", default=True, help="Also print one row per paired case.")
def compare(genz_doc: Path, gt_docs: tuple[Path, ...], timing: str, per_case: bool) -> None:
    """Print GenZ vs measured latency per GPU (Markdown): n, MAPE, geomean error, per case."""
    from .compare import pair, render

    try:
        genz = ms.read_tool_run(genz_doc)
        gts = [ms.read_tool_run(p) for p in gt_docs]
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    pairs = pair(genz, gts, timing)
    if not pairs:
        raise UserError(f"{genz_doc}: no ok case pairs with a measured {timing} latency in {', '.join(map(str, gt_docs))}")
    click.echo(render(pairs, timing, per_case), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
