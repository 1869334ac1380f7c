"""mtap-aggregate: join every tool-run document into the MTAP aggregate table."""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import mtap_schemas as ms
from mtap_schemas.cli import UserError, runner_group

from . import __version__
from .collect import collect, read_training
from .crosstool import w5_cross_tool
from .fidelity import claims_vs_measured, d1_rows
from .report import coverage_markdown, readme_summary, replace_block
from .table import ROW_SCHEMA, coverage, errors_vs_measured
from .tables import d1_claims, d1_fidelity, d3_generalization, d3_sensitivity, d4_deployment, d5_extensibility, d5_new_hardware, recipe_gaps
from .write import write_aggregate

if TYPE_CHECKING:
    import polars as pl


@contextmanager
def _no_cyclic_gc():
    # Reading 10^5 cases makes millions of small objects and no cycles: the cyclic
    # collector would rescan them again and again (measured: 2.4x slower reading).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build(evaluation_dir: Path, on_skip=None, claims: list[dict] | None = None, tables_out: list | None = None,
          hardware: dict | None = None, on_note=None, rows_out: list | None = None, root: Path | None = None) -> tuple[dict, str]:
    """The aggregate v2 document (``table.file`` is filled in by :func:`write_aggregate`) and the
    Markdown coverage matrix for ``evaluation_dir``.

    When ``tables_out`` is a list, the MTAP tables (D1, D3, D4) are appended to it; when ``rows_out``
    is a list, the long table (a polars frame) is appended to it. ``hardware`` (the catalog) turns on
    the hardware-mislabel check; ``root`` (the repository) the stale-provenance check.
    """
    with _no_cyclic_gc():
        return _build(evaluation_dir, on_skip, claims or [], tables_out, hardware, on_note, rows_out, root)


def _build(evaluation_dir: Path, on_skip, claims: list[dict], tables_out: list | None, hardware, on_note, rows_out, root) -> tuple[dict, str]:
    collected = collect(evaluation_dir, on_skip=on_skip, hardware=hardware, root=root)
    rows = collected.rows
    cov = coverage(rows)
    dropped: list[int] = []
    errors = errors_vs_measured(rows, dropped)
    if dropped[0] and on_note:
        on_note(f"{dropped[0]} pair(s) dropped: not finite after unit conversion")
    sources = [
        {
            "path": s.path,
            "sha256": s.sha256,
            "tool": s.tool["name"],
            "backend": s.tool["backend"],
            "cases": len(s.cases),
            "superseded": s.superseded,
            **({"stale_inputs": s.stale_inputs} if s.stale_inputs else {}),
        }
        for s in collected.sources
    ]
    if on_note:
        for s in collected.sources:
            if s.stale_inputs:
                on_note(f"{s.path}: stale provenance: {', '.join(s.stale_inputs)} changed since the run (re-run it)")
    skipped = collected.skipped_dicts
    trainings = read_training(evaluation_dir, on_skip)
    rows_d1 = d1_rows(errors, recipe_gaps(collected.sources, trainings))
    claimed = claims_vs_measured(errors, claims)
    doc = {
        "schema": "aggregate",
        "schema_version": ms.version("aggregate", 2),
        "sources": sources,
        "skipped": skipped,
        "table": {"columns": list(ROW_SCHEMA), "rows": rows.height},
        "coverage": cov.to_dicts(),
        **_pairs_and_notes(errors),
        "d1_rows": rows_d1,
        "claims_vs_measured": claimed,
    }
    if rows_out is not None:
        rows_out.append(rows)
    if tables_out is not None:
        tables_out.extend(d1_fidelity(rows_d1, rows))
        tables_out.append(d1_claims(claimed))
        tables_out.append(d3_generalization(rows))
        tables_out.append(d3_sensitivity(collected.sources))
        tables_out.append(d4_deployment(collected.sources, trainings))
        tables_out.extend(w5_cross_tool(errors))
    return doc, coverage_markdown(cov, rows_d1, skipped, sources)


def _pairs_and_notes(errors: pl.DataFrame) -> dict[str, Any]:
    """errors_vs_measured with each pair's reference note as an index into reference_notes (aggregate 2.3):
    one sentence per declaration, not one per pair."""
    notes = sorted({n for n in errors["reference_note"].to_list() if n})
    index = {n: i for i, n in enumerate(notes)}
    pairs = []
    for row in errors.to_dicts():
        note = row.pop("reference_note")
        if note:
            row["reference_note_index"] = index[note]
        pairs.append(row)
    return {"errors_vs_measured": pairs, "reference_notes": notes}


@runner_group("mtap-aggregate", __version__)
def main() -> None:
    """Join every tool-run v2 document under an evaluation folder into one long table.

    Reads data/evaluation/**/*.tool-run.json (each validated; a bad, non-UTF-8 or duplicate
    file, and a measurement filed under another GPU's hardware id, is reported by name and
    skipped, and listed in the output), merges shards and re-runs (one case per tool and case
    id, best status wins), and writes the aggregate v2 document (with its long table as Parquet), a Markdown coverage matrix
    (tool × workload) and the MTAP tables.

    Example: mtap-aggregate run --evaluation-dir data/evaluation
    """


