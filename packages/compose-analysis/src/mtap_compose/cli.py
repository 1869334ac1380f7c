"""compose-analysis: D2 compositional fidelity (layer → model, compute → system)."""

from __future__ import annotations

from pathlib import Path

import click

import mtap_schemas as ms

from . import __version__
from .layers import layer_to_model
from .load import load
from .report import render
from .system import compute_to_system


def analyse(evaluation_dir: Path, on_skip=None) -> dict:
    frame, sources = load(evaluation_dir, on_skip=on_skip)
    return {
        "schema": "compositional",
        "schema_version": ms.version("compositional"),
        "sources": sources,
        "layer_to_model": layer_to_model(frame),
        "compute_to_system": compute_to_system(frame),
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compose-analysis")
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
def run(evaluation_dir: Path, output: Path | None, report: Path | None) -> None:
    """Write compositional-fidelity.json and compositional-fidelity-report.md."""
    if not evaluation_dir.is_dir():
        raise click.UsageError(f"{evaluation_dir}: evaluation folder does not exist")
    doc = analyse(evaluation_dir, on_skip=lambda msg: click.echo(f"skipped {msg}", err=True))
    out = ms.write(output or evaluation_dir / "compositional-fidelity.json", doc, "compositional")
    rep = ms.write_text_atomic(report or evaluation_dir / "compositional-fidelity-report.md", render(doc))
    click.echo(f"{len(doc['layer_to_model'])} layer→model rows, {len(doc['compute_to_system'])} compute→system rows -> {out}, {rep}", err=True)
