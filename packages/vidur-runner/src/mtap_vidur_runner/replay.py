"""VIDUR's batches, replayed: the batch plan for the GPU, and VIDUR's timeline with measured batch times.

Three steps, each through a versioned document:

1. ``vidur-runner batches DOC...`` reads the batches VIDUR formed (``batch_composition.csv``, kept
   per case with ``--keep-raw``) and writes a ``batch-plan`` v1 document: the distinct
   compositions the GPU replay must measure.
2. ``groundtruth run --suite replay --plan PLAN`` times each composition on the GPU.
3. ``vidur-runner replay DOC... --measured GT`` pairs VIDUR's predicted time of every batch with
   the measured time of its composition, and re-runs each case's timeline with the measured
   times in place of VIDUR's (the scheduler's decisions held fixed: the same batches in the same
   order), giving request latencies to compare with VIDUR's own.

A composition is what the replay's kernels depend on: each prefill request's query tokens and
KV tokens (tokens processed before this batch plus its query), and the decode requests' count
and longest KV (the replay's decode attention runs over K/V padded to the longest; VIDUR's
predictor is given their mean). The KV of every request is recomputed from the tokens it had
processed, so a request vidur 0.0.26's orca scheduler gives no KV entry (its newly admitted
requests) is replayed with its real attention.

The timeline: batch ``i`` starts when batch ``i-1`` has ended and every request in it has
arrived, and ends after its time; a request's first token is at the end of the batch that
completes its prefill, its last at the end of the last batch that holds it. With VIDUR's own
predicted times this reproduces VIDUR's request metrics (tested), so the difference between the
two timelines is the batch times alone.
"""

from __future__ import annotations

import csv
import io
import lzma
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import parse as parse_mod


class ReplayError(Exception):
    """A user error: a file or field that is missing or malformed (one line naming it)."""


@dataclass
class Row:
    request: int
    q: int
    processed: int
    is_prefill: bool
    prefill_tokens: int
    arrived: float

    @property
    def kv(self) -> int:
        return self.processed + self.q


@dataclass
class Batch:
    id: int
    rows: list[Row] = field(default_factory=list)
    predicted_s: float = 0.0
    size: int = 0
    tokens: int = 0

    @cached_property
    def composition(self) -> tuple[tuple[tuple[int, int], ...], tuple[int, int]]:
        """What the replay's kernels depend on: (query, KV) per prefill row, sorted; (decode count, longest KV).
        Read once the batch is complete (after :func:`read_batches`)."""
        dec = [r.kv for r in self.rows if not r.is_prefill]
        return tuple(sorted((r.q, r.kv) for r in self.rows if r.is_prefill)), ((len(dec), max(dec)) if dec else (0, 0))

    @cached_property
    def key(self) -> str:
        """The composition as text: p<q>x<kv> per prefill row, then d<count>x<longest kv>, joined by -."""
        pre, (n, kv) = self.composition
        return "-".join([f"p{q}x{k}" for q, k in pre] + ([f"d{n}x{kv}"] if n else []))

    @cached_property
    def decode_groups(self) -> tuple[tuple[int, int], ...]:
        """The decode requests as (count, KV) per distinct KV, by KV: each request's own length."""
        counts: dict[int, int] = {}
        for r in self.rows:
            if not r.is_prefill:
                counts[r.kv] = counts.get(r.kv, 0) + 1
        return tuple((n, kv) for kv, n in sorted(counts.items()))

    @cached_property
    def exact_key(self) -> str:
        """The batch-plan v2 key: prefill parts as :attr:`key`, then ``d<count>x<kv>`` per distinct decode KV.
        Equal to :attr:`key` when every decode request has the same KV (what a v1 replay ran exactly)."""
        pre, _ = self.composition
        return "-".join([f"p{q}x{k}" for q, k in pre] + [f"d{n}x{kv}" for n, kv in self.decode_groups])

    @property
    def padded(self) -> bool:
        """A v1 replay ran this batch's decode attention over K/V padded to the longest: not VIDUR's computation."""
        return len(self.decode_groups) > 1

    @property
    def mix(self) -> str:
        pre = any(r.is_prefill for r in self.rows)
        dec = any(not r.is_prefill for r in self.rows)
        return "mixed" if pre and dec else "prefill" if pre else "decode"


