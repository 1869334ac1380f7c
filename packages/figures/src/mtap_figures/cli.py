"""mtap-figures: regenerate the MTAP figures (PNG + PDF) from the evaluation documents."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import mtap_schemas as ms

from . import __version__, plots
from .style import save


def _tool_docs(evaluation_dir: Path) -> dict[str, list[tuple[Path, dict]]]:
    """Every valid tool-run document, read once, by tool name (a bad one is noted and skipped)."""
    docs: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted(evaluation_dir.rglob("*.tool-run.json")):
        try:
            doc = ms.read(path, "tool-run")
        except ms.SchemaError as exc:
            click.echo(f"skipped {exc}", err=True)
            continue
        docs.setdefault(doc["tool"]["name"], []).append((path, doc))
    return docs


class UserError(click.ClickException):
    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mtap-figures")
def main() -> None:
    """Draw the MTAP figures from data/evaluation/ into figures/ (PNG + PDF each).

    coverage-heatmap (aggregate), predicted-vs-measured (aggregate), astra-collective-scaling
    (ASTRA-sim tool-run), vidur-latency-cdf (VIDUR tool-run), error-amplification
    (compose-analysis). A figure whose data is missing is skipped with a note. Run
    `nox -s aggregate compose figures` to regenerate everything.
    """


@main.command()
@click.option("--evaluation-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/evaluation"), show_default=True)
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("figures"), show_default=True)
def run(evaluation_dir: Path, output: Path) -> None:
    """Draw every figure whose data is present."""
    if not evaluation_dir.is_dir():
        raise click.UsageError(f"{evaluation_dir}: evaluation folder does not exist")
    try:
        agg_path = evaluation_dir / "mtap-aggregate-results.json"
        aggregate = ms.read(agg_path, "aggregate") if agg_path.is_file() else None
        comp_path = evaluation_dir / "compositional-fidelity.json"
        compositional = ms.read(comp_path, "compositional") if comp_path.is_file() else None
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    by_tool = _tool_docs(evaluation_dir)
    jobs = [
        ("coverage-heatmap", "run `nox -s aggregate` first", lambda: aggregate and plots.coverage_heatmap(aggregate)),
        ("predicted-vs-measured", "needs aggregate pairs with device-time measurements", lambda: aggregate and plots.predicted_vs_measured(aggregate)),
        ("astra-collective-scaling", "needs ok ASTRA-sim collective cases", lambda: plots.collective_scaling([doc for _, doc in by_tool.get("astra-sim", [])])),
        ("vidur-latency-cdf", "needs ok VIDUR cases (request_metrics CSV artifacts or e2e_latency percentiles)", lambda: plots.vidur_latency(by_tool.get("vidur", []), roots=[Path.cwd()])),
        ("error-amplification", "run `nox -s compose` first; needs per-layer predictions with measurements", lambda: compositional and plots.amplification_bars(compositional)),
    ]
    made = 0
    with click.progressbar(jobs, label="figures", file=sys.stderr, item_show_func=lambda j: j[0] if j else "") as bar:
        for name, need, draw in bar:
            fig = draw()
            if not fig:
                click.echo(f"\nskipped {name}: {need}", err=True)
                continue
            save(fig, output, name)
            made += 1
    click.echo(f"{made} of {len(jobs)} figures written to {output}/", err=True)
