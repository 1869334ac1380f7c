"""Write the aggregate document with its long table streamed from polars in slices: every row
is validated (slice by slice) and the file appears only when complete (temp file + rename)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl

import mtap_schemas as ms

SLICE = 50_000


def write_aggregate(path: Path, doc: dict[str, Any], rows: pl.DataFrame, encoded: list[bytes] | None = None) -> Path:
    """``doc`` with ``table.rows`` empty, plus the rows as a frame: the same bytes as
    ``ms.write(path, doc_with_rows, "aggregate", style="lines")``, without the rows as Python lists.

    ``encoded`` (the rows already as compact JSON, in order) is written as it is; its rows are
    validated in the frame's columns' terms: the frame's dtypes are the schema's row types."""
    skeleton = dict(doc, table={"columns": list(rows.columns), "rows": []})
    ms.check_header(skeleton, "aggregate", 1, str(path))
    ms.validate(skeleton, "aggregate", 1, str(path))
    small = dict(skeleton, coverage=[], errors_vs_measured=[], sources=[], skipped=[])
    parts = rows.iter_slices(SLICE) if encoded is None else [rows.head(SLICE)]
    for offset, part in enumerate(parts):
        try:
            ms.validate(dict(small, table={"columns": skeleton["table"]["columns"], "rows": part.rows()}), "aggregate", 1, str(path))
        except ms.SchemaError as exc:
            raise ms.SchemaError(f"{exc} (table rows {offset * SLICE}-{offset * SLICE + part.height - 1})") from None
    if encoded is not None:
        _check_frame(rows, path)
    text = ms.dumps(skeleton, "lines")
    head, sep, tail = text.rpartition('"rows":[]')
    assert sep, "the table must be the last key of the lines-style document"
    with ms.open_atomic(path) as handle:
        handle.write(head)
        handle.write('"rows":[')
        chunks = encoded if encoded is not None else (orjson.dumps(p.rows())[1:-1] for p in rows.iter_slices(SLICE) if p.height)
        for i, chunk in enumerate(chunks):
            if i:
                handle.write(",")
            handle.write(chunk.decode())
        handle.write("]")
        handle.write(tail)
    return path


def _check_frame(rows: pl.DataFrame, path: Path) -> None:
    """What the schema checks per row, checked per column: the value column finite, the rest typed strings."""
    from .table import ROW_SCHEMA

    if dict(rows.schema) != ROW_SCHEMA:
        raise ms.SchemaError(f"{path}: field table.rows: columns {dict(rows.schema)} differ from {ROW_SCHEMA}")
    bad = rows.filter(pl.col("value").is_not_null() & ~pl.col("value").is_finite())
    if bad.height:
        raise ms.SchemaError(f"{path}: field table.rows: {bad.height} non-finite value(s), first in case {bad['case'][0]}")
