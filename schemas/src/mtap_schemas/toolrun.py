"""The one way to build a tool-run document: a :class:`ToolRun` builder and typed case constructors.

    run = ToolRun("zigzag-runner", __version__, Tool("zigzag", "3.9.1", "native", "zigzag-dse==3.9.1 (PyPI)"),
                  config=config_path, packages={...})
    case = ok("W1:resnet50:conv1", workload="W1", hardware="Eyeriss-like", key="resnet50.conv1.b1.int16",
              parameters={...}, metrics=[metric("cycles", 1204224, "cycles", "prediction", timing="simulated")])
    doc = run.document([case, ...])

Every constructor checks its values: a metric that is non-finite, negative where its unit cannot
be, or not a number turns :func:`ok` into a ``failed`` case of kind ``invalid-value`` naming the
metric, instead of a crash or a silently odd number.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import kinds
from .paths import portable_argv, relative_to_repo

TOOL_RUN = "tool-run"
#: the tool-run major version every runner writes and every consumer reads
TOOL_RUN_MAJOR = 2

#: units whose values cannot be negative
NONNEGATIVE_UNITS = frozenset({"s", "ms", "us", "ns", "cycles", "count", "B", "B/s", "FLOP", "FLOP/s", "J", "mJ", "uJ",
                               "nJ", "pJ", "pJ/MAC", "W", "mW", "req/s", "tok/s"})
BACKENDS = ("native", "docker", "artifact", "measured", "replayed")
METRIC_KINDS = ("prediction", "measurement", "derived")
TIMINGS = ("device", "eager-end-to-end", "simulated", "reported")


class InvalidValue(ValueError):
    """A metric value the metric cannot take; ``str()`` names the metric and the value."""


def utc_now() -> str:
    """UTC, seconds, with a Z: the one timestamp format of every document."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric(name: str, value: Any, unit: str, kind: str, *, timing: str | None = None,
           source: str | None = None) -> dict[str, Any]:
    """One metric; raises :class:`InvalidValue` for a value it cannot take."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"metric {name}: got {type(value).__name__} {value!r:.40}, expected a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite:
        raise InvalidValue(f"metric {name}: got {value!r:.40}, expected a finite number")
    if unit in NONNEGATIVE_UNITS and value < 0:
        raise InvalidValue(f"metric {name}: got {value!r} {unit}, which cannot be negative")
    if kind not in METRIC_KINDS:
        raise ValueError(f"metric {name}: kind {kind!r} is not one of {METRIC_KINDS}")
    if timing is not None and timing not in TIMINGS:
        raise ValueError(f"metric {name}: timing {timing!r} is not one of {TIMINGS}")
    out: dict[str, Any] = {"name": name, "value": value, "unit": unit, "kind": kind}
    if timing is not None:
        out["timing"] = timing
    if source is not None:
        out["source"] = source
    return out


def ratio(numerator: float, denominator: float, what: str) -> float:
    """numerator / denominator, or :class:`InvalidValue` naming ``what`` for a zero or non-finite divisor."""
    if not denominator or not math.isfinite(denominator):
        raise InvalidValue(f"{what}: divisor is {denominator!r}")
    return numerator / denominator


def latency_from_cycles(cycles: float, clock_hz: float | None) -> list[dict[str, Any]]:
    """``[latency]`` (s, derived) of simulated ``cycles`` at the hardware catalog's ``clock_hz``, or ``[]``
    where the catalog has no clock: the metric list entry of the cycle-level runners."""
    if not clock_hz:
        return []
    return [metric("latency", cycles / clock_hz, "s", "derived", timing="simulated",
                   source=f"cycles / clock_hz of the hardware catalog ({clock_hz:g} Hz)")]


def independence(cls: str, what: str, tools: Sequence[str] = ()) -> dict[str, Any]:
    """A case's ``independence`` (tool-run 2.2): ``cls`` from :data:`kinds.REFERENCE_CLASSES` other than
    ``independent``, ``what`` names what the case depends on (a profile, microbenchmark, operator set),
    ``tools`` the tools a reference is not independent of (empty: any tool scored against it).

        ok(..., independence=independence("calibrated-separately", "launch floor measured on this H200 (groundtruth/h200-floor)"))
        ok(..., independence=independence("shared-operators", "VIDUR's profiled operators, in VIDUR's batches", ["vidur"]))
    """
    if cls not in kinds.REFERENCE_CLASSES or cls == "independent":
        raise ValueError(f"independence class {cls!r} is not one of {[c for c in kinds.REFERENCE_CLASSES if c != 'independent']}")
    if not str(what).strip():
        raise ValueError("independence: what the case depends on must be named")
    out: dict[str, Any] = {"class": cls, "what": " ".join(str(what).split())}
    if tools:
        out["tools"] = sorted(set(tools))
    return out


def _case(case_id: str, status: str, workload: str, hardware: str, key: str | None, parameters: Mapping[str, Any] | None,
          error: dict[str, str] | None, metrics: Sequence[dict[str, Any]], artifacts: Iterable[dict[str, str]],
          independence: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case_id, "workload": workload, "hardware": hardware,
        "parameters": dict(parameters or {}), "status": status, "error": error,
        "metrics": list(metrics), "artifacts": list(artifacts),
    }
    if key is not None:
        out["key"] = key
    if independence is not None:
        out["independence"] = independence
    return out


def ok(case_id: str, *, workload: str, hardware: str, metrics: Sequence[dict[str, Any]], key: str | None = None,
       parameters: Mapping[str, Any] | None = None, artifacts: Iterable[dict[str, str]] = (),
       independence: dict[str, Any] | None = None) -> dict[str, Any]:
    """A case with metrics. Metrics built with :func:`metric` are re-checked here (a dict written by hand
    is checked the same way); an invalid one makes the case ``failed``/``invalid-value``. ``independence``
    (from :func:`independence`) says what the case is not independent of."""
    checked = []
    try:
        for m in metrics:
            checked.append(metric(m["name"], m["value"], m["unit"], m["kind"], timing=m.get("timing"), source=m.get("source")))
    except InvalidValue as exc:
        return failed(case_id, workload=workload, hardware=hardware, key=key, parameters=parameters,
                      kind="invalid-value", message=str(exc), artifacts=artifacts)
    if not checked:
        return failed(case_id, workload=workload, hardware=hardware, key=key, parameters=parameters,
                      kind="parse-failed", message="the tool's output gave no metric for this case", artifacts=artifacts)
    return _case(case_id, kinds.OK, workload, hardware, key, parameters, None, checked, artifacts, independence)


def _not_ok(status: str, case_id: str, workload: str, hardware: str, key: str | None, parameters: Mapping[str, Any] | None,
            kind: str, message: str, artifacts: Iterable[dict[str, str]], metrics: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    if kind not in kinds.ERROR_KINDS:
        raise ValueError(f"error kind {kind!r} is not in mtap_schemas.kinds.ERROR_KINDS")
    message = " ".join(str(message).split()) or kind
    return _case(case_id, status, workload, hardware, key, parameters, {"kind": kind, "message": message[:2000]}, metrics, artifacts)


def failed(case_id: str, *, workload: str, hardware: str, kind: str, message: str, key: str | None = None,
           parameters: Mapping[str, Any] | None = None, artifacts: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
    """The tool ran and broke on this case; ``kind`` from :data:`kinds.ERROR_KINDS`, ``message`` names why."""
    return _not_ok(kinds.FAILED, case_id, workload, hardware, key, parameters, kind, message, artifacts)


def unavailable(case_id: str, *, workload: str, hardware: str, kind: str, message: str, key: str | None = None,
                parameters: Mapping[str, Any] | None = None, artifacts: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
    """The tool, its data or its predictor is not here; ``message`` says how to provide it."""
    return _not_ok(kinds.UNAVAILABLE, case_id, workload, hardware, key, parameters, kind, message, artifacts)


def unsupported(case_id: str, *, workload: str, hardware: str, kind: str, message: str, key: str | None = None,
                parameters: Mapping[str, Any] | None = None, artifacts: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
    """The tool cannot express this case; ``message`` says what is missing."""
    return _not_ok(kinds.UNSUPPORTED, case_id, workload, hardware, key, parameters, kind, message, artifacts)


def from_error(case_id: str, *, workload: str, hardware: str, kind: str, message: str, **rest: Any) -> dict[str, Any]:
    """A non-ok case whose status follows from its error kind (:data:`kinds.ERROR_KINDS`)."""
    status = kinds.status_of_kind(kind)
    return _not_ok(status, case_id, workload, hardware, rest.get("key"), rest.get("parameters"), kind, message,
                   rest.get("artifacts", ()))


def artifact(path: str | os.PathLike[str], *, name: str | None = None) -> dict[str, str]:
    """A file_ref for a raw file a case was parsed from: ``name`` (or the repository-relative path) + sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": name or relative_to_repo(path), "sha256": digest.hexdigest()}


