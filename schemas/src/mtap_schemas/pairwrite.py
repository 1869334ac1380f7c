"""Write several files that belong together (a document and the table whose sha256 it records) so
that a reader sees either every old file or every new one, never a mix.

    with write_together() as stage:
        tmp = stage.path(folder / "x.table.parquet")    # a temp file beside the target: write into it
        frame.write_parquet(tmp)
        stage.text(folder / "x.json", json_text)        # or stage.data(target, bytes)
    # here both targets are in place; an error inside the block leaves both as they were

Each file is staged as a temp file in its target's folder (so the rename is atomic), with the mode
the umask gives any new file (as the kit's ``write`` does). On leaving the block the temps are
renamed into place in the order staged; if a rename fails, the targets already replaced get their
old files back (kept as hard links, or copies, beside them until the end) and targets that did
not exist are removed again. Temps and backups never outlive the call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _mode() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return 0o666 & ~current


class Staged:
    """The files staged in one :func:`write_together` block, target -> temp file."""

    def __init__(self) -> None:
        self.files: list[tuple[Path, Path]] = []

    def path(self, target: str | os.PathLike[str]) -> Path:
        """A new empty temp file beside ``target`` to write into; it replaces ``target`` at the end."""
        target = Path(target)
        if any(t == target for t, _ in self.files):
            raise ValueError(f"{target}: staged twice")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        self.files.append((target, Path(tmp)))
        return Path(tmp)

    def data(self, target: str | os.PathLike[str], data: bytes) -> Path:
        tmp = self.path(target)
        tmp.write_bytes(data)
        return tmp

    def text(self, target: str | os.PathLike[str], text: str) -> Path:
        return self.data(target, text.encode("utf-8"))

    def _discard(self) -> None:
        for _, tmp in self.files:
            tmp.unlink(missing_ok=True)

    def _backup(self, target: Path) -> Path | None:
        if not target.exists():
            return None
        fd, keep = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
        os.close(fd)
        os.unlink(keep)
        try:
            os.link(target, keep)  # the old file itself, no copy (same folder, same file system)
        except OSError:
            shutil.copy2(target, keep)
        return Path(keep)

    def _commit(self) -> None:
        mode = _mode()
        for _, tmp in self.files:
            os.chmod(tmp, mode)  # mkstemp makes 0600
        backups: list[tuple[Path, Path | None]] = []
        done: list[Path] = []
        try:
            for target, _ in self.files:
                backups.append((target, self._backup(target)))
            for target, tmp in self.files:
                os.replace(tmp, target)
                done.append(target)
        except BaseException:
            for target, keep in backups:  # put every replaced target back as it was
                if target not in done:
                    continue
                if keep is not None:
                    os.replace(keep, target)
                else:
                    target.unlink(missing_ok=True)
            raise
        finally:
            for _, keep in backups:
                if keep is not None:
                    keep.unlink(missing_ok=True)
            self._discard()


@contextmanager
def write_together() -> Iterator[Staged]:
    """Stage files inside the block; they all replace their targets when it ends without an error
    (see the module's docstring). An error inside the block, or while renaming, leaves the old files."""
    stage = Staged()
    try:
        yield stage
    except BaseException:
        stage._discard()
        raise
    stage._commit()


class RecordedFileError(ValueError):
    """A file a document records (path and sha256) is missing, unreadable or changed; ``str()`` is one line."""


def check_recorded(document: str | os.PathLike[str], record: dict[str, str], what: str = "file") -> Path:
    """The file ``record`` (``{"path", "sha256"}``, the path relative to ``document``'s folder) names,
    after checking it is there and its sha256 is the recorded one: a flipped byte, a truncated or a
    missing file raises :class:`RecordedFileError` naming the file and the document."""
    import hashlib

    from .paths import PathError, confined

    doc = Path(document)
    try:
        target = confined(doc.parent, record["path"], what)
    except PathError as exc:
        raise RecordedFileError(f"{doc}: {exc}") from None
    shown = doc.parent / record["path"]
    digest = hashlib.sha256()
    try:
        with open(target, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise RecordedFileError(f"{shown}: {what} missing ({doc.name} records it; regenerate both)") from None
    except OSError as exc:
        raise RecordedFileError(f"{shown}: {what} cannot be read: {exc.strerror or exc}") from None
    if digest.hexdigest() != record["sha256"]:
        raise RecordedFileError(
            f"{shown}: {what} sha256 {digest.hexdigest()[:12]}… differs from the "
            f"{record['sha256'][:12]}… {doc.name} records (changed or truncated; regenerate both)"
        )
    return target
