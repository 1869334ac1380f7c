"""The versioned JSON schemas every mtap package reads and writes, the three operations they
share (validate a document, read one from disk, write one atomically) and the runner kit built
on them: ``toolrun`` (the one tool-run builder and typed case constructors), ``kinds`` (statuses,
error kinds, exit codes), ``keep`` (never lose results), ``execute`` (parallel, sharded,
resumable cases), ``proc`` (a tool's process), ``cli`` (the runner CLI contract), ``consume``
(the consumers' reader) and ``paths`` (repository-relative and confined paths).

Schemas are plain files, ``<name>.v<major>.schema.json`` (JSON Schema 2020-12). Each
document names its schema and version in its top-level ``schema`` and
``schema_version`` fields; a reader accepts the same major version only.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any

import jsonschema
import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker

__all__ = [
    "TOOL_RUN_MAJOR",
    "SchemaError",
    "read_tool_run",
    "canonical",
    "dumps",
    "environment",
    "load_schema",
    "open_atomic",
    "read",
    "schema_names",
    "sha256_file",
    "validate",
    "version",
    "write",
]

#: Fields that hold wall-clock values; they are left out when documents are compared.
WALL_CLOCK_FIELDS = {"wall_clock"}


class SchemaError(ValueError):
    """A document does not match its schema. ``str()`` is one line naming file and field."""


def _schema_dir() -> Path:
    override = os.environ.get("MTAP_SCHEMAS_DIR")
    if override:
        return Path(override)
    packaged = Path(str(resources.files(__name__) / "schemas"))
    if packaged.is_dir():
        return packaged
    # Editable install or source checkout: the files sit at the top of schemas/.
    return Path(__file__).resolve().parents[2]


def schema_names() -> list[tuple[str, int]]:
    """Every (name, major) pair for which a schema file is installed."""
    out = []
    for path in sorted(_schema_dir().glob("*.v*.schema.json")):
        stem = path.name[: -len(".schema.json")]
        name, _, major = stem.rpartition(".v")
        out.append((name, int(major)))
    return out


@cache
def load_schema(name: str, major: int = 1) -> dict[str, Any]:
    path = _schema_dir() / f"{name}.v{major}.schema.json"
    if not path.is_file():
        known = ", ".join(f"{n} v{m}" for n, m in schema_names()) or "none"
        raise SchemaError(f"no schema {name!r} v{major} (installed: {known})")
    return json.loads(path.read_text(encoding="utf-8"))


def version(name: str, major: int = 1) -> str:
    """The full version (``major.minor.patch``) a writer puts in ``schema_version``."""
    return load_schema(name, major)["x-mtap-version"]


@cache
def _validator(name: str, major: int) -> Draft202012Validator:
    schema = load_schema(name, major)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


# Any JSON value, recursively: jsonschema-rs refuses NaN and infinity while checking it.
_fast_finite = jsonschema_rs.validator_for(
    {"type": ["string", "boolean", "null", "number", "object", "array"], "items": {"$ref": "#"}, "additionalProperties": {"$ref": "#"}}
)


@cache
def _fast_validator(name: str, major: int):
    """jsonschema-rs: the same 2020-12 semantics, ~100x faster; used to accept valid documents."""
    return jsonschema_rs.validator_for(load_schema(name, major), validate_formats=True)


def _field(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unexpected field(s): {error.message.split('(')[-1].rstrip(')')}"
    if error.validator == "required":
        return error.message
    if error.validator in ("enum", "const"):
        expected = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"got {error.instance!r}, expected one of {expected}"
    if error.validator == "type":
        return f"got {type(error.instance).__name__} {error.instance!r:.60}, expected {error.validator_value}"
    return error.message[:200]


def validate(doc: Any, name: str, major: int = 1, source: str = "<document>") -> None:
    """Raise :class:`SchemaError` (one line: source, field, what was expected) if ``doc`` is invalid.

    Valid documents are accepted by jsonschema-rs; an invalid one is explained by jsonschema's
    best match, so messages are the same whichever validator saw the problem first.
    """
    fast = _fast_validator(name, major)
    if fast.is_valid(doc):
        return
    errors = sorted(_validator(name, major).iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        first = next(fast.iter_errors(doc))
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.instance_path).lstrip(".") or "(document)"
        raise SchemaError(f"{source}: field {where}: {first.message[:200]} ({name} v{major} schema)")
    # The deepest error usually names the real field; oneOf/if-then wrappers are less helpful.
    best = jsonschema.exceptions.best_match(errors)
    raise SchemaError(f"{source}: field {_field(best)}: {_describe(best)} ({name} v{major} schema)")


def validate_with(doc: Any, schema_file: str | os.PathLike[str], source: str = "<document>") -> None:
    """Validate ``doc`` against a schema file (runner configs); one-line :class:`SchemaError` like :func:`validate`."""
    path = Path(schema_file)
    if not path.is_file():
        raise SchemaError(f"{source}: no config schema {path.name} is installed")
    schema = _file_schema(str(path))
    errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(doc),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise SchemaError(f"{source}: field {_field(best)}: {_describe(best)}")


@cache
def _file_schema(path: str) -> dict[str, Any]:
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


def check_header(doc: Any, name: str, major: int, source: str) -> None:
    if not isinstance(doc, dict):
        raise SchemaError(f"{source}: expected a JSON object at the top level, got {type(doc).__name__}")
    got_name = doc.get("schema")
    if got_name != name:
        raise SchemaError(f"{source}: field schema: got {got_name!r}, expected {name!r}")
    got_version = str(doc.get("schema_version", ""))
    if got_version.split(".")[0] != str(major):
        raise SchemaError(
            f"{source}: field schema_version: got {got_version or 'none'!r}, this reader accepts {name} v{major}.x only"
        )


def read(path: str | os.PathLike[str], name: str, major: int = 1) -> dict[str, Any]:
    """Load and validate a document; any problem raises one-line :class:`SchemaError`."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SchemaError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(raw)  # orjson refuses invalid UTF-8 as a JSONDecodeError
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower() or "surrogate" in str(exc).lower():
            raise SchemaError(f"{source}: not UTF-8 text: {exc.msg}") from None
        raise SchemaError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    check_header(doc, name, major, source)
    validate(doc, name, major, source)
    return doc