def location_of(path: str | os.PathLike[str], version: str | None = None) -> str:
    """How a tool location is recorded: inside the repository its relative path; outside it what
    it is — ``NAME (sha256 HEX)`` for a file, ``NAME VERSION`` for a folder — never a machine path."""
    p = Path(path)
    rel = relative_to_repo(p, external=None)
    if rel is not None:
        return rel
    if p.is_file():
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        return f"{p.name} (sha256 {digest})"
    return f"{p.name} {version}" if version else f"{p.name} (outside the repository)"


@dataclass(frozen=True)
class Tool:
    name: str
    version: str | None
    backend: str
    location: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"tool backend {self.backend!r} is not one of {BACKENDS}")


class ToolRun:
    """Collects what a tool-run document says about the run; :meth:`document` assembles it.

    The start time is taken when the builder is made; :meth:`setup_done` marks the end of setup
    (tool lookup, catalog reads), the document's assembly the end of the run.
    """

    def __init__(self, runner: str, runner_version: str, tool: Tool, *, argv: Sequence[str] | None = None,
                 prog: str | None = None, config: str | os.PathLike[str] | None = None,
                 packages: Mapping[str, str] | None = None, gpu: dict[str, Any] | None = None,
                 environment: dict[str, Any] | None = None) -> None:
        self.runner, self.runner_version, self.tool = runner, runner_version, tool
        self.started_at = utc_now()
        self._t0 = time.monotonic()
        self._t_setup: float | None = None
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.prog = prog or runner
        self.config = Path(config) if config is not None else None
        self.packages = dict(packages or {})
        self.gpu = gpu
        self._environment = environment

    def setup_done(self) -> None:
        self._t_setup = time.monotonic()

    def with_tool(self, tool: Tool) -> None:
        self.tool = tool

    def document(self, cases: Sequence[dict[str, Any]], *, shard: tuple[int, int] | None = None) -> dict[str, Any]:
        from . import environment as _environment
        from . import version

        now = time.monotonic()
        setup_end = self._t_setup if self._t_setup is not None else self._t0
        invocation: dict[str, Any] = {
            "command": [self.prog, *portable_argv(self.argv)],
            "config": None if self.config is None else {"path": relative_to_repo(self.config), "sha256": _sha(self.config)},
        }
        if shard is not None and shard[1] > 1:
            invocation["shard"] = {"index": shard[0], "count": shard[1]}
        tool = {"name": self.tool.name, "version": self.tool.version, "backend": self.tool.backend,
                "location": self.tool.location}
        return {
            "schema": TOOL_RUN,
            "schema_version": version(TOOL_RUN, TOOL_RUN_MAJOR),
            "runner": {"name": self.runner, "version": self.runner_version},
            "tool": tool,
            "environment": self._environment or _environment(gpu=self.gpu, packages={self.runner: self.runner_version, **self.packages}),
            "invocation": invocation,
            "wall_clock": {"started_at": self.started_at, "setup_seconds": round(setup_end - self._t0, 3),
                           "run_seconds": round(now - setup_end, 3)},
            "cases": list(cases),
        }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count_status(cases: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    return counts
