"""nnmeter-runner: nn-Meter 2.0 kernel detection and latency prediction as an mtap runner."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

import mtap_schemas as ms

from . import __version__
from .cases import ConfigError, Plan, load_plan
from .nnmeter import build_cases, execute, nnmeter_version, package_versions, tool_location
from .predictors import HashesError, load_hashes, nnmeter_package_dir

RUNNER = "nnmeter-runner"
TOOL = "nn-meter"


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), Path.cwd())
    except ValueError:
        return str(path)


def _plan(config: Path | None, limit: int | None) -> tuple[Plan, list[dict]]:
    try:
        plan = load_plan(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    planned = plan.cases()
    if limit is not None:
        planned = planned[:limit]
        plan = Plan([m for m in plan.models if any(c["parameters"]["model"] == m.name for c in planned)],
                    [h for h in plan.hardware if any(c["hardware"] == h for c in planned)], plan.opsets, plan.timeout_s)
    return plan, planned


def _check_hardware(data_dir: Path, ids: list[str]) -> None:
    path = data_dir / "hardware" / "hardware.json"
    try:
        catalog = ms.read(path, "hardware")
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    known = {e["id"] for e in catalog["hardware"]}
    for hid in ids:
        if hid not in known:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r} (nn-Meter's predictors map to "
                            "cortexA76cpu, adreno640gpu, adreno630gpu, myriadvpu)")


def common(f):
    f = click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the first N cases (smoke tests).")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True,
                     help="The repository's data/ folder (hardware catalog).")(f)
    f = click.option("--config", type=click.Path(path_type=Path), default=None,
                     help='JSON file: {"models": [...], "hardware": [...], "opsets": [10, 13], "timeout_s": 1800}.')(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=RUNNER)
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
    --predictor-dir, whose files are sha256-checked before anything is unpickled; otherwise `unavailable`.

    The tool is the nn-meter package installed beside this runner. The predictors (GitHub
    release assets nn-Meter downloads at first use) come from --predictor-dir. The runner
    never reads or writes ~/.nn_meter: nn-Meter runs in subprocesses with HOME set to a
    temporary folder.

    Example: nnmeter-runner run --output data/evaluation/nn-meter --predictor-dir ~/nn-meter-predictors
    """


@main.command()
@common
def cases(config: Path | None, data_dir: Path, limit: int | None) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    plan, planned = _plan(config, limit)
    _check_hardware(data_dir, plan.hardware)
    for case in planned:
        click.echo(json.dumps(case, sort_keys=True))


@main.command()
@common
@click.option("--output", type=click.Path(path_type=Path), default=Path("data/evaluation/nn-meter"), show_default=True,
              help="Folder the document is written to.")
@click.option("--name", default="nn-meter", show_default=True, help="File stem: <output>/<name>.tool-run.json.")
@click.option("--predictor-dir", "--tool-path", "predictor_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, envvar=["MTAP_NNMETER_PREDICTOR_DIR", "MTAP_NNMETER_PATH"],
              help="Folder holding <predictor>/ (*.pkl + fusion_rules.json), e.g. the unpacked release zips or an "
                   "nn-Meter data folder's predictor/. --tool-path is an alias; env MTAP_NNMETER_PREDICTOR_DIR.")
@click.option("--predictor-hashes", type=click.Path(path_type=Path, dir_okay=False), default=None,
              envvar="MTAP_NNMETER_PREDICTOR_HASHES",
              help="JSON file of expected sha256 per predictor file (format of the pinned list "
                   "mtap_nnmeter_runner/pinned_predictors.json, which is the default).")
@click.option("--rules-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of device fusion rules <predictor>.json (each predictor zip's fusion_rules.json, "
                   "renamed), sha256-checked like the predictors; used when --predictor-dir does not give a "
                   "verified predictor. Without either, kernel detection uses nn-Meter's built-in default "
                   "rules (KernelDetector(None)), recorded as such: not device-specific.")
def run(config: Path | None, data_dir: Path, limit: int | None, output: Path, name: str,
        predictor_dir: Path | None, predictor_hashes: Path | None, rules_dir: Path | None) -> None:
    """Run nn-Meter on every selected case and write one tool-run v1 document."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    plan, planned = _plan(config, limit)
    _check_hardware(data_dir, plan.hardware)
    try:
        expected = load_hashes(predictor_hashes)
    except HashesError as exc:
        raise UserError(str(exc)) from None
    if predictor_dir is not None and not predictor_dir.is_dir():
        raise UserError(f"{predictor_dir}: --predictor-dir: expected an existing folder")
    hashes_source = _rel(predictor_hashes) if predictor_hashes else "the pinned list (mtap_nnmeter_runner/pinned_predictors.json)"
    config_ref = {"path": _rel(config), "sha256": ms.sha256_file(config)} if config is not None else None

    command = [RUNNER, "run", "--data-dir", str(data_dir), "--output", str(output), "--name", name]
    command += ["--config", str(config)] if config is not None else []
    command += ["--limit", str(limit)] if limit is not None else []
    command += ["--predictor-dir", str(predictor_dir)] if predictor_dir is not None else []
    command += ["--predictor-hashes", str(predictor_hashes)] if predictor_hashes is not None else []
    command += ["--rules-dir", str(rules_dir)] if rules_dir is not None else []

    tool_missing = None
    if nnmeter_package_dir() is None:
        tool_missing = "nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81' (or install mtap-nnmeter-runner, which pins it)"
    setup = time.perf_counter() - t0
    outcome = None
    if tool_missing is None:
        steps = len(plan.models) + len(plan.hardware) * (predictor_dir is not None)
        with click.progressbar(length=steps, label="nn-Meter", file=sys.stderr, show_pos=True) as bar:
            def step(what: str) -> None:
                bar.label = f"nn-Meter: {what}"
                bar.update(1)

            outcome = execute(plan, predictor_dir, expected, hashes_source, rules_dir, _rel, step)
    ids = {c["id"] for c in planned}
    doc = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": RUNNER, "version": __version__},
        "tool": {"name": TOOL, "version": nnmeter_version(), "backend": "native", "location": tool_location()},
        "environment": ms.environment(gpu=None, packages=package_versions()),
        "invocation": {"command": command, "config": config_ref},
        "wall_clock": {"started_at": started.isoformat(timespec="seconds"), "setup_seconds": round(setup, 3), "run_seconds": 0.0},
        "cases": [c for c in build_cases(plan, outcome, tool_missing) if c["id"] in ids],
    }
    doc["wall_clock"]["run_seconds"] = round(time.perf_counter() - t0 - setup, 3)
    target = output / f"{name}.tool-run.json"
    ms.write(target, doc, "tool-run")
    counts = {s: sum(c["status"] == s for c in doc["cases"]) for s in ("ok", "failed", "unsupported", "unavailable")}
    click.echo(f"wrote {target}: {len(doc['cases'])} cases, " + ", ".join(f"{v} {k}" for k, v in counts.items() if v), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