#: the largest CSV a kept artifact may decompress to (the committed ones are under 1 MB): a larger one is refused
MAX_CSV_BYTES = 256 << 20


def _read_xz_csv(path: Path) -> list[dict[str, str]]:
    from mtap_schemas.paths import PathError, read_lzma_bounded

    try:
        data = read_lzma_bounded(path, MAX_CSV_BYTES) if path.suffix == ".xz" else path.read_bytes()
        if len(data) > MAX_CSV_BYTES:
            raise PathError(f"{path}: larger than {MAX_CSV_BYTES} bytes, refused")
        text = data.decode("utf-8")
    except PathError as exc:
        raise ReplayError(str(exc)) from None
    except (OSError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from None
    return list(csv.DictReader(io.StringIO(text)))


def _int(row: dict[str, str], col: str, path: Path) -> int:
    try:
        return int(float(row[col]))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ReplayError(f"{path}: column {col!r} missing or not a number (row {row})") from None


def _float(row: dict[str, str], col: str, path: Path) -> float:
    try:
        v = float(row[col])
    except (KeyError, TypeError, ValueError):
        raise ReplayError(f"{path}: column {col!r} missing or not a number") from None
    if not math.isfinite(v) or v < 0:
        raise ReplayError(f"{path}: column {col!r}: {v} is not a finite time >= 0")
    return v


def read_batches(composition: Path, batch_metrics: Path) -> list[Batch]:
    """The batches of one case, in vidur's order, with VIDUR's predicted time (s) of each."""
    comp_rows = _read_xz_csv(composition)
    if comp_rows and "num_processed_tokens" not in comp_rows[0]:
        raise ReplayError(f"{composition}: no column 'num_processed_tokens' (written by vidur-runner >= 1.2.0; "
                          "re-run the case with --keep-raw)")
    batches: dict[int, Batch] = {}
    for r in comp_rows:
        bid = _int(r, "batch_id", composition)
        batches.setdefault(bid, Batch(bid)).rows.append(Row(
            _int(r, "request_id", composition), _int(r, "num_q_tokens", composition), _int(r, "num_processed_tokens", composition),
            _int(r, "is_prefill", composition) == 1, _int(r, "request_prefill_tokens", composition), _float(r, "arrived_at", composition)))
    for r in _read_xz_csv(batch_metrics):
        bid = _int(r, "Batch Id", batch_metrics)
        if bid not in batches:
            raise ReplayError(f"{batch_metrics}: batch {bid} has no rows in {composition.name}")
        b = batches[bid]
        b.predicted_s = _float(r, "batch_execution_time", batch_metrics)
        b.size, b.tokens = _int(r, "batch_size", batch_metrics), _int(r, "batch_num_tokens", batch_metrics)
        if b.size != len(b.rows) or b.tokens != sum(x.q for x in b.rows):
            raise ReplayError(f"{composition}: batch {bid} has {len(b.rows)} requests / {sum(x.q for x in b.rows)} tokens, "
                              f"{batch_metrics.name} says {b.size} / {b.tokens}")
    missing = [bid for bid, b in batches.items() if b.size == 0]
    if missing:
        raise ReplayError(f"{batch_metrics}: no row for batch {missing[0]} of {composition.name}")
    return [batches[k] for k in sorted(batches)]


@dataclass
class CaseBatches:
    case: dict[str, Any]  # the tool-run case
    batches: list[Batch]
    requests: Path  # request_metrics.csv(.xz)
    sources: list[dict[str, str]]
    vidur_version: str | None  # of the document the case came from


def _artifact(case: dict[str, Any], name: str, root: Path, doc_path: Path | None = None) -> tuple[Path, str]:
    """The artifact ``name`` of a case, inside the repository ``root`` (as figures reads them: no absolute
    path, no ``..`` or link out of it; mtap_schemas.paths.confined)."""
    from mtap_schemas.paths import PathError, confined

    for a in case.get("artifacts") or []:
        if a["path"].rsplit("/", 1)[-1] == name:
            try:
                return confined(root, a["path"], "artifact"), a["sha256"]
            except PathError as exc:
                raise ReplayError(f"{doc_path or 'document'}: case {case['id']}: {exc}") from None
    raise ReplayError(f"case {case['id']}: no artifact {name} (run vidur-runner with --keep-raw)")


def load_cases(docs: Iterable[Path], hardware: str, root: Path) -> list[CaseBatches]:
    """The ok cases of ``hardware`` in the given vidur tool-run documents, with their batches."""
    import mtap_schemas as ms
    from mtap_schemas.paths import relative_to_repo

    out = []
    for path in docs:
        try:
            doc = ms.read_tool_run(path)
        except ms.SchemaError as exc:
            raise ReplayError(str(exc)) from None
        if doc["tool"]["name"] != "vidur":
            raise ReplayError(f"{path}: field tool.name: expected 'vidur', got {doc['tool']['name']!r}")
        for case in doc["cases"]:
            if case["status"] != "ok" or case["hardware"] != hardware:
                continue
            comp, comp_sha = _artifact(case, "batch_composition.csv.xz", root, path)
            bm, bm_sha = _artifact(case, "batch_metrics.csv.xz", root, path)
            req, req_sha = _artifact(case, "request_metrics.csv.xz", root, path)
            for p, sha in ((comp, comp_sha), (bm, bm_sha), (req, req_sha)):
                if not p.is_file():
                    raise ReplayError(f"{path}: case {case['id']}: artifact {p} does not exist")
                if ms.sha256_file(p) != sha:
                    raise ReplayError(f"{p}: sha256 differs from the one {path} records for case {case['id']}")
            sources = [{"path": relative_to_repo(p), "sha256": sha} for p, sha in ((comp, comp_sha), (bm, bm_sha))]
            out.append(CaseBatches(case, read_batches(comp, bm), req, sources, doc["tool"].get("version")))
    if not out:
        raise ReplayError(f"no ok case of {hardware} in {', '.join(str(p) for p in docs)}")
    return out


#: vidur's Llama-2-7B (vidur/config/model_config.py) as the plan's model shape
MODEL = {"name": "meta-llama/Llama-2-7b-hf", "key": "llama2-7b", "layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32,
         "ffn": 11008, "vocab": 32768}


def plan(cases: list[CaseBatches], hardware: str, workload: str = "W5", version: int = 2) -> dict[str, Any]:
    """The batch-plan document (``version`` 2: decode requests grouped by their own KV, the computation VIDUR
    predicts; 1: decode padded to the longest KV): every distinct composition once, grouped by the first case
    that needs it (so a replay cut short by its time budget completes whole cases first) and, within a group,
    in a fixed pseudo-random order (sha256 of the key), so a partial group is a spread sample."""
    import hashlib

    def key_of(b: Batch) -> str:
        return b.exact_key if version == 2 else b.key

    counts: dict[str, int] = {}
    first: dict[str, tuple[int, Batch]] = {}
    for i, cb in enumerate(cases):
        for b in cb.batches:
            k = key_of(b)
            counts[k] = counts.get(k, 0) + 1
            first.setdefault(k, (i, b))
    order = sorted(counts, key=lambda k: (first[k][0], hashlib.sha256(k.encode()).hexdigest()))
    comps = []
    for key in order:
        b = first[key][1]
        pre, dec = b.composition
        decode = [list(g) for g in b.decode_groups] if version == 2 else list(dec)
        comps.append({"key": key, "prefill": [list(p) for p in pre], "decode": decode, "batches": counts[key]})
    sources = [s for cb in cases for s in cb.sources]
    return {"schema": "batch-plan", "schema_version": f"{version}.0.0", "model": dict(MODEL), "hardware": hardware,
            "workload": workload, "sources": sources, "compositions": comps}


# --------------------------------------------------------------------------- the timeline


@dataclass
class Requests:
    """Per request: arrival, prefill completion and completion (s), decode tokens."""

    arrived: dict[int, float]
    first_token: dict[int, float]
    completed: dict[int, float]
    decode_tokens: dict[int, int]

    def series(self) -> dict[str, list[float]]:
        ids = sorted(self.completed)
        missing = [r for r in ids if r not in self.first_token]
        if missing:
            raise ReplayError(f"request {missing[0]} completed without a prefill")
        return {
            "e2e_latency": [self.completed[r] - self.arrived[r] for r in ids],
            "ttft": [self.first_token[r] - self.arrived[r] for r in ids],
            "tpot": [(self.completed[r] - self.first_token[r]) / self.decode_tokens[r] for r in ids if self.decode_tokens[r] > 0],
        }

    @property
    def makespan(self) -> float:
        return max(self.completed.values()) - min(self.arrived.values())


@dataclass
class VidurRequests:
    """What VIDUR's request_metrics.csv says per request: decode tokens, e2e and TTFT (s)."""

    decode_tokens: dict[int, int]
    e2e: dict[int, float]
    ttft: dict[int, float]


def read_requests(request_metrics: Path) -> VidurRequests:
    out = VidurRequests({}, {}, {})
    for r in _read_xz_csv(request_metrics):
        rid = _int(r, "Request Id", request_metrics)
        out.decode_tokens[rid] = _int(r, "request_num_decode_tokens", request_metrics)
        out.e2e[rid] = _float(r, "request_e2e_time", request_metrics)
        out.ttft[rid] = _float(r, "prefill_e2e_time", request_metrics)
    return out


def timeline(batches: list[Batch], times_s: list[float], n_decode: dict[int, int]) -> Requests:
    """Request times when batch ``i`` takes ``times_s[i]`` (same batches, same order)."""
    arrived: dict[int, float] = {}
    first: dict[int, float] = {}
    completed: dict[int, float] = {}
    end = 0.0
    for b, dt in zip(batches, times_s, strict=True):
        start = max([end] + [r.arrived for r in b.rows])
        end = start + dt
        for r in b.rows:
            arrived.setdefault(r.request, r.arrived)
            if r.is_prefill and r.processed + r.q == r.prefill_tokens and r.request not in first:
                first[r.request] = end
            completed[r.request] = end  # the last batch that holds it
    return Requests(arrived, first, completed, {r: n_decode.get(r, 0) for r in completed})


def latency_metrics(req: Requests, kind: str, timing: str) -> list[dict]:
    """TTFT, TPOT and e2e p50/p90/p99/mean and the makespan, as the vidur document names them (s)."""
    from mtap_schemas.toolrun import metric

    out = []
    for stem, vals in req.series().items():
        for p in parse_mod.PERCENTILES:
            out.append(metric(f"{stem}_p{p}", round(parse_mod.percentile(vals, p), 9), "s", kind, timing=timing))
        out.append(metric(f"{stem}_mean", round(sum(vals) / len(vals), 9), "s", kind, timing=timing))
    out.append(metric("makespan", round(req.makespan, 9), "s", kind, timing=timing))
    return out


def cdf(values: list[float], points: int = 101) -> list[float]:
    """``points`` evenly spaced percentiles (0..100) of ``values``."""
    return [parse_mod.percentile(values, 100 * i / (points - 1)) for i in range(points)]
