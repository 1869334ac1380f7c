"""Write the aggregate document (aggregate v2): the small JSON document, and its long table as a
Parquet file beside it, named and sha256-checked in ``table.file``. The two appear together or not
at all (``mtap_schemas.pairwrite``: both staged as temp files, then renamed; a failure leaves the
old pair), with the mode the umask gives; the table's columns and values are checked before
anything is written. A reader checks the table against its sha256 with ``mtap_schemas.pairwrite.check_recorded``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

import mtap_schemas as ms
from mtap_schemas.pairwrite import write_together

from .table import ROW_SCHEMA

MAJOR = 2


def table_path(path: Path) -> Path:
    """``mtap-aggregate-results.json`` -> ``mtap-aggregate-results.table.parquet`` beside it."""
    return path.with_name(f"{path.stem}.table.parquet")


def write_aggregate(path: Path, doc: dict[str, Any], rows: pl.DataFrame) -> Path:
    """Write ``rows`` as Parquet beside ``path`` and ``doc`` (with ``table.file`` filled in) at ``path``
    (the table file holds the schema's columns; the reader's own columns are left out)."""
    rows = rows.select([c for c in rows.columns if c in ROW_SCHEMA]) if set(ROW_SCHEMA) <= set(rows.columns) else rows
    _check_frame(rows, path)
    ms.check_header(doc, "aggregate", MAJOR, str(path))
    ms.validate(doc, "aggregate", MAJOR, str(path))  # before any file is written
    target = table_path(path)
    # the pair appears together or not at all: a failure between the table and the document leaves the old pair
    with write_together() as stage:
        tmp = stage.path(target)
        # one chunk: the file's bytes depend on the frame's chunks, which depend on how it was built
        rows.rechunk().write_parquet(tmp, compression="zstd", statistics=False)
        full = dict(doc, table={**doc["table"], "file": {"path": target.name, "sha256": ms.sha256_file(tmp)}})
        ms.check_header(full, "aggregate", MAJOR, str(path))
        ms.validate(full, "aggregate", MAJOR, str(path))
        stage.text(path, ms.dumps(full, "lines"))
    return path


def _check_frame(rows: pl.DataFrame, path: Path) -> None:
    """What the rows must be: the schema's columns and types, finite values."""
    if dict(rows.schema) != ROW_SCHEMA:
        raise ms.SchemaError(f"{path}: field table: columns {dict(rows.schema)} differ from {ROW_SCHEMA}")
    bad = rows.filter(pl.col("value").is_not_null() & ~pl.col("value").is_finite())
    if bad.height:
        raise ms.SchemaError(f"{path}: field table: {bad.height} non-finite value(s), first in case {bad['case'][0]}")

