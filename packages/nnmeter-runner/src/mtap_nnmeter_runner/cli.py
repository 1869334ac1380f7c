"""nnmeter-runner: nn-Meter 2.0 kernel detection and latency prediction as an mtap runner."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases
from mtap_schemas.paths import relative_to_repo

from . import __version__
from .cases import DEFAULT_TIMEOUT_S, Plan, narrowed, plan_from_config
from .nnmeter import (
    build_cases,
    nnmeter_version,
    package_versions,
    parse_units,
    predict_units,
    prepare,
    run_parse,
    run_predict,
    tool_location,
)
from .predictors import HashesError, load_hashes, nnmeter_package_dir

RUNNER = "nnmeter-runner"
TOOL = "nn-meter"
OUTPUT = "data/evaluation/nn-meter"
CONFIG_HELP = ('JSON selecting a subset: {"models": [...], "hardware": [...], "opsets": [10, 13], "timeout_s": 1800} '
               "(schemas/config/nnmeter-runner.v1.schema.json).")


def _plan(opts: RunOptions) -> tuple[Plan, list[dict[str, Any]]]:
    """The configured plan narrowed to the cases --shard/--limit select (and those cases)."""
    plan = plan_from_config(opts.config_doc)
    _check_hardware(opts.data_dir, plan.hardware)
    selected = opts.select(plan.cases())
    return narrowed(plan, selected), selected


def _check_hardware(data_dir: Path, ids: list[str]) -> None:
    path = data_dir / "hardware" / "hardware.json"
    known = {e["id"] for e in ms.read(path, "hardware")["hardware"]}
    for hid in ids:
        if hid not in known:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r} (nn-Meter's predictors map to "
                            "cortexA76cpu, adreno640gpu, adreno630gpu, myriadvpu)")


@runner_group(RUNNER, __version__)
def main() -> None:
    """nn-Meter 2.0 (pip install nn-meter==2.0) on ResNet-50 (W1, and its conv1), BERT-base (W4),
    MobileNet-V2 (W8) and VGG-16 (W9) for its four predictors: cortexA76cpu_tflite21,
    adreno640gpu_tflite21, adreno630gpu_tflite21, myriadvpu_openvino2019r2 (hardware ids
    cortexA76cpu, adreno640gpu, adreno630gpu, myriadvpu).

    Per model and predictor it writes two cases. "kernels": nn-Meter's kernel detection (the
    model exported with torch's legacy ONNX exporter, simplified with onnx-simplifier, converted
    by nn-Meter's ONNX converter, split by the predictor's fusion rules, by --rules-dir files, or
    else by nn-Meter's built-in default rules, recorded as not device-specific); metrics are
    kernel counts by type. "latency": nn-Meter's latency prediction in ms, only with
    --tool-path (the predictor folder), whose files are sha256-checked before anything is
    unpickled; otherwise `unavailable`.

    Where the tool comes from: nn-Meter is the nn-meter package installed beside this runner. Its
    predictors (GitHub release assets nn-Meter downloads at first use) come from --tool-path /
    MTAP_NN_METER_PATH. The runner never reads or writes ~/.nn_meter: nn-Meter runs in worker
    subprocesses with HOME set to a temporary folder.

    Options, exit codes and the keep-results policy are the runner contract of packages/README.md.

    Example: nnmeter-runner run --tool-path ~/nn-meter-predictors
    """


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    for case in _plan(opts)[1]:
        click.echo(json.dumps(case, sort_keys=True))


@main.command()
@run_options(tool=TOOL, output=OUTPUT, timeout=DEFAULT_TIMEOUT_S, keep_raw=False, config_schema=RUNNER,
             config_help=CONFIG_HELP, aliases=["--predictor-dir"],
             env_aliases=["MTAP_NNMETER_PREDICTOR_DIR", "MTAP_NNMETER_PATH"],
             tool_path_help="Folder of nn-Meter's predictors: <predictor>/ (*.pkl + fusion_rules.json), e.g. the "
                            "unpacked release zips or an nn-Meter data folder's predictor/. Without it latency cases "
                            "are `unavailable`.")
@click.option("--predictor-hashes", type=click.Path(path_type=Path, dir_okay=False), default=None,
              envvar="MTAP_NNMETER_PREDICTOR_HASHES",
              help="JSON file of expected sha256 per predictor file (format of the pinned list "
                   "mtap_nnmeter_runner/pinned_predictors.json, which is the default).")
@click.option("--rules-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of device fusion rules <predictor>.json (each predictor zip's fusion_rules.json, "
                   "renamed), sha256-checked like the predictors; used when --tool-path does not give a "
                   "verified predictor. Without either, kernel detection uses nn-Meter's built-in default "
                   "rules (KernelDetector(None)), recorded as such: not device-specific.")
def run(opts: RunOptions, predictor_hashes: Path | None, rules_dir: Path | None) -> None:
    """Run nn-Meter on every selected case and write one tool-run v2 document."""
    plan, selected = _plan(opts)
    timeout = opts.timeout
    if click.get_current_context().get_parameter_source("timeout") == ParameterSource.DEFAULT:
        timeout = plan.timeout_s
    try:
        expected = load_hashes(predictor_hashes)
    except HashesError as exc:
        raise UserError(str(exc)) from None
    predictor_dir = opts.tool_path
    if predictor_dir is not None and not predictor_dir.is_dir():
        raise UserError(f"{predictor_dir}: --tool-path: expected an existing folder of nn-Meter predictors")
    if rules_dir is not None and not rules_dir.is_dir():
        raise UserError(f"{rules_dir}: --rules-dir: expected an existing folder")
    hashes_source = (relative_to_repo(predictor_hashes) if predictor_hashes
                     else "the pinned list (mtap_nnmeter_runner/pinned_predictors.json)")
    builder = tr.ToolRun(RUNNER, __version__, tr.Tool(TOOL, nnmeter_version(), "native", tool_location()),
                         config=opts.config, packages=package_versions())
    tool_missing = None
    if nnmeter_package_dir() is None:
        tool_missing = ("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81' "
                        "(or install mtap-nnmeter-runner, which pins it)")
    outcome = None
    checkpoint = None
    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-rules-") as work:
        if tool_missing is None:
            outcome = prepare(plan, predictor_dir, expected, hashes_source, rules_dir, Path(work))
            units = parse_units(plan, outcome, timeout)
            digest_plan = {"cases": selected, "opsets": plan.opsets, "timeout": timeout,
                           "rules": {hw: [r.origin, r.sha256, r.problem] for hw, r in outcome.rules.items()},
                           "predictors": {hw: [c.kind, c.files] for hw, c in outcome.checks.items()}}
            checkpoint = opts.checkpoint(digest_plan)
            builder.setup_done()
            parsed = run_cases(units, run_parse, jobs=opts.jobs, label="nn-Meter kernel detection",
                               ident=lambda u: u.ident, checkpoint=checkpoint)
            outcome.parse = {u.model.name: r for u, r in zip(units, parsed)}
            predicting = predict_units(plan, outcome, timeout)
            if predicting:
                predicted = run_cases(predicting, run_predict, jobs=opts.jobs, label="nn-Meter latency prediction",
                                      ident=lambda u: u.ident, checkpoint=checkpoint)
                outcome.predict = {u.predictor: r for u, r in zip(predicting, predicted)}
        else:
            builder.setup_done()
    ids = {c["id"] for c in selected}
    finish(builder, [c for c in build_cases(plan, outcome, tool_missing) if c["id"] in ids], opts, checkpoint)


if __name__ == "__main__":  # pragma: no cover
    main()
