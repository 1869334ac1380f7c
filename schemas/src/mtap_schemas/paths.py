"""Paths as documents record them: relative to the repository, never a machine's folder; paths
read from documents confined to a root; decompression with a bound."""

from __future__ import annotations

import lzma
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

#: how an argument pointing outside the repository is recorded
EXTERNAL = "<external>"
#: the read-only data folder beside the repository, recorded as ../shared/...
SHARED = "shared"


class PathError(ValueError):
    """A path from a document or option that may not be followed; ``str()`` is one line."""


@cache
def _root_from(cwd: str) -> Path:
    env = os.environ.get("MTAP_REPO_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(cwd).resolve()
    for folder in (here, *here.parents):
        if (folder / "noxfile.py").is_file() and (folder / "schemas").is_dir():
            return folder
    return here


def repo_root() -> Path:
    """The repository root (the folder with noxfile.py and schemas/ at or above the working folder;
    ``MTAP_REPO_ROOT`` overrides), else the working folder."""
    return _root_from(os.getcwd())


def relative_to_repo(path: str | os.PathLike[str], external: str | None = EXTERNAL) -> str | None:
    """``path`` relative to the repository (``../shared/...`` for the shared folder beside it).

    A path elsewhere becomes ``<external>/NAME`` (or ``None`` when ``external`` is None)."""
    root = repo_root()
    p = Path(path)
    resolved = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return resolved.relative_to(root).as_posix() or "."
    except ValueError:
        pass
    try:
        return (Path("..") / SHARED / resolved.relative_to(root.parent / SHARED)).as_posix()
    except ValueError:
        pass
    if external is None:
        return None
    return f"{external}/{resolved.name}"


def _looks_like_path(arg: str) -> bool:
    return arg.startswith(("/", "~", "./", "../")) or (os.sep in arg and Path(arg).exists())


def portable_argv(argv: Sequence[str]) -> list[str]:
    """argv with every path made repository-relative (``--opt=PATH`` too); outside paths become ``<external>/NAME``."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            opt, _, value = arg.partition("=")
            out.append(f"{opt}={relative_to_repo(os.path.expanduser(value))}" if _looks_like_path(value) else arg)
        elif _looks_like_path(arg):
            out.append(relative_to_repo(os.path.expanduser(arg)) or arg)
        else:
            out.append(arg)
    return [printable(a) for a in out]


def printable(text: str) -> str:
    """``text`` as valid UTF-8: bytes a file name held that are not UTF-8 (surrogate escapes) are
    written as ``\\xNN``, so a recorded command or a message never fails to encode."""
    return os.fsencode(text).decode("utf-8", "backslashreplace") if isinstance(text, str) else text


_PATH_TOKEN = re.compile(r"(?:(?<=^)|(?<=[\s=:,]))((?:/|~/|\.\./)[^\s,]+)")


def portable_text(text: str, named: dict[str, str] | None = None) -> str:
    """``text`` with every path token made portable: a path under a folder of ``named`` (folder ->
    label, e.g. a temp clone -> ``<clone>``) becomes ``LABEL/rest``; any other path relative to the
    repository, or ``<external>/NAME``. For recorded commands, locations and settings."""
    folders = sorted(((str(Path(k)), v) for k, v in (named or {}).items()), key=lambda kv: -len(kv[0]))

    def repl(m: re.Match[str]) -> str:
        token = m.group(1)
        if token.startswith("~/"):
            token = str(Path.home() / token[2:])
        for folder, label in folders:
            if token == folder or token.startswith(folder + "/"):
                return label + token[len(folder):]
        return relative_to_repo(token) or token

    return _PATH_TOKEN.sub(repl, text)


def confined(root: str | os.PathLike[str], relative: str, what: str = "path") -> Path:
    """``root / relative``, refusing an absolute path or one that leaves ``root`` (also through links)."""
    base = Path(root).resolve()
    if not relative or Path(relative).is_absolute():
        raise PathError(f"{what} {relative!r}: expected a path relative to {base.name}/")
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise PathError(f"{what} {relative!r}: leaves {base.name}/, refused")
    return target


def read_lzma_bounded(path: str | os.PathLike[str], limit: int = 256 << 20) -> bytes:
    """Decompress an .xz/.lzma file, refusing (``PathError``) output larger than ``limit`` bytes."""
    out = bytearray()
    decomp = lzma.LZMADecompressor()
    with open(path, "rb") as handle:
        while not decomp.eof:
            chunk = handle.read(1 << 16) if decomp.needs_input else b""
            if decomp.needs_input and not chunk:
                break
            try:
                out += decomp.decompress(chunk, max_length=limit + 1 - len(out))
            except lzma.LZMAError as exc:
                raise PathError(f"{path}: not a readable .xz stream ({exc})") from None
            if len(out) > limit:
                raise PathError(f"{path}: decompresses to more than {limit} bytes, refused")
    if not decomp.eof:  # the file ended inside the stream: never hand back part of it as if it were all
        raise PathError(f"{path}: truncated .xz stream (the file ends before the stream does)")
    return bytes(out)
