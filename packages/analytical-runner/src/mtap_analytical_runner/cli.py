"""analytical-runner: the roofline baseline ("Analytical") as an mtap runner."""

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
from .cases import HARDWARE, ConfigError, load_config, plan, select
from .document import LOCATION, RUNNER, TOOL, evaluate, packages
from .roofline import PRECISIONS, Hardware


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), Path.cwd())
    except ValueError:
        return str(path)


def _hardware(data_dir: Path, ids: list[str]) -> dict[str, Hardware]:
    path = data_dir / "hardware" / "hardware.json"
    try:
        catalog = ms.read(path, "hardware")
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    entries = {e["id"]: e for e in catalog["hardware"]}
    out = {}
    for hid in ids:
        if hid not in entries:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r} (known: {', '.join(sorted(entries))})")
        hw = Hardware.from_catalog(entries[hid])
        missing = [k for k in PRECISIONS if k not in hw.peak_flops]
        if missing or not hw.bandwidth:
            what = ", ".join([f"peak_flops.{k}" for k in missing] + ([] if hw.bandwidth else ["memory.bandwidth_bytes_per_s"]))
            raise UserError(f"{path}: field hardware[{hid}]: the roofline needs {what}")
        out[hid] = hw
    return out


def _selected(config: Path | None, limit: int | None):
    cfg = {}
    if config is not None:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise UserError(str(exc)) from None
    hardware = tuple(cfg.get("hardware", HARDWARE))
    return select(plan(hardware), cfg.get("include"), cfg.get("exclude"), limit), hardware


def common(f):
    f = click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the first N cases (smoke tests).")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True, help="The repository's data/ folder (hardware catalog).")(f)
    f = click.option(
        "--config",
        type=click.Path(path_type=Path),
        default=None,
        help='JSON file selecting cases: {"include": [key globs], "exclude": [key globs], "hardware": [ids]}.',
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=RUNNER)
def main() -> None:
    """Roofline ("Analytical") predictions for ResNet-50, BERT-base, GPT-2 and Llama-2-7B.

    Every model is built on PyTorch's meta device (no weights, no GPU): ResNet-50 as a
    torchvision-equal definition, BERT/GPT-2/Llama-2-7B from transformers configs. Each ATen
    operator it runs is recorded with its FLOPs (torch.utils.flop_counter's formulas) and the
    bytes it moves (inputs incl. weights + outputs, per dtype; views free). Per operator,
    latency = max(FLOPs / peak, bytes / bandwidth) with the datasheet figures of
    data/hardware/hardware.json (A100-SXM4-80GB, H100-SXM5-80GB); a layer or model is the sum
    of its operators. The "tool" is this package plus torch; there is no --tool-path.

    Example: analytical-runner run --output data/evaluation/analytical
    """


@main.command()
@common
def cases(config: Path | None, data_dir: Path, limit: int | None) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    selected, hardware = _selected(config, limit)
    _hardware(data_dir, list(hardware))
    for case in selected:
        click.echo(json.dumps(case.planned(), sort_keys=True))


@main.command()
@common
@click.option("--output", type=click.Path(path_type=Path), default=Path("data/evaluation/analytical"), show_default=True, help="Folder the document is written to.")
@click.option("--name", default="analytical", show_default=True, help="File stem: <output>/<name>.tool-run.json.")
def run(config: Path | None, data_dir: Path, limit: int | None, output: Path, name: str) -> None:
    """Trace every selected computation and write one tool-run v1 document."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    selected, hardware = _selected(config, limit)
    hw = _hardware(data_dir, list(hardware))
    hw_path = data_dir / "hardware" / "hardware.json"
    artifacts = [{"path": _rel(hw_path), "sha256": ms.sha256_file(hw_path)}]
    config_ref = {"path": _rel(config), "sha256": ms.sha256_file(config)} if config is not None else None

    from .models import run_shape  # imports torch/transformers: after the cheap checks

    command = [RUNNER, "run", "--data-dir", str(data_dir), "--output", str(output), "--name", name]
    command += ["--config", str(config)] if config is not None else []
    command += ["--limit", str(limit)] if limit is not None else []

    shapes = list(dict.fromkeys(c.shape for c in selected))
    setup = time.perf_counter() - t0
    traces = {}
    with click.progressbar(shapes, label="tracing", file=sys.stderr, item_show_func=lambda s: s and f"{s.model} {s.scope} b{s.batch}") as bar:
        for shape in bar:
            try:
                traces[shape] = run_shape(shape)
            except ImportError as exc:
                traces[shape] = ("unavailable", "package-missing", f"{exc}; install transformers==5.24.0 (pip install mtap-analytical-runner brings it)")
            except Exception as exc:  # a model that does not trace is a failed case, named
                traces[shape] = ("failed", "tool-crashed", f"tracing {shape.model} {shape.scope} raised {type(exc).__name__}: {exc}".splitlines()[0][:400])
    doc = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": RUNNER, "version": __version__},
        "tool": {"name": TOOL, "version": __version__, "backend": "native", "location": LOCATION},
        "environment": ms.environment(gpu=None, packages=packages()),
        "invocation": {"command": command, "config": config_ref},
        "wall_clock": {"started_at": started.isoformat(timespec="seconds"), "setup_seconds": round(setup, 3), "run_seconds": 0.0},
        "cases": [evaluate(c, traces[c.shape], hw[c.hardware], artifacts) for c in selected],
    }
    doc["wall_clock"]["run_seconds"] = round(time.perf_counter() - t0 - setup, 3)
    target = output / f"{name}.tool-run.json"
    ms.write(target, doc, "tool-run")
    ok = sum(c["status"] == "ok" for c in doc["cases"])
    click.echo(f"wrote {target}: {len(doc['cases'])} cases, {ok} ok", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
