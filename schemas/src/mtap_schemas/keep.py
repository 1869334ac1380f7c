"""One policy for keeping results: a run never replaces a document that has more ok cases.

:func:`save` writes a new tool-run document to ``OUTPUT/NAME.tool-run.json`` unless the document
already there has more ``ok`` cases and ``overwrite`` is false; then the new document goes beside
it as ``NAME.refused-fewer-ok.json`` (a name consumers do not read) and the old one stays. The
returned :class:`Saved` says which happened and which exit code the runner ends with.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .kinds import FAILED, OK, Exit
from .toolrun import TOOL_RUN, TOOL_RUN_MAJOR, count_status

SUFFIX = ".tool-run.json"
REFUSED = "refused-fewer-ok"


class OutputError(OSError):
    """The output folder cannot take the document; ``str()`` is one line."""


def _shown(path: Path) -> str:
    """A path as one printable line, whatever bytes its name holds (a non-UTF-8 name is shown escaped)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def target_path(output: str | os.PathLike[str], name: str) -> Path:
    return Path(output) / f"{name}{SUFFIX}"


def check_writable(output: str | os.PathLike[str], need_bytes: int = 1 << 20) -> Path:
    """Before any case runs: the output folder exists or can be made, takes a file, and has room.

    Raises :class:`OutputError` naming the folder and what is wrong."""
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise OutputError(f"{folder}: the output path is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mtap-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write to the output folder: {exc.strerror or exc}") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise OutputError(f"{folder}: only {free} bytes free, the run needs at least {need_bytes}")
    return folder


def newer_major(path: Path) -> int | None:
    """The major version of the document at ``path`` when it is newer than this kit writes (else None):
    a document written by a newer mtap is never replaced by this one, whatever its ok count."""
    import orjson

    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    import re

    found = re.search(rb'"schema_version"\s*:\s*"(\d+)\.', head)
    if found is None:
        try:
            version = str(orjson.loads(path.read_bytes()).get("schema_version", ""))
        except (OSError, orjson.JSONDecodeError, AttributeError):
            return None
        major = version.split(".")[0]
    else:
        major = found.group(1).decode()
    return int(major) if major.isdigit() and int(major) > TOOL_RUN_MAJOR else None


def ok_count(path: Path) -> int:
    """ok cases in the document at ``path``; 0 when it is absent or unreadable."""
    from . import SchemaError, read

    try:
        doc = read(path, TOOL_RUN, TOOL_RUN_MAJOR)
    except SchemaError:
        try:  # a committed document of the previous major still holds results worth keeping
            doc = read(path, TOOL_RUN, TOOL_RUN_MAJOR - 1)
        except SchemaError:
            return 0
    return sum(1 for c in doc["cases"] if c["status"] == OK)


@dataclass(frozen=True)
class Saved:
    path: Path
    kept_existing: bool
    counts: dict[str, int]
    exit_code: Exit
    message: str


def exit_code_for(counts: dict[str, int]) -> Exit:
    if counts.get(OK, 0) == 0 and counts.get(FAILED, 0) > 0:
        return Exit.ALL_FAILED
    return Exit.OK


def save(doc: dict[str, Any], output: str | os.PathLike[str], name: str, *, overwrite: bool = False) -> Saved:
    """Validate and write ``doc`` under the keep policy (temp file + rename; never half-written).
    Large documents are written one case per line (``dumps`` style ``auto``)."""
    from . import write

    counts = count_status(doc["cases"])
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no cases"
    target = target_path(output, name)
    existing = ok_count(target) if target.exists() else 0
    future = newer_major(target) if target.exists() else None
    new_ok = counts.get(OK, 0)
    try:
        if future is not None and not overwrite:
            beside = Path(output) / f"{name}.{REFUSED}.json"
            write(beside, doc, TOOL_RUN, TOOL_RUN_MAJOR, style="auto")
            msg = (f"kept {target} (tool-run v{future}, newer than this runner's v{TOOL_RUN_MAJOR}); this run "
                   f"({summary}) was written to {beside} (--overwrite replaces)")
            return Saved(beside, True, counts, Exit.KEPT_EXISTING, msg)
        if existing > new_ok and not overwrite:
            beside = Path(output) / f"{name}.{REFUSED}.json"
            write(beside, doc, TOOL_RUN, TOOL_RUN_MAJOR, style="auto")
            msg = (f"kept {target} ({existing} ok cases); this run has {new_ok} ok ({summary}), written to {beside} "
                   f"(--overwrite replaces)")
            return Saved(beside, True, counts, Exit.KEPT_EXISTING, msg)
        write(target, doc, TOOL_RUN, TOOL_RUN_MAJOR, style="auto")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.ENAMETOOLONG):
            raise OutputError(f"{_shown(target)}: cannot write: {exc.strerror}") from None
        raise
    code = exit_code_for(counts)
    msg = f"{len(doc['cases'])} cases ({summary}) -> {target}"
    if code == Exit.ALL_FAILED:
        msg += " (every case failed)"
    return Saved(target, False, counts, code, msg)
