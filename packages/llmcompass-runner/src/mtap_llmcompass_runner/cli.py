"""llmcompass-runner: LLMCompass (ISCA'24) as an mtap runner, built on the runner kit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mtap_schemas import llmpeer, toolrun
from mtap_schemas.cli import RunOptions, run_options, runner_group

from . import __version__
from .cases import Case, hardware_cases
from .setup import setup_cmd

TOOL = "llmcompass"
RUNNER = "llmcompass-runner"
OUTPUT = "data/evaluation/llmcompass"
TIMEOUT = 1800.0
CONFIG_HELP = 'JSON selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids], "timeout_s": seconds}.'


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
    llmpeer.print_cases(llmpeer.planned_cases(opts, hardware_cases)[0])


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
    from .predict import Unit, predict

    selected, entries, hw_path = llmpeer.planned_cases(opts, hardware_cases)
    timeout = _timeout(opts)
    found, builder, template = _setup(opts, selected)
    artifact = toolrun.artifact(hw_path)
    specs = {hid: _spec(template, hid, entry, hw_path) for hid, entry in entries.items()}
    keep = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units = [Unit(c, str(found.path), specs[c.hardware][0], specs[c.hardware][1], (artifact,), timeout, keep) for c in selected]
    plan_doc = {
        "cases": [c.planned() for c in selected],
        "hardware": artifact,
        "llmcompass": found.version,
        "specs": {h: s[0] for h, s in specs.items()},
    }
    llmpeer.run_units(builder, opts, plan_doc, units, predict, "llmcompass")


def _timeout(opts: RunOptions) -> float:
    """--timeout, or the config's ``timeout_s`` where --timeout was left at its default."""
    cfg = opts.config_doc or {}
    if (
        cfg.get("timeout_s") is not None
        and click.get_current_context().get_parameter_source("timeout") == click.core.ParameterSource.DEFAULT
    ):
        return float(cfg["timeout_s"])
    return opts.timeout


def _setup(opts: RunOptions, selected: list[Case]) -> tuple[Any, toolrun.ToolRun, dict[str, Any]]:
    """The LLMCompass tree (located), the document's builder and the tree's GA100 template; where any of
    them is missing (the tree, its Python dependencies, the template), every case unavailable, saying how."""
    from . import hardware as hwmod
    from .tool import SETUP_HINT, Located, locate, missing_python

    found = locate(opts.tool_path)
    if not isinstance(found, Located):
        builder = toolrun.ToolRun(RUNNER, __version__, toolrun.Tool(TOOL, None, "native", None), config=opts.config)
        llmpeer.finish_unavailable(builder, opts, selected, "checkout-missing", found)
    location = f"LLMCompass {found.version} ({'llmcompass-runner setup build' if found.how == 'setup build' else '--tool-path'})"
    builder = toolrun.ToolRun(
        RUNNER, __version__, toolrun.Tool(TOOL, found.version, "native", location), config=opts.config, packages=_packages()
    )
    gone = missing_python()
    if gone:
        msg = (
            f"LLMCompass's Python dependencies are missing here: {', '.join(gone)} (pip install "
            f"mtap-llmcompass-runner brings them); then {SETUP_HINT}"
        )
        llmpeer.finish_unavailable(builder, opts, selected, "package-missing", msg)
    try:
        template = hwmod.read_template(found.path)
    except (OSError, ValueError) as exc:
        msg = f"{hwmod.TEMPLATE} in the LLMCompass tree: {exc}; {SETUP_HINT}"
        llmpeer.finish_unavailable(builder, opts, selected, "checkout-missing", msg)
    return found, builder, template


def _spec(template: dict[str, Any], hid: str, entry: dict[str, Any], hw_path: Path) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """One GPU's LLMCompass description (JSON) and the case parameters recording every field's source."""
    from mtap_schemas.paths import relative_to_repo

    from . import hardware as hwmod

    spec, sources = hwmod.describe(template, entry)
    params: dict[str, Any] = {
        "hardware_source": f"{relative_to_repo(hw_path)}#{hid} + LLMCompass {hwmod.TEMPLATE}",
        "llmcompass_template": hwmod.TEMPLATE,
    }
    params.update({f"arch.{k}": _scalar(hwmod._get(spec, k)) for k in sources})
    params.update({f"arch_source.{k}": v for k, v in sources.items()})
    params.update({f"llmcompass_{k}": v for k, v in hwmod.summary(spec).items()})
    return json.dumps(spec, indent=1, sort_keys=True), tuple(sorted(params.items()))


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
@llmpeer.documents_options("--llmcompass", "LLMCompass", Path(f"{OUTPUT}/llmcompass.tool-run.json"))
@llmpeer.timing_options()
@click.option(
    "--raw",
    "raw_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also print the wall time per case from the raw outputs kept there (run --keep-raw).",
)
def compare(tool_doc: Path, gt_docs: tuple[Path, ...], timing: str, per_case: bool, raw_dir: Path | None) -> None:
    """Print LLMCompass vs measured latency per GPU (Markdown): n, MAPE, geomean error, per case."""
    from .compare import render

    pairs = llmpeer.compare_pairs(tool_doc, gt_docs, [timing])[timing]
    click.echo(render(pairs, timing, per_case), nl=False)
    if raw_dir is not None:
        from .compare import runtime

        click.echo("")
        click.echo(runtime(raw_dir), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
