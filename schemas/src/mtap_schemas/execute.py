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
import fcntl
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .paths import printable
from .proc import kill_active

T = TypeVar("T")


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so every ``finally`` and temp folder cleans up."""


def _raise_interrupted(signum: int, _frame: Any) -> None:
    kill_active()
    raise Interrupted(f"received {signal.Signals(signum).name}")


#: in a worker process: whether a unit is running now, and whether a stop was asked for
_BUSY = False
_STOPPING = False


def _worker_signal(signum: int, _frame: Any) -> None:
    """A worker's SIGTERM: kill its tools' process groups; unwind the running unit (its ``finally``
    blocks remove temp folders), or leave at once when idle — quietly, exit 130, never a traceback."""
    global _STOPPING
    _STOPPING = True
    kill_active()
    if _BUSY:
        raise Interrupted(f"received {signal.Signals(signum).name}")
    os._exit(130)


def _call(fn: Callable[[T], Any], unit: T) -> Any:
    """What a worker runs for one unit: never starts after a stop, and exits once the unit has unwound."""
    global _BUSY
    if _STOPPING:
        os._exit(130)
    _BUSY = True
    try:
        return fn(unit)
    finally:
        _BUSY = False
        if _STOPPING:  # the unit was interrupted: its clean-up ran; don't take the next queued one
            kill_active()
            os._exit(130)


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


#: lock files this process holds (real path -> [descriptor, holders])
_HELD: dict[str, list[int]] = {}


class CheckpointError(OSError):
    """The progress file cannot be kept (disk full, file-size limit, …); ``str()`` is one line."""


class CheckpointBusy(CheckpointError):
    """Another live run holds this document's progress file; ``str()`` is one line."""


class Checkpoint:
    """``OUTPUT/.NAME.progress.jsonl``: one line per finished unit, flushed as it finishes.

    ``resume=True`` takes the finished units of a previous run of the same plan; otherwise an
    old progress file is replaced. :meth:`finish` removes it once the document is written.
    A run holds ``OUTPUT/.NAME.lock`` (``flock``) from here until :meth:`finish` (which removes it)
    or the end of the process, so a second run into the same output and name is refused at once
    instead of clobbering the progress.
    Lines that are not a finished unit (a list, a bare number, an entry without ``id`` or
    ``result``, the line being written when the run was killed) are skipped and counted."""

    def __init__(self, output: str | os.PathLike[str], name: str, digest: str, *, resume: bool = False) -> None:
        self.path = Path(output) / f".{name}.progress.jsonl"
        self.digest = digest
        self.done: dict[str, Any] = {}
        self.stale = 0
        self.skipped = 0
        self._lock = self._take_lock(Path(output) / f".{name}.lock")
        if resume and self.path.exists():
            self._load()
        self._handle = None

    @staticmethod
    def _take_lock(path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(path)
        if key in _HELD:  # this process already runs into it (a library caller running twice): the lock is ours
            _HELD[key][1] += 1
            return _HELD[key][0]
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise CheckpointBusy(f"{printable(str(path.parent))}: another run (pid {holder}) is writing {path.name.removesuffix('.lock')[1:]}"
                                 f" here; wait for it, or give this run another --output or --name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = [fd, 1]
        return fd

    def _release(self) -> None:
        if self._lock is not None:
            for key, held in list(_HELD.items()):
                if held[0] == self._lock:
                    held[1] -= 1
                    if held[1] == 0:
                        del _HELD[key]
                        try:  # the document is written: leave no lock file behind (a run that died leaves one,
                            os.unlink(key)  # harmless: the lock went with its process)
                        except OSError:
                            pass
                        os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = None

    def _load(self) -> None:
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return
        if not lines:
            return
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or "plan" not in header:
            self.skipped = len(lines)
            return
        if header.get("plan") != self.digest:
            self.stale = len(lines) - 1
            return
        for line in lines[1:]:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:  # e.g. the line being written when the run was killed
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or "result" not in entry:
                self.skipped += 1
                continue
            self.done[entry["id"]] = entry["result"]
        if self.skipped:
            sys.stderr.write(f"{self.path}: {self.skipped} line(s) are not finished units and were skipped; "
                             f"{len(self.done)} finished unit(s) resumed\n")

    def _failed(self, exc: OSError) -> CheckpointError:
        return CheckpointError(f"{printable(str(self.path))}: cannot keep the run's progress: {exc.strerror or exc}")

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "wb")
            self._handle.write(orjson.dumps({"plan": self.digest}) + b"\n")
            for ident, result in self.done.items():
                self._handle.write(orjson.dumps({"id": ident, "result": result}) + b"\n")
            self._handle.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def record(self, ident: str, result: Any) -> None:
        if self._handle is None:
            self.open()
        assert self._handle is not None
        try:
            self._handle.write(orjson.dumps({"id": ident, "result": result}) + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise self._failed(exc) from None
        self.done[ident] = result

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:  # the write that failed already said why
                pass

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self._release()


def _worker_init(runner_pid: int) -> None:
    signal.signal(signal.SIGTERM, _worker_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it terminates workers on Ctrl-C
    threading.Thread(target=_watch_runner, args=(runner_pid,), name="mtap-watch-runner", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_runner(runner_pid: int, every: float = 0.5) -> None:
    """A worker outlives no runner: when the runner is gone (``kill -9``), SIGTERM this worker, so
    its tools' process groups are killed and its unit's temp folders removed within a second."""
    while _alive(runner_pid):
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGTERM)


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
    pool = cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_call, fn, u): i for i, u in todo}
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
