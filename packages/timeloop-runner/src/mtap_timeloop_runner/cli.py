"""timeloop-runner: NVlabs Timeloop's mapper on ResNet-50's layers and BERT-base's matmuls."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

import mtap_schemas as ms

from . import __version__
from .cases import ARCHITECTURES, ConfigError, apply_limit, check_layers, load_config, plan_cases
from .layers import LayerTableError, load_tables
from .run import execute, spec_paths
from .setup import setup_cmd
from .tool import DEFAULT_IMAGE, ENV_PATH, ToolPathError, Unavailable, locate

TOOL = "timeloop"


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _options(f):
    opts = [
        click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help='JSON narrowing the matrix: {"architectures": [...], "models": [...], "layers": [...], '
                          '"batch": 1, "seq_len": 128, "timeout_s": 3600}.  [default: every case]'),
        click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("data/evaluation/timeloop"),
                     show_default=True, help="Folder the document is written to."),
        click.option("--name", default=TOOL, show_default=True, help="File stem: NAME.tool-run.json."),
        click.option("--tool-path", "--timeloop-bin", "tool_path", default=None, metavar="PATH",
                     help=f"Timeloop v3.0.3 build: the timeloop-mapper binary, its folder, or a build tree with "
                          f"bin/ and lib/ (lib/ goes on LD_LIBRARY_PATH).  [default: ${ENV_PATH}]"),
        click.option("--image", default=None, metavar="NAME",
                     help=f"Run timeloop-mapper inside this Docker image instead, e.g. {DEFAULT_IMAGE} "
                          "(needs the [docker] extra and a Docker daemon)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
                     help="The repository's data/: hardware/hardware.json, workloads/layers/ and the timeloop/ specs."),
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
    for arch in cfg.architectures:
        hw = ARCHITECTURES[arch]["hardware"]
        if hw not in hardware:
            raise UserError(f"{hw_path}: field hardware: no id {hw!r} (needed by the {arch} spec)")
        for spec in spec_paths(data_dir, arch):
            if not spec.is_file():
                raise UserError(f"{spec}: Timeloop spec file missing (expected under {data_dir}/timeloop/)")
    try:
        tables = load_tables(data_dir, cfg.models)
        check_layers(cfg, tables, config)
    except (LayerTableError, ConfigError) as exc:
        raise UserError(str(exc)) from None
    cases = apply_limit(plan_cases(cfg, tables), limit)
    return cfg, cases, hardware


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="timeloop-runner")
def main() -> None:
    """Run NVlabs Timeloop (v3.0.3, timeloop-mapper) on mtap's accelerator workloads.

    Cases: every ResNet-50 convolution and its fc layer (W1, batch 1; conv1 also as the W1
    headline case) and BERT-base's encoder matmuls as 1x1 convolutions (W4, batch 1, seq 128),
    on two architecture specs of our own in data/timeloop/: eyeriss-like (168 PEs, row
    stationary, hardware Eyeriss-like) and simba-like (one Simba chiplet, 1,024 MACs, hardware
    Simba-like). The mapper settings are fixed (data/timeloop/mapper.yaml) so runs repeat.
    Each layer yields cycles, energy, utilization, pJ/MAC, area and MACs; model totals sum them.

    Timeloop is on no package registry: build v3.0.3 from source and pass --tool-path (or set
    MTAP_TIMELOOP_PATH), or use --image with the accelergy-timeloop-infrastructure image.
    Without either, every case is written as `unavailable` with that advice - except that an
    existing document holding real results is kept rather than overwritten (--overwrite to
    replace it anyway).

    Example: timeloop-runner run --tool-path ~/timeloop --config conv1.json --output /tmp/tl
    """


@main.command()
@_options
def cases(config, output, name, tool_path, image, data_dir, limit) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    _, planned, _ = _setup(config, data_dir, limit)
    for case in planned:
        click.echo(json.dumps(case.plan(), sort_keys=True))


@main.command()
@_options
@click.option("--overwrite", is_flag=True,
              help="Without a Timeloop, replace an existing document even if it holds ok cases.")
@click.option("--save-maps/--no-save-maps", default=True, show_default=True,
              help="Write each best mapping (timeloop-mapper.map.txt) to OUTPUT/NAME.maps/ and list it as an artifact.")
def run(config, output, name, tool_path, image, data_dir, limit, overwrite, save_maps) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v1)."""
    t0 = time.monotonic()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cfg, planned, hardware = _setup(config, data_dir, limit)
    try:
        tool = locate(tool_path, image)
    except ToolPathError as exc:
        raise UserError(str(exc)) from None
    target = output / f"{name}.tool-run.json"

    if isinstance(tool, Unavailable) and target.is_file() and not overwrite:
        try:
            existing = ms.read(target, "tool-run")
            ok = sum(c["status"] == "ok" for c in existing["cases"])
        except ms.SchemaError:
            ok = 0
        if ok:
            click.echo(f"{tool.message}\nkept {target} ({ok} ok cases from a real run); pass --overwrite to replace it "
                       "with unavailable cases", err=True)
            return

    artifacts = {}
    for arch in cfg.architectures:
        artifacts[arch] = [{"path": str(p), "sha256": ms.sha256_file(p)} for p in spec_paths(data_dir, arch)]
    clocks = {hid: h.get("clock_hz") for hid, h in hardware.items()}
    setup_s = time.monotonic() - t0
    t1 = time.monotonic()
    maps: dict[str, str] = {}
    runs = [c for c in planned if c.kind != "total"]
    if isinstance(tool, Unavailable):
        docs = execute(planned, tool, data_dir, artifacts, clocks, cfg.timeout_s)
    else:
        with click.progressbar(length=len(runs), label=f"timeloop-mapper ({tool.backend})", file=sys.stderr) as bar:
            docs = execute(planned, tool, data_dir, artifacts, clocks, cfg.timeout_s,
                           progress=lambda _c: bar.update(1), maps=maps if save_maps else None)
    run_s = time.monotonic() - t1

    if maps:
        map_dir = output / f"{name}.maps"
        for rel, text in sorted(maps.items()):
            path = ms.write_text_atomic(map_dir / f"{rel}.map.txt", text)
            maps[rel] = str(path)
        for doc in docs:
            arch, layer = doc["parameters"]["architecture"], doc["parameters"].get("same_problem_as") or doc["parameters"].get("layer")
            path = maps.get(f"{arch}/{layer}")
            if path and doc["status"] == "ok":
                doc["artifacts"] = doc["artifacts"] + [{"path": path, "sha256": ms.sha256_file(path)}]

    version = None if isinstance(tool, Unavailable) else tool.version
    packages = {"mtap-timeloop-runner": __version__}
    if version:
        packages["timeloop"] = version
    document = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "timeloop-runner", "version": __version__},
        "tool": {"name": TOOL, "version": version,
                 "backend": "docker" if image and not tool_path else "native",
                 "location": getattr(tool, "location", None)},
        "environment": ms.environment(packages=packages),
        "invocation": {"command": ["timeloop-runner", *sys.argv[1:]],
                       "config": {"path": str(config), "sha256": ms.sha256_file(config)} if config else None},
        "wall_clock": {"started_at": started, "setup_seconds": round(setup_s, 3), "run_seconds": round(run_s, 3)},
        "cases": docs,
    }
    if not isinstance(tool, Unavailable):
        for doc in docs:
            if doc["status"] == "ok":
                doc["parameters"]["energy_model"] = tool.energy_model
    ms.write(target, document, "tool-run")
    counts: dict[str, int] = {}
    for doc in docs:
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
    click.echo(f"{len(docs)} cases ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) -> {target}", err=True)


main.add_command(setup_cmd)
