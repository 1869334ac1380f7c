"""Run a runner's independent cases: in a process pool (``--jobs``), one deterministic slice of
them (``--shard K/N``), checkpointed so an interrupted run resumes (``--resume``), with a
progress bar on stderr and SIGINT/SIGTERM cleaning up (temp folders, the tools' process groups).

    results = run_cases(units, run_one, jobs=2, label="zigzag", ident=lambda u: u.id,
                        checkpoint=Checkpoint(output, name, plan_digest(units), resume=True))

``run_one`` must be a module-level function (it is sent to worker processes) returning a JSON
value (a case dict or a list of them). Results come back in the order of ``units`` whatever
``jobs`` is, so the document is identical for any ``--jobs`` and for a resumed run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .proc import kill_active

T = TypeVar("T")


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so every ``finally`` and temp folder cleans up."""


def _raise_interrupted(signum: int, _frame: Any) -> None:
    kill_active()
    raise Interrupted(f"received {signal.Signals(signum).name}")


@contextmanager
def handle_signals() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Interrupted`; on SIGINT/SIGTERM the tools' process groups are killed."""
    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    except KeyboardInterrupt:
        kill_active()
        raise
    finally:
        signal.signal(signal.SIGTERM, old)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 1 <= K <= N; ValueError with one line otherwise."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard: got {text!r}, expected K/N with 1 <= K <= N, e.g. 1/4")
    return int(k), int(n)


def select_shard(items: Sequence[T], shard: tuple[int, int] | None) -> list[T]:
    """Slice K of N: the items at positions K-1, K-1+N, ... of the planned order (deterministic)."""
    if shard is None or shard[1] == 1:
        return list(items)
    k, n = shard
    return [item for i, item in enumerate(items) if i % n == k - 1]


def plan_digest(plan: Any) -> str:
    """sha256 of a JSON plan: a checkpoint resumes only the plan it was written for."""
    return hashlib.sha256(orjson.dumps(plan, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


class Checkpoint:
    """``OUTPUT/.NAME.progress.jsonl``: one line per finished unit, flushed as it finishes.

    ``resume=True`` takes the finished units of a previous run of the same plan; otherwise an
    old progress file is replaced. :meth:`finish` removes it once the document is written."""

    def __init__(self, output: str | os.PathLike[str], name: str, digest: str, *, resume: bool = False) -> None:
        self.path = Path(output) / f".{name}.progress.jsonl"
        self.digest = digest
        self.done: dict[str, Any] = {}
        self.stale = 0
        if resume and self.path.exists():
            self._load()
        self._handle = None

    def _load(self) -> None:
        lines = self.path.read_bytes().splitlines()
        if not lines:
            return
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            return
        if header.get("plan") != self.digest:
            self.stale = len(lines) - 1
            return
        for line in lines[1:]:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:  # the line being written when the run was killed
                continue
            self.done[entry["id"]] = entry["result"]

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "wb")
        self._handle.write(orjson.dumps({"plan": self.digest}) + b"\n")
        for ident, result in self.done.items():
            self._handle.write(orjson.dumps({"id": ident, "result": result}) + b"\n")
        self._handle.flush()

    def record(self, ident: str, result: Any) -> None:
        if self._handle is None:
            self.open()
        assert self._handle is not None
        self._handle.write(orjson.dumps({"id": ident, "result": result}) + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done[ident] = result

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _worker_init() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it terminates workers on Ctrl-C


def _progress(label: str, total: int):
    import click

    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)


def run_cases(units: Sequence[T], fn: Callable[[T], Any], *, jobs: int = 1, label: str = "cases",
              ident: Callable[[T], str] = str, checkpoint: Checkpoint | None = None,
              context: str = "forkserver") -> list[Any]:
    """``[fn(u) for u in units]`` with ``jobs`` worker processes, checkpointing and a progress bar."""
    ids = [ident(u) for u in units]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"two units share the id {dup!r}; each unit needs its own")
    results: dict[str, Any] = {}
    if checkpoint is not None:
        results.update({i: checkpoint.done[i] for i in ids if i in checkpoint.done})
        checkpoint.open()
    todo = [(i, u) for i, u in zip(ids, units) if i not in results]
    with handle_signals(), _progress(label, len(units)) as bar:
        bar.update(len(units) - len(todo))
        try:
            if jobs <= 1 or len(todo) <= 1:
                for i, u in todo:
                    results[i] = fn(u)
                    if checkpoint is not None:
                        checkpoint.record(i, results[i])
                    bar.update(1)
            else:
                _run_pool(todo, fn, jobs, results, checkpoint, bar, context)
        finally:
            if checkpoint is not None:
                checkpoint.close()
    return [results[i] for i in ids]


def _run_pool(todo, fn, jobs, results, checkpoint, bar, context) -> None:
    ctx = multiprocessing.get_context(context)
    pool = cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init)
    try:
        futures = {pool.submit(fn, u): i for i, u in todo}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if checkpoint is not None:
                checkpoint.record(i, results[i])
            bar.update(1)
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # SIGTERM: each worker kills its tool's process group, then exits
            p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        raise
    pool.shutdown(wait=True)
