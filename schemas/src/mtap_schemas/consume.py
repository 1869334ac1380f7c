"""One reader for consumers (aggregate, compose, figures): find every tool-run document under an
evaluation folder, validate it, drop exact copies and repeated case ids, and say what was skipped.

    skipped: list[Skipped] = []
    for rel, doc, sha256 in iter_tool_runs("data/evaluation", skipped):   # sorted by path, one at a time
        ...
    for rel, sha256, kept in map_tool_runs("data/evaluation", skipped, reduce, jobs=4):  # reduce(rel, doc, sha256)
        ...                                    # in worker processes for a large folder; same order, same result
    skipped                                    # [Skipped(path, reason)] — recorded in every consumer's output

A document is skipped (never a crash) when its file name is not UTF-8 or it is a symbolic link
(never followed; both listed by a printable name), when it is not UTF-8, not JSON, not a tool-run of the
supported major version, or invalid; when its bytes equal an earlier document's; or when one of
its measurements sits under a hardware id whose GPU is not the GPU its environment names, or
whose GPU count is not the count the case ran on (:func:`gpu_count_mismatch`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .toolrun import TOOL_RUN, TOOL_RUN_MAJOR

PATTERN = "*.tool-run.json"


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def display_name(path: str | os.PathLike[str]) -> str:
    """A path as text that can be printed and written to JSON whatever its bytes: a name that is not
    UTF-8 has each undecodable byte as ``\\xNN`` (from ``os.fsencode``), so it can be named, not crash."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: bytes the file system holds that are not UTF-8
        return False
    return True


def _refused(path: Path, root: Path) -> str | None:
    """Why a found path is not read: a symbolic link (never followed, not even inside the folder:
    what a link points to can change under a reader) or a name that is not UTF-8."""
    if not _utf8(os.path.relpath(path, root)):
        return "file name is not UTF-8 (rename it to read it)"
    if path.is_symlink():
        try:
            target = path.resolve()
            where = f"to {display_name(target.relative_to(root.resolve()).as_posix())}"
        except (ValueError, OSError, RuntimeError):  # outside the folder, or a loop: no machine path is recorded
            where = "to a path outside the evaluation folder"
        return f"symbolic link, not followed ({where})"
    return None


def find(evaluation_dir: str | os.PathLike[str], skipped: list[Skipped] | None = None, pattern: str = PATTERN) -> list[Path]:
    """Every file matching ``pattern`` (``*.tool-run.json``) below the folder, sorted. Symbolic links
    (to files or folders) are not followed, and a name that is not UTF-8 is not read: each is appended
    to ``skipped`` (when given) by its printable name (:func:`display_name`) with the reason."""
    root = Path(evaluation_dir)
    out = []
    refused: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in dirs:
            if (base / name).is_symlink():
                refused.append(base / name)  # a linked folder is not walked: say so, it may hold documents
        for name in files:
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            path = base / name
            if _refused(path, root):
                refused.append(path)
            elif path.is_file():
                out.append(path)
    if skipped is not None:
        for path in sorted(refused):
            rel = display_name(os.path.relpath(path, root))
            why = _refused(path, root)
            if why and path.is_dir() and path.is_symlink():
                why = why.replace("symbolic link", "symbolic link to a folder")
            skipped.append(Skipped(rel, why or "symbolic link, not followed"))
    return sorted(out)


class HardwareGpus(dict):
    """hardware id -> GPU model token (what :func:`gpu_tokens` returns), with ``devices``: hardware id ->
    the catalog entry's GPU count (1 for a GPU, 8 for an HGX node). A plain dict of tokens works too
    (no count check then)."""

    def __init__(self, tokens: dict[str, str] | None = None, devices: dict[str, int] | None = None) -> None:
        super().__init__(tokens or {})
        self.devices: dict[str, int] = dict(devices or {})


def gpu_tokens(catalog: dict[str, Any]) -> HardwareGpus:
    """hardware id -> GPU model token (A100, H100, H200) for the GPUs and GPU nodes of a hardware catalog
    (a node takes its ``device``'s token), with each one's ``devices`` count: what :func:`gpu_mismatch`
    compares."""
    by_id = {h["id"]: h for h in catalog["hardware"]}
    out = HardwareGpus()
    for hid, h in by_id.items():
        entry = by_id.get(h.get("device"), h) if h.get("kind") == "gpu-node" else h
        found = re.search(r"\b([A-Z]\d{2,3})\b", entry.get("name", "")) if entry.get("kind") == "gpu" else None
        if found:
            out[hid] = found.group(1)
            out.devices[hid] = int(h["devices"])
    return out


#: case parameters that say how many GPUs a case ran on (groundtruth's multi suite: ``ranks`` and ``npus``;
#: NeuSight's configurations: ``gpus``), in the order they are read
GPU_COUNT_PARAMETERS = ("ranks", "npus", "gpus")


