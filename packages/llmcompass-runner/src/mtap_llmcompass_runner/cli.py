"""llmcompass-runner: LLMCompass (ISCA'24) as an mtap runner, built on the runner kit."""

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
from .setup import setup_cmd

TOOL = "llmcompass"
RUNNER = "llmcompass-runner"
OUTPUT = "data/evaluation/llmcompass"
TIMEOUT = 1800.0
CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids], "timeout_s": seconds}.'


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


def _records(selected: list[Case], status: str, kind: str, message: str) -> list[dict[str, Any]]:
    make = toolrun.unavailable if status == "unavailable" else toolrun.failed
    return [
        make(c.id, kind=kind, message=message, parameters=c.parameters(), workload=c.workload, hardware=c.hardware, key=c.key)
        for c in selected
    ]


@runner_group(RUNNER, __version__)
def main() -> None:
    """LLMCompass's latency predictions for Llama-2-7B prefill and decode (W5), GPT-2 (W7) and
    BERT-base (W4) on one H100 and one H200.

    LLMCompass (PrincetonUniversity/LLMCompass, BSD-3, pure Python, not on PyPI) comes from
    `llmcompass-runner setup` (the pinned commit into ~/.cache/mtap/llmcompass/<commit>) or
    --tool-path / MTAP_LLMCOMPASS_PATH (a checkout). Each case runs LLMCompass's transformer
    block (TransformerBlockInitComputationTP for prefill, TransformerBlockAutoRegressionTP for
    decode) with compile_and_simulate(system, "heuristic-GPU"), as the authors' scripts do, in a
    process of its own on a copy of the checkout; whole model = layers x block + the head GEMM.
    LLMCompass ships no H100/H200: the descriptions are its GA100 template with our datasheet
    figures, every field's source recorded. fp32 cases are unsupported, with the reason.

    Options, exit codes and the document follow the runner contract of packages/README.md.
    `compare` prints the table of LLMCompass vs the measurements.

    Example: llmcompass-runner run --jobs 1 --output data/evaluation/llmcompass
    """


main.add_command(setup_cmd)


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    selected, _, _ = _plan(opts)
    for case in selected:
        click.echo(json.dumps(case.planned(), sort_keys=True))


@main.command()
@run_options(
    tool=TOOL,
    output=OUTPUT,
    verb="run",
    timeout=TIMEOUT,
    config_schema=RUNNER,
    config_help=CONFIG_HELP,
    tool_path_help="An LLMCompass checkout (source tree).  [default: the verified `llmcompass-runner setup` build in the user cache]",
)
def run(opts: RunOptions) -> None:
    """Run LLMCompass on every selected case and write one tool-run v2 document."""
    from mtap_schemas.paths import relative_to_repo

    from . import hardware as hwmod
    from .predict import Unit, predict
    from .tool import SETUP_HINT, Located, locate, missing_python

    selected, entries, hw_path = _plan(opts)
    cfg = opts.config_doc or {}
    timeout = opts.timeout
    if (
        cfg.get("timeout_s") is not None
        and click.get_current_context().get_parameter_source("timeout") == click.core.ParameterSource.DEFAULT
    ):
        timeout = float(cfg["timeout_s"])
    found = locate(opts.tool_path)
    if not isinstance(found, Located):
        builder = toolrun.ToolRun(RUNNER, __version__, toolrun.Tool(TOOL, None, "native", None), config=opts.config)
        builder.setup_done()
        finish(builder, _records(selected, "unavailable", "checkout-missing", found), opts)
    location = f"LLMCompass {found.version} ({'llmcompass-runner setup build' if found.how == 'setup build' else '--tool-path'})"
    builder = toolrun.ToolRun(
        RUNNER, __version__, toolrun.Tool(TOOL, found.version, "native", location), config=opts.config, packages=_packages()
    )
    gone = missing_python()
    if gone:
        builder.setup_done()
        msg = (
            f"LLMCompass's Python dependencies are missing here: {', '.join(gone)} (pip install "
            f"mtap-llmcompass-runner brings them); then {SETUP_HINT}"
        )
        finish(builder, _records(selected, "unavailable", "package-missing", msg), opts)
    try:
        template = hwmod.read_template(found.path)
    except (OSError, ValueError) as exc:
        builder.setup_done()
        finish(
            builder,
            _records(selected, "unavailable", "checkout-missing", f"{hwmod.TEMPLATE} in the LLMCompass tree: {exc}; {SETUP_HINT}"),
            opts,
        )
    artifact = toolrun.artifact(hw_path)
    specs = {}
    for hid, entry in entries.items():
        spec, sources = hwmod.describe(template, entry)
        params: dict[str, Any] = {
            "hardware_source": f"{relative_to_repo(hw_path)}#{hid} + LLMCompass {hwmod.TEMPLATE}",
            "llmcompass_template": hwmod.TEMPLATE,
        }
        params.update({f"arch.{k}": _scalar(hwmod._get(spec, k)) for k in sources})
        params.update({f"arch_source.{k}": v for k, v in sources.items()})
        params.update({f"llmcompass_{k}": v for k, v in hwmod.summary(spec).items()})
        specs[hid] = (json.dumps(spec, indent=1, sort_keys=True), tuple(sorted(params.items())))
    keep = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units = [Unit(c, str(found.path), specs[c.hardware][0], specs[c.hardware][1], (artifact,), timeout, keep) for c in selected]
    plan_doc = {
        "cases": [c.planned() for c in selected],
        "hardware": artifact,
        "llmcompass": found.version,
        "specs": {h: s[0] for h, s in specs.items()},
    }
    checkpoint = opts.checkpoint(plan_doc)
    builder.setup_done()
    results = run_cases(units, predict, jobs=opts.jobs, label="llmcompass", ident=lambda u: u.ident, checkpoint=checkpoint)
    finish(builder, results, opts, checkpoint)


def _scalar(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v)


def _packages() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("torch", "numpy", "pandas", "scalesim"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@main.command()
@click.option(
    "--llmcompass",
    "tool_doc",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(f"{OUTPUT}/llmcompass.tool-run.json"),
    show_default=True,
    help="LLMCompass's tool-run document.",
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
@click.option(
    "--raw",
    "raw_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also print the wall time per case from the raw outputs kept there (run --keep-raw).",
)
def compare(tool_doc: Path, gt_docs: tuple[Path, ...], timing: str, per_case: bool, raw_dir: Path | None) -> None:
    """Print LLMCompass vs measured latency per GPU (Markdown): n, MAPE, geomean error, per case."""
    from .compare import pair, render

    try:
        doc = ms.read_tool_run(tool_doc)
        gts = [ms.read_tool_run(p) for p in gt_docs]
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    pairs = pair(doc, gts, timing)
    if not pairs:
        raise UserError(f"{tool_doc}: no ok case pairs with a measured {timing} latency in {', '.join(map(str, gt_docs))}")
    click.echo(render(pairs, timing, per_case), nl=False)
    if raw_dir is not None:
        from .compare import runtime

        click.echo("")
        click.echo(runtime(raw_dir), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