def read_tool_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A tool-run document of the major version every runner writes now (see toolrun.TOOL_RUN_MAJOR)."""
    return read(path, "tool-run", TOOL_RUN_MAJOR)


#: ``dumps`` style ``auto``: a document whose pretty text would pass this many bytes is written in the
#: ``lines`` style instead: the same JSON, about 60 % of the size (a 1,768-case replay: 6.7 MB, 3.8 MB)
LINES_ABOVE_BYTES = 4 << 20


def dumps(doc: Any, style: str = "pretty") -> str:
    """Deterministic JSON text with sorted keys and a trailing newline (orjson, UTF-8).

    ``pretty``: two-space indent throughout. ``lines``: the top-level object indented, each
    item of its top-level arrays compact on one line, for large tables (one diffable line
    per row). ``auto``: pretty, unless that passes ``LINES_ABOVE_BYTES``, then lines. NaN and
    infinity are refused (orjson would write null).
    """
    if style not in ("pretty", "lines", "auto"):
        raise ValueError(f"unknown style {style!r}")
    _check_finite(doc)
    if style in ("pretty", "auto"):
        pretty = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        if style == "pretty" or len(pretty) <= LINES_ABOVE_BYTES:
            return pretty.decode()
    if not isinstance(doc, dict):
        raise ValueError("the lines style needs a JSON object at the top level")
    parts = []
    for key in sorted(doc):
        value = doc[key]
        if isinstance(value, list) and value:
            parts.append(b"  " + orjson.dumps(key) + b": [\n    " + _one_item_per_line(value) + b"\n  ]")
        else:
            parts.append(b"  " + orjson.dumps(key) + b": " + orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (b"{\n" + b",\n".join(parts) + b"\n}\n").decode()


def _one_item_per_line(items: list[Any]) -> bytes:
    """The items of a list, compact, joined by ',\\n    '.

    Fast path: one orjson call for the whole list, then a line break at each boundary between
    items. It is used only when every item is an array (or every item an object) of scalars and
    the boundary marker occurs exactly len(items) - 1 times, i.e. never inside a string;
    otherwise each item is encoded on its own.
    """
    flat = orjson.dumps(items, option=orjson.OPT_SORT_KEYS)
    for kind, marker in ((list, b"],["), (dict, b"},{")):
        if all(type(i) is kind for i in items) and flat.count(marker) == len(items) - 1:
            if all(not isinstance(v, (list, dict)) for i in items for v in (i if kind is list else i.values())):
                return flat[1:-1].replace(marker, marker[:1] + b",\n    " + marker[2:])
    return b",\n    ".join(orjson.dumps(item, option=orjson.OPT_SORT_KEYS) for item in items)


def _check_finite(doc: Any) -> None:
    # jsonschema-rs already refuses non-finite numbers; this guards direct dumps() callers cheaply.
    if not _fast_finite.is_valid(doc):
        raise ValueError("document holds NaN or infinity, which JSON cannot represent")


@contextmanager
def open_atomic(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` only when the block ends without an error (temp file
    beside it + rename, the mode the umask gives); on an error nothing is left behind."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a document gets the mode any new file would
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temp file beside ``path`` and rename it into place."""
    with open_atomic(path) as handle:
        handle.write(text)
    return Path(path)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write(path: str | os.PathLike[str], doc: dict[str, Any], name: str, major: int = 1, style: str = "pretty") -> Path:
    """Validate ``doc`` against its schema, then write it atomically. Nothing is written if invalid."""
    check_header(doc, name, major, str(path))
    validate(doc, name, major, str(path))
    return write_text_atomic(path, dumps(doc, style))


def canonical(doc: Any) -> Any:
    """``doc`` without its wall-clock fields, for determinism comparisons."""
    if isinstance(doc, dict):
        return {k: canonical(v) for k, v in doc.items() if k not in WALL_CLOCK_FIELDS}
    if isinstance(doc, list):
        return [canonical(v) for v in doc]
    return doc


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(gpu: dict[str, Any] | None = None, packages: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``environment`` object of a tool-run document for this process."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
    }
    if packages:
        env["packages"] = dict(sorted(packages.items()))
    return env


from .toolrun import TOOL_RUN_MAJOR  # noqa: E402  (the kit's modules import the helpers above)
