"""compose-analysis: D2 compositional fidelity (layer → model, compute → system, batch → request)."""

from __future__ import annotations

import math
from pathlib import Path

import click
import polars as pl

import mtap_schemas as ms
from mtap_schemas.cli import UserError, runner_group
from mtap_schemas.consume import gpu_tokens

from . import __version__
from .layers import layer_to_model
from .load import InputError, load
from .report import render
from .serving import batch_to_request
from .system import compute_to_system


def analyse(evaluation_dir: Path, on_skip=None, hardware: dict | None = None) -> dict:
    frame, sources, skipped = load(evaluation_dir, on_skip=on_skip, hardware_gpus=gpu_tokens(hardware) if hardware else None)
    zero = frame.filter((pl.col("kind") == "measurement") & (pl.col("ms") <= 0))
    for key in zero["key"].unique(maintain_order=True).to_list():
        skipped.append({"path": "(measurement)", "reason": f"{key}: measured time is 0, no error can be computed against it"})
    frame = frame.join(zero.select("tool", "case", "metric"), on=["tool", "case", "metric"], how="anti", maintain_order="left")
    doc = {
        "schema": "compositional",
        "schema_version": ms.version("compositional"),
        "sources": sources,
        "skipped": skipped,
        "layer_to_model": layer_to_model(frame),
        "compute_to_system": compute_to_system(frame),
        "batch_to_request": batch_to_request(frame),
    }
    _check_finite(doc, frame)
    return doc


SECTIONS = ("layer_to_model", "compute_to_system", "batch_to_request")


def _check_finite(doc: dict, frame: pl.DataFrame) -> None:
    """A derived value that is not finite (a sum or ratio of extreme inputs) is named by the input
    that drove it: the document and case of the row's most extreme time (InputError, one line),
    rather than a schema error about the output file."""
    for section in SECTIONS:
        for row in doc[section]:
            bad = next(((k, v) for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)), None)
            if bad is None:
                continue
            if "key" in row:
                same = pl.col("key") == row["key"]
            else:  # a layer -> model row: its model's layer and model keys of that configuration
                same = pl.col("key").str.starts_with(f"{row['model']}.") & pl.col("key").str.ends_with(f".{row['config']}")
            inputs = frame.filter(same & (pl.col("hardware") == row["hardware"])
                                  & ((pl.col("tool") == row["tool"]) | pl.col("backend").is_in(["measured", "replayed"])))
            what = f"{section} {bad[0]} is not finite ({row['tool']}, {row['hardware']}, {row.get('key') or row['model'] + ' ' + row['config']})"
            if inputs.is_empty():
                raise InputError(f"{what}; nothing written")
            worst = max(inputs.iter_rows(named=True),
                        key=lambda r: (abs(math.log10(r["ms"])) if r["ms"] > 0 else 0.0, r["source"], r["case"], r["metric"]))
            raise InputError(f"{worst['source']}: case {worst['case']}: {worst['metric']} {worst['ms']:g} ms makes {what}; nothing written")


@runner_group("compose-analysis", __version__)
def main() -> None:
    """D2 compositional fidelity from every tool-run document under an evaluation folder.

    Layer → model: the sum of a tool's per-layer predictions (keys <model>.layer.<name>.<config>)
    against the measured whole model (<model>.model.<config>), next to the per-layer error.
    Compute → system: ASTRA-sim training steps (<model>.ddp-step.n<N>.<config>), compute vs
    total vs exposed communication.

    Example: compose-analysis run --evaluation-dir data/evaluation
    """


@main.command()
@click.option("--evaluation-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/evaluation"), show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="[default: EVALUATION_DIR/compositional-fidelity.json]")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="[default: EVALUATION_DIR/compositional-fidelity-report.md]")
@click.option("--hardware", type=click.Path(dir_okay=False, path_type=Path), default=Path("data/hardware/hardware.json"), show_default=True,
              help="Hardware catalog: measurements filed under another GPU's hardware id are refused.")
def run(evaluation_dir: Path, output: Path | None, report: Path | None, hardware: Path) -> None:
    """Write compositional-fidelity.json and compositional-fidelity-report.md."""
    if not evaluation_dir.is_dir():
        raise UserError(f"{evaluation_dir}: evaluation folder does not exist")
    catalog = ms.read(hardware, "hardware") if hardware.is_file() else None
    try:
        doc = analyse(evaluation_dir, on_skip=lambda msg: click.echo(f"skipped {msg}", err=True), hardware=catalog)
    except InputError as exc:
        raise UserError(str(exc)) from None
    out = ms.write(output or evaluation_dir / "compositional-fidelity.json", doc, "compositional")
    rep = ms.write_text_atomic(report or evaluation_dir / "compositional-fidelity-report.md", render(doc))
    click.echo(f"{len(doc['layer_to_model'])} layer→model rows, {len(doc['compute_to_system'])} compute→system rows -> {out}, {rep}", err=True)
