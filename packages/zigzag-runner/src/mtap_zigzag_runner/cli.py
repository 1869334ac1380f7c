"""zigzag-runner: ZigZag (zigzag-dse) on ResNet-50's layers and BERT-base's matmuls."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import click

import mtap_schemas as ms

from . import __version__
from .cases import HARDWARE, ConfigError, apply_limit, check_layers, load_config, plan_cases
from .layers import LayerTableError, load_tables
from .run import SETTINGS, execute, spec_file

TOOL = "zigzag"
DIST = "zigzag-dse"


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _options(f):
    opts = [
        click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help='JSON narrowing the matrix: {"hardware": ["eyeriss-like", "tpu-like"], "models": '
                          '["resnet50", "bert-base"], "layers": [...], "batch": 1, "seq_len": 128}.  [default: every case]'),
        click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("data/evaluation/zigzag"),
                     show_default=True, help="Folder the document is written to."),
        click.option("--name", default=TOOL, show_default=True, help="File stem: NAME.tool-run.json."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
                     help="The repository's data/ (hardware/hardware.json, workloads/layers/*.layers.json)."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Run only the first N cases (smoke tests)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _setup(config, data_dir, limit):
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    hw_path = data_dir / "hardware" / "hardware.json"
    try:
        catalog = ms.read(hw_path, "hardware")
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    hardware = {h["id"]: h for h in catalog["hardware"]}
    for arch in cfg.hardware:
        hw = HARDWARE[arch]["hardware"]
        if hw not in hardware:
            raise UserError(f"{hw_path}: field hardware: no id {hw!r} (needed for ZigZag's {arch})")
    try:
        tables = load_tables(data_dir, cfg.models)
        check_layers(cfg, tables, config)
    except (LayerTableError, ConfigError) as exc:
        raise UserError(str(exc)) from None
    return cfg, apply_limit(plan_cases(cfg, tables), limit), hardware


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zigzag-runner")
def main() -> None:
    """Run ZigZag (KU Leuven's analytical DNN-accelerator cost model, `zigzag-dse` on PyPI,
    installed with this package) on mtap's accelerator workloads.

    Cases: every ResNet-50 convolution and its fc layer (W1, batch 1; conv1 also as the W1
    headline case) and BERT-base's encoder matmuls as 1x1 convolutions (W4, batch 1, seq 128)
    on ZigZag's shipped eyeriss-like (14x12 PEs, 16-bit operands, hardware Eyeriss-like) and
    tpu-like (32x32 MACs, 8-bit, hardware TPU-like) examples, with ZigZag's LOMA mapper
    minimising latency. Keys match timeloop-runner's, so `aggregate` can join the two tools.
    Each layer yields cycles, energy, utilization, pJ/MAC and MACs; model totals sum them.

    Example: zigzag-runner run --config one-layer.json --output /tmp/zz --limit 2
    """


@main.command()
@_options
def cases(config, output, name, data_dir, limit) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    _, planned, _ = _setup(config, data_dir, limit)
    for case in planned:
        click.echo(json.dumps(case.plan(), sort_keys=True))


@main.command()
@_options
def run(config, output, name, data_dir, limit) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v1)."""
    t0 = time.monotonic()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cfg, planned, hardware = _setup(config, data_dir, limit)
    version = metadata.version(DIST)
    artifacts = {}
    for arch in cfg.hardware:
        artifacts[arch] = []
        for part in ("accelerator", "mapping"):
            file = HARDWARE[arch][part]
            if file is None:  # written per layer by the runner
                continue
            where = (f"mtap-zigzag-runner=={__version__}:mtap_zigzag_runner/inputs/{file}" if HARDWARE[arch].get("own")
                     else f"{DIST}=={version}:zigzag/inputs/{file}")
            artifacts[arch].append({"path": where, "sha256": ms.sha256_file(spec_file(arch, part))})
    clocks = {hid: h.get("clock_hz") for hid, h in hardware.items()}
    setup_s = time.monotonic() - t0
    t1 = time.monotonic()
    runs = [c for c in planned if c.kind != "total"]
    with click.progressbar(length=len(runs), label="zigzag", file=sys.stderr) as bar:
        docs = execute(planned, artifacts, clocks, progress=lambda _c: bar.update(1))
    run_s = time.monotonic() - t1
    settings = ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
    for doc in docs:
        if doc["status"] == "ok" and "layer" in doc["parameters"]:
            arch = doc["parameters"]["accelerator"]
            doc["parameters"]["precision_bits"] = " ".join(f"{k}={v}" for k, v in HARDWARE[arch]["precision"].items())
            doc["parameters"]["zigzag_settings"] = settings
    target = output / f"{name}.tool-run.json"
    packages = {"mtap-zigzag-runner": __version__, DIST: version}
    for dep in ("numpy", "onnx"):
        try:
            packages[dep] = metadata.version(dep)
        except metadata.PackageNotFoundError:
            pass
    document = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "zigzag-runner", "version": __version__},
        "tool": {"name": TOOL, "version": version, "backend": "native", "location": f"{DIST}=={version} (PyPI)"},
        "environment": ms.environment(packages=packages),
        "invocation": {"command": ["zigzag-runner", *sys.argv[1:]],
                       "config": {"path": str(config), "sha256": ms.sha256_file(config)} if config else None},
        "wall_clock": {"started_at": started, "setup_seconds": round(setup_s, 3), "run_seconds": round(run_s, 3)},
        "cases": docs,
    }
    ms.write(target, document, "tool-run")
    counts: dict[str, int] = {}
    for doc in docs:
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
    click.echo(f"{len(docs)} cases ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) -> {target}", err=True)