def case_gpus(case: dict[str, Any]) -> tuple[int, str] | None:
    """(GPU count, parameter name) from a case's parameters, or None when it states none."""
    params = case.get("parameters") or {}
    for name in GPU_COUNT_PARAMETERS:
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, name
    return None


def gpu_count_mismatch(doc: dict[str, Any], devices: dict[str, int] | None) -> str | None:
    """Why a measured document's ok cases are filed under a hardware id with another GPU count, or None.

    A case's GPU count is its ``ranks``/``npus``/``gpus`` parameter, else the document's
    ``environment.gpu.count`` (the GPUs the run used). It must equal the catalog entry's ``devices``,
    with one exception: a case on fewer GPUs of a node whose every GPU the run had
    (``environment.gpu.count`` >= ``devices``: 2 of the 8 GPUs of an HGX node, filed under the node
    with the count in the key, as the simulators file their predictions). A 2-GPU host's measurement
    under an 8-GPU id is refused, as is a 2-GPU case under a 1-GPU id."""
    if not devices or doc.get("tool", {}).get("backend") != "measured":
        return None
    env_count = ((doc.get("environment") or {}).get("gpu") or {}).get("count")
    env_count = env_count if isinstance(env_count, int) and not isinstance(env_count, bool) else None
    for case in doc["cases"]:
        want = devices.get(case["hardware"])
        if want is None or case.get("status") != "ok":  # a case that measured nothing (failed, unavailable) is not counted
            continue
        stated = case_gpus(case)
        if stated is None:
            if env_count is not None and env_count != want:
                return (f"case {case['id']}: ran with {env_count} GPU(s) (environment.gpu.count), "
                        f"but hardware {case['hardware']} has {want}")
            continue
        count, name = stated
        whole_node = count < want and env_count is not None and env_count >= want
        if count != want and not whole_node:
            run = f", the run {env_count} (environment.gpu.count)" if env_count is not None else ""
            return f"case {case['id']}: ran on {count} GPU(s) (parameter {name}{run}), but hardware {case['hardware']} has {want}"
    return None


def gpu_mismatch(doc: dict[str, Any], hardware_gpus: dict[str, str] | None) -> str | None:
    """Why a measured document is filed under the wrong GPU, or None.

    ``hardware_gpus`` maps hardware id -> a GPU model token (``H100``, ``H200``, ``A100``); a
    measurement whose case hardware has a token that the document's ``environment.gpu.name``
    lacks, or a different known token, is a mislabel. When it carries ``devices``
    (:class:`HardwareGpus`, as :func:`gpu_tokens` returns), a case whose GPU count differs from its
    hardware id's is one too (:func:`gpu_count_mismatch`)."""
    if not hardware_gpus or doc.get("tool", {}).get("backend") != "measured":
        return None
    gpu = ((doc.get("environment") or {}).get("gpu") or {}).get("name") or ""
    if not gpu:  # no GPU recorded (a CPU measurement, or an old document): nothing to compare with
        return None
    for case in doc["cases"]:
        token = hardware_gpus.get(case["hardware"])
        if token and token.lower() not in gpu.lower():
            return f"case {case['id']}: hardware {case['hardware']} is a {token}, but the document was measured on {gpu or 'no GPU'}"
    return gpu_count_mismatch(doc, getattr(hardware_gpus, "devices", None))


def read_tool_run(path: Path, root: Path, *, hardware_gpus: dict[str, str] | None = None,
                  seen: dict[str, str] | None = None) -> tuple[str, dict[str, Any] | None, str | None, list[Skipped]]:
    """One document, checked as :func:`iter_tool_runs` checks it: (relative path, document or None,
    sha256 or None, what was skipped). The document is None when it is skipped; ``seen`` (sha256 ->
    relative path of a document already taken) skips an identical copy before it is parsed."""
    from . import SchemaError, check_header, validate

    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    why = _refused(path, root)
    if why:  # a path given by the caller gets the same checks as a found one
        return rel, None, None, [Skipped(display_name(rel), why)]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return rel, None, None, [Skipped(rel, f"cannot read: {exc.strerror or exc}")]
    digest = hashlib.sha256(raw).hexdigest()
    if seen is not None and digest in seen:
        return rel, None, digest, [Skipped(rel, f"identical to {seen[digest]}")]
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        what = "not UTF-8 text" if "utf-8" in str(exc).lower() or "surrogate" in str(exc).lower() else "not valid JSON"
        return rel, None, digest, [Skipped(rel, f"{what}: {exc.msg}")]
    del raw
    try:
        check_header(doc, TOOL_RUN, TOOL_RUN_MAJOR, rel)
        validate(doc, TOOL_RUN, TOOL_RUN_MAJOR, rel)
    except SchemaError as exc:
        return rel, None, digest, [Skipped(rel, str(exc).removeprefix(f"{rel}: "))]
    why = gpu_mismatch(doc, hardware_gpus)
    if why:
        return rel, None, digest, [Skipped(rel, f"hardware mislabel: {why}")]
    notes: list[Skipped] = []
    _dedupe_case_ids(doc, rel, notes)
    return rel, doc, digest, notes