@main.command()
@click.option(
    "--evaluation-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/evaluation"),
    show_default=True,
    help="Folder searched recursively for *.tool-run.json.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Aggregate document path.  [default: EVALUATION_DIR/mtap-aggregate-results.json]",
)
@click.option(
    "--coverage-md",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown coverage matrix path.  [default: EVALUATION_DIR/coverage-matrix.md]",
)
@click.option(
    "--tables-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the MTAP tables (Markdown + LaTeX).  [default: EVALUATION_DIR/tables]",
)
@click.option(
    "--claims",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/claims/self-reported.json"),
    show_default=True,
    help="The tools' own accuracy claims (claims v2), compared in their own metric on the matching subset (table d1-claims); skipped with a note if absent.",
)
@click.option(
    "--extensibility",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/extensibility/extension-points.json"),
    show_default=True,
    help="D5 declaration (extensibility v1); its paths are relative to the current folder (the repository root).",
)
@click.option(
    "--hardware",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/hardware/hardware.json"),
    show_default=True,
    help="Hardware catalog (hardware v1): measurements filed under a hardware id whose GPU differs from the GPU they ran on are refused.",
)
@click.option(
    "--readme",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A Markdown file with the generated D1 block (between its two marker lines): the block is rewritten from this run.",
)
@click.option("--strict", is_flag=True, help="Exit 1 if any document was skipped.")
def run(evaluation_dir: Path, output: Path | None, coverage_md: Path | None, tables_dir: Path | None, claims: Path,
        extensibility: Path, hardware: Path, readme: Path | None, strict: bool) -> None:
    """Aggregate the documents and write the table, the coverage matrix and the MTAP tables."""
    if not evaluation_dir.is_dir():
        raise UserError(f"{evaluation_dir}: evaluation folder does not exist")
    output = output or evaluation_dir / "mtap-aggregate-results.json"
    coverage_md = coverage_md or evaluation_dir / "coverage-matrix.md"
    tables_dir = tables_dir or evaluation_dir / "tables"
    claim_list = _read_claims(claims)

    def warn(rel: str, reason: str) -> None:
        click.echo(f"skipped {rel}: {reason}", err=True)

    catalog = _read_catalog(hardware)
    tables: list = []
    frames: list = []
    doc, markdown = build(evaluation_dir, on_skip=warn, claims=claim_list, tables_out=tables, hardware=catalog, rows_out=frames,
                          on_note=lambda text: click.echo(f"note: {text}", err=True), root=Path.cwd())
    tables.extend(_d5_tables(extensibility))
    rows = frames[0]
    readme_text = None
    if readme is not None:  # checked before anything is written
        try:
            readme_text = replace_block(readme.read_text(encoding="utf-8"), readme_summary(doc["d1_rows"], doc["claims_vs_measured"]), str(readme))
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None
    _write_outputs(output, coverage_md, tables_dir, doc, rows, markdown, tables)
    if readme_text is not None:
        ms.write_text_atomic(readme, readme_text)
    click.echo(
        f"{len(doc['sources'])} documents, {rows.height} rows, {len(doc['errors_vs_measured'])} prediction/measurement pairs"
        f", {len(doc['skipped'])} skipped -> {output}, {coverage_md}",
        err=True,
    )
    if strict and doc["skipped"]:
        sys.exit(1)


def _read_claims(claims: Path) -> list[dict]:
    """The self-reported claims for D1, or none (with a note) where the file is missing."""
    if not claims.is_file():
        click.echo(f"note: {claims} not found; D1 shows no self-reported claims", err=True)
        return []
    try:
        return ms.read(claims, "claims", 2)["claims"]
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None


def _read_catalog(hardware: Path) -> dict | None:
    """The hardware catalog that labels are checked against, or None (with a note) where it is missing."""
    if not hardware.is_file():
        click.echo(f"note: {hardware} not found; hardware labels are not checked", err=True)
        return None
    return ms.read(hardware, "hardware")


def _d5_tables(extensibility: Path) -> list:
    """The D5 tables from the extensibility declaration: none (with a note) where it is missing."""
    if not extensibility.is_file():
        click.echo(f"note: {extensibility} not found; no D5 table", err=True)
        return []
    try:
        declaration = ms.read(extensibility, "extensibility")
        tables = [d5_extensibility(Path.cwd(), declaration)]
        effort = d5_new_hardware(declaration)
        if effort is not None:
            tables.append(effort)
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    except (OSError, ValueError, KeyError, IndexError) as exc:  # PathError is a ValueError: one line too
        raise UserError(f"{extensibility}: {exc}") from None
    return tables


def _write_outputs(output: Path, coverage_md: Path, tables_dir: Path, doc: dict, rows: pl.DataFrame, markdown: str,
                   tables: list) -> None:
    """Write the aggregate document, the coverage matrix and each table (Markdown and LaTeX)."""
    write_aggregate(output, doc, rows)
    ms.write_text_atomic(coverage_md, markdown)
    for table in tables:
        ms.write_text_atomic(tables_dir / f"{table.name}.md", table.markdown())
        ms.write_text_atomic(tables_dir / f"{table.name}.tex", table.latex())


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check(path: Path) -> None:
    """Validate one tool-run document; print one line and exit 2 if it is invalid."""
    try:
        doc = ms.read_tool_run(path)
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{path}: valid tool-run v{doc['schema_version']} ({doc['tool']['name']}, {len(doc['cases'])} cases)")
