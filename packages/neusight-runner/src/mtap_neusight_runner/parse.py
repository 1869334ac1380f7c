"""Readers for NeuSight's own files: result/label JSONs, its printed E2E line, the authors' summary.csv."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path


class ParseError(ValueError):
    """One line naming the file and the field."""


def read_latency_json(path: Path, field: str = "e2e_latency") -> float:
    """``e2e_latency`` (ms) of a NeuSight prediction or label JSON (``{"num_layer", "e2e_latency", ...}``).

    A file that cannot be read or parsed, or holds no number there, raises :class:`ParseError`; the
    number itself is returned as written (``1e999`` reads as infinity): whether a latency can take
    it is decided where the metric is made (``mtap_schemas.toolrun.metric``: ``invalid-value``)."""
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ParseError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ParseError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or field not in doc:
        raise ParseError(f"{path}: field {field}: missing, expected a latency in ms")
    value = doc[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{path}: field {field}: got {value!r:.40}, expected a number (ms)")
    return float(value)


E2E_LINE = re.compile(r"^E2E latency for (?P<tag>\S+) on (?P<device>\S+): (?P<ms>[0-9.eE+-]+) ms$", re.M)


def parse_e2e_line(text: str) -> tuple[str, str, float] | None:
    """NeuSight's last printed line: ``E2E latency for <tag> on <device config file>: <ms rounded to 2> ms``."""
    found = E2E_LINE.findall(text)
    if not found:
        return None
    tag, device, ms = found[-1]
    return tag, device, float(ms)


def read_summary(path: Path) -> dict[tuple[str, int, int, str, str, str], dict[str, str]]:
    """The authors' summary/summary.csv rows, keyed by (model, seqlen, batch, device, mode, option)."""
    out = {}
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ParseError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for row in csv.DictReader(io.StringIO(text, newline="")):
        try:
            key = (row["model_name"], int(row["seqlen"]), int(row["batch"]), row["device"], row["mode"], row["option"] or "")
        except (KeyError, ValueError) as exc:
            raise ParseError(f"{path}: row {row!r:.80}: {exc}") from None
        out[key] = row
    return out


def summary_value(row: dict[str, str] | None, column: str) -> float | None:
    if not row:
        return None
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None