def iter_tool_runs(evaluation_dir: str | os.PathLike[str], skipped: list[Skipped], *,
                   hardware_gpus: dict[str, str] | None = None,
                   paths: list[Path] | None = None) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield (relative path, document, sha256) one at a time, appending what is skipped to ``skipped``:
    a consumer can reduce each document and let it go (large evaluation folders)."""
    root = Path(evaluation_dir)
    seen: dict[str, str] = {}
    if paths is None:
        paths = find(root, skipped)
    for path in paths:
        rel, doc, digest, notes = read_tool_run(path, root, hardware_gpus=hardware_gpus, seen=seen)
        skipped.extend(notes)
        if doc is None:
            continue
        seen[digest] = rel
        yield rel, doc, digest


#: below this many bytes of documents, :func:`map_tool_runs` reads in this process (starting workers costs more)
PARALLEL_MIN_BYTES = 64 << 20


def _read_and_reduce(path: Path, root: Path, hardware_gpus: dict[str, str] | None, reduce: Callable[[str, dict[str, Any], str], Any]):
    rel, doc, digest, notes = read_tool_run(path, root, hardware_gpus=hardware_gpus)
    return rel, digest, notes, None if doc is None else reduce(rel, doc, digest), doc is not None


def map_tool_runs(evaluation_dir: str | os.PathLike[str], skipped: list[Skipped], reduce: Callable[[str, dict[str, Any], str], Any], *,
                  hardware_gpus: dict[str, str] | None = None, paths: list[Path] | None = None, jobs: int = 1,
                  min_bytes: int | None = None) -> Iterator[tuple[str, str, Any]]:
    """:func:`iter_tool_runs` with each document reduced by ``reduce(rel, document, sha256)``: yield
    (relative path, sha256, what ``reduce`` returned), in path order, appending what is skipped to
    ``skipped`` in path order — the same results and the same skipped list whatever ``jobs`` is.

    With ``jobs`` > 1 and at least ``min_bytes`` (default :data:`PARALLEL_MIN_BYTES`) of documents, up to ``jobs`` worker processes
    (started fresh: ``spawn``) read, validate and reduce documents, a few ahead of the one being
    yielded, so each holds one document at a time; ``reduce`` must be a module-level function (or
    a ``functools.partial`` of one) whose result pickles. An identical copy of an earlier document
    is still skipped as identical to it."""
    root = Path(evaluation_dir)
    if paths is None:
        paths = find(root, skipped)
    if min_bytes is None:
        min_bytes = PARALLEL_MIN_BYTES
    if jobs > 1 and len(paths) > 1:
        total = 0
        for path in paths:
            try:
                total += path.lstat().st_size
            except OSError:
                pass
        if total < min_bytes:
            jobs = 1
    if jobs <= 1 or len(paths) < 2:
        for rel, doc, digest in iter_tool_runs(root, skipped, hardware_gpus=hardware_gpus, paths=paths):
            yield rel, digest, reduce(rel, doc, digest)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    seen: dict[str, str] = {}
    todo = iter(paths)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=multiprocessing.get_context("spawn")) as pool:
        window: deque = deque()

        def submit() -> None:
            path = next(todo, None)
            if path is not None:
                window.append(pool.submit(_read_and_reduce, path, root, hardware_gpus, reduce))

        for _ in range(2 * jobs):
            submit()
        while window:
            rel, digest, notes, result, ok = window.popleft().result()
            submit()
            if ok and digest in seen:  # as iter_tool_runs: an identical copy of a document already taken
                skipped.append(Skipped(rel, f"identical to {seen[digest]}"))
                continue
            skipped.extend(notes)
            if ok:
                seen[digest] = rel
                yield rel, digest, result


def _dedupe_case_ids(doc: dict[str, Any], rel: str, skipped: list[Skipped]) -> None:
    cases = doc["cases"]
    if len({c["id"] for c in cases}) == len(cases):
        return
    ids: set[str] = set()
    kept = []
    dropped = 0
    for case in cases:
        if case["id"] in ids:
            dropped += 1
            continue
        ids.add(case["id"])
        kept.append(case)
    if dropped:
        doc["cases"] = kept
        skipped.append(Skipped(rel, f"{dropped} repeated case id(s) dropped (first kept)"))
