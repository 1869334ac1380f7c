"""`vidur-runner replay`: VIDUR's batch times and request latencies against the GPU replay.

Reads the vidur tool-run documents (their kept batch records) and the groundtruth replay
document, and writes under the output folder:

* ``vidur-batches.tool-run.json`` — tool ``vidur``: one case per distinct (composition, VIDUR
  predicted time), metric ``latency`` (ms, simulated) under the replay's key
  ``<model>.batch.<composition>.fp16``, with how many batches it stands for. The aggregate pairs
  it with the measured composition (D1 rows ``vidur`` on W5);
* ``vidur-replay.tool-run.json`` — tool ``vidur-replay``, backend ``replayed``: per vidur case (same
  id and key) the request latencies of VIDUR's timeline re-run with the measured batch times, as
  the vidur document names them (``ttft_p50`` ... ``makespan``, s), timing ``device`` and
  ``eager-end-to-end``; plus CDF points (``<series>_cdf_pNNN``) of the replayed (device) and of
  VIDUR's own timeline (kind ``prediction``) for the latency-CDF figure;
* ``vidur-replay-report.md`` — batch-level error per case (batch-weighted: MAPE, median and p90
  APE), by batch size and prefill/decode mix, and the request-level comparison.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import __version__
from . import parse as parse_mod
from .replay import Batch, CaseBatches, ReplayError, Requests, VidurRequests, cdf, latency_metrics, load_cases, read_requests, timeline

__all__ = ["ReplayError", "write_all"]

TIMINGS = ("device", "eager-end-to-end")
CDF_POINTS = 21  # every 5th percentile
SERIES = ("ttft", "tpot", "e2e_latency")
#: the replayed timeline is VIDUR's own schedule with batches timed by a replay of VIDUR's own operators
REPLAY_INDEPENDENCE = {"class": "shared-operators", "tools": ["vidur"],
                       "what": "VIDUR's own schedule re-run with each batch's time measured by the replay of VIDUR's profiled operators "
                               "on the GPU (groundtruth --suite replay)"}


def read_measured(path: Path, hardware: str) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """composition key -> {timing: median ms, timing + "_spread": (p90-p10)/median} of the ok cases."""
    import mtap_schemas as ms

    try:
        doc = ms.read_tool_run(path)
    except ms.SchemaError as exc:
        raise ReplayError(str(exc)) from None
    if doc["tool"]["name"] != "groundtruth" or doc["tool"]["backend"] != "measured":
        raise ReplayError(f"{path}: field tool: expected the groundtruth (measured) replay document")
    out: dict[str, dict[str, float]] = {}
    for c in doc["cases"]:
        if c["status"] != "ok" or c["hardware"] != hardware:
            continue
        comp = (c.get("parameters") or {}).get("composition")
        if comp is None:
            continue
        m = {}
        for x in c["metrics"]:
            if x["name"] == "latency" and x.get("timing") in TIMINGS:
                m[x["timing"]] = float(x["value"])
            elif x["name"] == "latency_spread" and x.get("timing") in TIMINGS:
                m[x["timing"] + "_spread"] = float(x["value"])
        out[comp] = m
    if not out:
        raise ReplayError(f"{path}: no ok replay case of {hardware} (cases need parameters.composition)")
    return out, doc


def _ape(p: float, m: float) -> float:
    return abs(p - m) / m * 100.0


def weighted_stats(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """MAPE, median and p90 APE over (predicted, measured) pairs, one per batch."""
    apes = sorted(_ape(p, m) for p, m in pairs)
    if not apes:
        return {}
    return {"n": len(apes), "mape": sum(apes) / len(apes), "p50": parse_mod.percentile(apes, 50),
            "p90": parse_mod.percentile(apes, 90), "bias": sum((p - m) / m for p, m in pairs) / len(pairs) * 100.0}


def _label(case: dict[str, Any]) -> str:
    p = case["parameters"]
    rate = "static" if p.get("arrival") == "static" else f"QPS {p['qps']:g}"
    lens = f", {p['min_tokens']}-{p['max_tokens']} tok" if (p["min_tokens"], p["max_tokens"]) != (128, 512) else ""
    return f"{p['scheduler']} {rate}{lens}"


def _size_bin(n: int) -> str:
    return "1" if n == 1 else "2" if n == 2 else "3-4" if n <= 4 else "5-16" if n <= 16 else "17-64" if n <= 64 else ">64"


def check_timeline(ours: Requests, vidur: VidurRequests) -> float:
    """Largest relative difference between VIDUR's request e2e/TTFT and ``ours``, the timeline fed
    VIDUR's own predicted batch times (0 when the timeline model reproduces VIDUR exactly)."""
    worst = 0.0
    for rid, e2e in vidur.e2e.items():
        for want, got in ((e2e, ours.completed[rid] - ours.arrived[rid]), (vidur.ttft[rid], ours.first_token[rid] - ours.arrived[rid])):
            if want > 0:
                worst = max(worst, abs(got - want) / want)
    return worst


def read_all_measured(paths: Iterable[Path], hardware: str) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The compositions of several replay documents (one per device call); a composition measured
    twice keeps the first document's value."""
    merged: dict[str, dict[str, float]] = {}
    first = None
    for p in paths:
        m, doc = read_measured(p, hardware)
        first = first or doc
        for k, v in m.items():
            merged.setdefault(k, v)
    if first is None:
        raise ReplayError("--measured: no replay document given")
    return merged, first


class Written(list):
    """The lines :func:`write_all` reports, and its exit code: 4 (kinds.Exit.KEPT_EXISTING) when a document
    on disk had more ok cases and was kept; the report on disk is kept then too, the new one written beside it."""

    exit_code: int = 0


def write_all(docs: Iterable[Path], measured_paths: Iterable[Path], hardware: str, output: Path, root: Path,
              overwrite: bool = False) -> Written:
    """Write vidur-batches.tool-run.json, vidur-replay.tool-run.json and the report under ``output``
    (module doc); the lines to report and the exit code."""
    from mtap_schemas.keep import save
    from mtap_schemas.kinds import Exit
    from mtap_schemas.paths import relative_to_repo

    docs = list(docs)
    measured_paths = list(measured_paths)
    cases = load_cases(docs, hardware, root)
    measured, gt_doc = read_all_measured(measured_paths, hardware)
    measured_text = ", ".join(relative_to_repo(p) for p in measured_paths)
    groups, per_case, by_size, by_mix = pair_batches(cases, measured)

    out = Written()
    saved = save(_batches_document(cases, groups, measured, hardware), output, "vidur-batches", overwrite=overwrite)
    out.append(saved.message)
    kept = [saved.kept_existing]
    rep_doc, request_rows = _replay_document(per_case, measured, measured_text)
    saved = save(rep_doc, output, "vidur-replay", overwrite=overwrite)
    out.append(saved.message)
    kept.append(saved.kept_existing)

    text = render(per_case, by_size, by_mix, request_rows, groups, measured, docs, measured_text, hardware)
    out.append(_write_report(output, text, any(kept)))
    if any(kept):
        out.exit_code = int(Exit.KEPT_EXISTING)
    return out


def pair_batches(cases: list[CaseBatches], measured: dict[str, dict[str, float]]):
    """Batch level: every batch's VIDUR prediction (ms) paired with its exact composition's measurement.
    Returns the distinct (exact composition, prediction) groups (batch count, schedulers, one batch, the
    case's independence), per case its pairs per timing and its unmeasured / padded-only batch counts, and
    the pairs per timing by batch-size bin and by mix."""
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    per_case: list[dict[str, Any]] = []
    by_size: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_mix: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cb in cases:
        sched = cb.case["parameters"]["scheduler"]
        pairs: dict[str, list[tuple[float, float]]] = {t: [] for t in TIMINGS}
        missing = padded = 0
        for b in cb.batches:
            pred_ms = round(b.predicted_s * 1e3, 6)
            # one D1 pair per distinct (exact composition, VIDUR prediction): the computation VIDUR predicted,
            # each decode request at its own KV (batch-plan v2); the prediction keeps the vidur case's
            # declaration (calibrated on the GPU's operator profile)
            g = groups.setdefault((b.exact_key, pred_ms), {"batches": 0, "schedulers": set(), "batch": b,
                                                           "independence": cb.case.get("independence")})
            g["batches"] += 1
            g["schedulers"].add(sched)
            m = measured.get(b.key)
            if m is None or "device" not in m:
                missing += 1
                continue
            if measured.get(b.exact_key) is None:
                # measured with its decode K/V padded to the longest: a different computation, stale for D1
                padded += 1
                continue
            for t in TIMINGS:
                if t in m:
                    pairs[t].append((pred_ms, m[t]))
                    by_size[t][_size_bin(b.size)].append((pred_ms, m[t]))
                    by_mix[t][b.mix].append((pred_ms, m[t]))
        per_case.append({"case": cb, "pairs": pairs, "missing": missing, "padded": padded})
    return groups, per_case, by_size, by_mix


def _batches_document(cases: list[CaseBatches], groups: dict, measured: dict, hardware: str) -> dict[str, Any]:
    """vidur-batches.tool-run.json: one case per distinct (exact composition, VIDUR prediction) that has an
    exact measurement, under the replay's key (a composition VIDUR predicted several times: ``.../<i>``)."""
    import mtap_schemas.toolrun as tr

    wl, model_key = "W5", "llama2-7b"
    # backend artifact: VIDUR's own outputs (its per-batch predictions, kept by `run --keep-raw`) re-scored, not a new vidur run
    builder = tr.ToolRun("vidur-runner", __version__, tr.Tool("vidur", cases[0].vidur_version, "artifact",
                                                              "batch_metrics.csv of the vidur documents' kept outputs"),
                         prog="vidur-runner")
    builder.setup_done()
    batch_cases = []
    seen: dict[str, int] = defaultdict(int)
    for (key, pred_ms), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if key not in measured:  # no exact measurement (a replay cut short, or padded decode): left out, counted in the report
            continue
        b: Batch = g["batch"]
        i = seen[key]
        seen[key] += 1
        batch_cases.append(tr.ok(
            f"{wl}/{hardware}/batch/{key}/{i}", workload=wl, hardware=hardware, key=f"{model_key}.batch.{key}.fp16",
            independence=g.get("independence"),
            parameters={"composition": key, "batches": g["batches"], "schedulers": ",".join(sorted(g["schedulers"])),
                        "batch_size": b.size, "batch_tokens": b.tokens, "mix": b.mix},
            metrics=[tr.metric("latency", pred_ms, "ms", "prediction", timing="simulated")]))
    return builder.document(batch_cases)


def _replay_document(per_case: list[dict[str, Any]], measured: dict, measured_text: str) -> tuple[dict[str, Any], list]:
    """vidur-replay.tool-run.json (request level: each vidur case's timeline re-run with the measured batch
    times), and the report's request rows (case, VIDUR's timeline, the replayed ones, the timeline check)."""
    import mtap_schemas.toolrun as tr

    builder = tr.ToolRun("vidur-runner", __version__, tr.Tool("vidur-replay", __version__, "replayed",
                                                              "vidur-runner replay (VIDUR's schedule, measured batch times)"),
                         prog="vidur-runner")
    builder.setup_done()
    rep_cases = []
    request_rows = []
    for pc in per_case:
        case, row = _replayed_case(pc, measured, measured_text)
        rep_cases.append(case)
        if row is not None:
            request_rows.append(row)
    return builder.document(rep_cases), request_rows


def _replayed_case(pc: dict[str, Any], measured: dict, measured_text: str) -> tuple[dict, tuple | None]:
    """One vidur case replayed: ``failed``/``incomplete`` when a batch has no measured composition, else ``ok``
    with the replayed request latencies per timing and CDF points of the replayed (device) and VIDUR's own
    timeline; with the report's request row."""
    import mtap_schemas.toolrun as tr

    cb: CaseBatches = pc["case"]
    c = cb.case
    base = {"workload": c["workload"], "hardware": c["hardware"], "key": c.get("key")}
    vidur_requests = read_requests(cb.requests)
    n_dec = vidur_requests.decode_tokens
    params = {"scheduler": c["parameters"]["scheduler"], "vidur_case": c["id"], "batches": len(cb.batches),
              "measured": measured_text}
    if pc["missing"]:
        return tr.failed(c["id"], **base, parameters=params, kind="incomplete",
                         message=f"{pc['missing']} of {len(cb.batches)} batches have no measured composition in "
                                 f"{measured_text}: the timeline needs every batch"), None
    vidur_tl = timeline(cb.batches, [b.predicted_s for b in cb.batches], n_dec)
    params["vidur_timeline_max_rel_diff"] = round(check_timeline(vidur_tl, vidur_requests), 12)
    metrics: list[dict] = []
    timelines: dict[str, Requests] = {}
    for t in TIMINGS:
        tl = timeline(cb.batches, [measured[b.key][t] / 1e3 for b in cb.batches], n_dec)
        timelines[t] = tl
        metrics += latency_metrics(tl, "measurement", t)
    for tl, kind, timing in ((timelines["device"], "measurement", "device"), (vidur_tl, "prediction", "simulated")):
        metrics += _cdf_metrics(tl, kind, timing)
    case = tr.ok(c["id"], **base, parameters=params, metrics=metrics, independence=REPLAY_INDEPENDENCE)
    return case, (c, vidur_tl, timelines, params["vidur_timeline_max_rel_diff"])


def _cdf_metrics(tl: Requests, kind: str, timing: str) -> list[dict]:
    """``<series>_cdf_pNNN`` (s) of a timeline: CDF_POINTS points, every 5th percentile, for the latency-CDF figure."""
    import mtap_schemas.toolrun as tr

    out = []
    series = tl.series()
    for stem in SERIES:
        pts = cdf(series[stem], CDF_POINTS)
        for i, v in enumerate(pts):
            pct = round(100 * i / (CDF_POINTS - 1))
            out.append(tr.metric(f"{stem}_cdf_p{pct:03d}", round(v, 9), "s", kind, timing=timing))
    return out


def _write_report(output: Path, text: str, kept: bool) -> str:
    """Write vidur-replay-report.md; while a document it describes was kept (``kept``), the report on disk is
    kept too and this run's written beside it. The line saying which."""
    from mtap_schemas import write_text_atomic
    from mtap_schemas.keep import REFUSED

    report = output / "vidur-replay-report.md"
    if kept and report.exists():
        beside = output / f"vidur-replay-report.{REFUSED}.md"
        write_text_atomic(beside, text)
        return f"kept {report} (a document it describes was kept); this run's report written to {beside}"
    write_text_atomic(report, text)
    return f"{report}: written"


def _duplicates(groups: dict, measured: dict) -> str:
    """Which measured exact compositions VIDUR predicted more than one time for, and under which schedulers."""
    preds: dict[str, list[set[str]]] = defaultdict(list)
    for (key, _), g in groups.items():
        if key in measured:
            preds[key].append(g["schedulers"])
    dup = {k: v for k, v in preds.items() if len(v) > 1}
    if not dup:
        return "Every measured exact composition has one VIDUR prediction."
    orca = sum(1 for v in dup.values() if any(s == {"orca"} for s in v))
    return (f"{len(dup):,} measured exact compositions have more than one VIDUR prediction ({sum(len(v) for v in dup.values()):,} "
            f"pairs); in {orca:,} of them one prediction is orca's alone: vidur 0.0.26's orca scheduler gives a newly "
            "admitted request no KV entry, so VIDUR drops its prefill attention. Each prediction is its own "
            "pair (the case names its schedulers); the aggregate scores a composition by the mean APE of its pairs.")


def _v1(exact_key: str) -> str:
    """The v1 key of an exact (v2) composition key: decode parts merged to (count, longest KV)."""
    parts = exact_key.split("-")
    pre = [x for x in parts if x.startswith("p")]
    dec = [tuple(map(int, x[1:].split("x"))) for x in parts if x.startswith("d")]
    if dec:
        pre.append(f"d{sum(n for n, _ in dec)}x{max(kv for _, kv in dec)}")
    return "-".join(pre)


def _ms3(xs: list[float]) -> str:
    """p50 / p90 / p99 of seconds, in ms."""
    return " / ".join(f"{parse_mod.percentile(xs, p) * 1e3:.2f}" for p in (50, 90, 99))


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1f} %"


def render(per_case, by_size, by_mix, request_rows, groups, measured, docs, measured_text, hardware) -> str:
    """vidur-replay-report.md: what it compares, the batch level (per case, by size, by mix, the measurement
    spread) and the request level."""
    n_batches = sum(len(pc["case"].batches) for pc in per_case)
    lines = _intro(per_case, groups, measured, docs, measured_text, hardware, n_batches)
    lines += _batch_table(per_case, n_batches)
    lines += _by_size_and_mix(by_size, by_mix)
    spreads = sorted(m["device_spread"] for m in measured.values() if "device_spread" in m)
    if spreads:
        lines += ["", f"Measurement spread ((p90 - p10) / median of each composition's device-timed calls): median "
                      f"{parse_mod.percentile(spreads, 50) * 100:.2f} %, p90 {parse_mod.percentile(spreads, 90) * 100:.2f} %."]
    lines += _request_table(request_rows)
    lines.append("")
    return "\n".join(lines)


def _intro(per_case, groups, measured, docs, measured_text, hardware, n_batches: int) -> list[str]:
    """The title, the sources, what is and is not measured, the counts, and why only exact compositions count."""
    from mtap_schemas.paths import relative_to_repo

    return [
        f"# VIDUR against its batches replayed on the GPU ({hardware})",
        "",
        "Written by `vidur-runner replay` from "
        + ", ".join(f"`{relative_to_repo(p)}`" for p in docs)
        + f" and the GPU replay {measured_text} (`groundtruth run --suite replay`).",
        "",
        "**What this measures:** VIDUR's execution-time predictor (random forests fitted on our operator profile) "
        "and its composition into request latency, against the same operators run together as one forward pass "
        "of Llama-2-7B's 32 decoder layers on the GPU, batch by batch, with the batches VIDUR's scheduler formed. "
        "**What it does not:** a serving engine's own overheads (scheduling, sampling, detokenization, the "
        "embedding and LM head, CUDA-graph capture), FlashInfer/paged-attention kernels, or a live scheduler "
        "reacting to the measured times (the timeline keeps VIDUR's batches in VIDUR's order).",
        "",
        f"{n_batches:,} batches in {len(per_case)} cases; {len(measured):,} distinct compositions measured; "
        f"{sum(1 for k, _ in groups if k in measured):,} of the {len(groups):,} distinct (exact composition, VIDUR "
        "prediction) pairs have an exact measurement and are in `vidur-batches.tool-run.json` (one D1 pair each).",
        "",
        "**Exact compositions only.** The v1 replay (batch-plan v1) ran a batch's decode attention over K/V padded to "
        "its longest decode request, while VIDUR predicted each request at its own KV. A batch whose decode requests "
        f"have different KVs ({sum(pc['padded'] for pc in per_case):,} of the measured batches; "
        f"{sum(1 for k, _ in groups if k not in measured and _v1(k) in measured):,} distinct pairs) was therefore "
        "measured as a different computation: it is left out of every batch-level number below and of D1 (stale) "
        "until batch-plan v2 (`vidur-runner batches --plan-version 2`: each decode request at its own KV) is "
        "measured. The request-level timeline still needs a time for every batch and uses the padded measurement "
        "for those (an upper bound on their attention time).",
        "",
        _duplicates(groups, measured),
        "",
    ]


def _batch_table(per_case, n_batches: int) -> list[str]:
    """Batch-level error per case (device and eager) and over all cases."""
    lines = [
        "## Batch level (every batch of each case; APE = |VIDUR - measured| / measured)",
        "",
        "| case | batches | exact | device MAPE | median APE | p90 APE | bias | eager MAPE | eager median APE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    alld: list = []
    alle: list = []
    for pc in per_case:
        d, e = weighted_stats(pc["pairs"]["device"]), weighted_stats(pc["pairs"]["eager-end-to-end"])
        alld += pc["pairs"]["device"]
        alle += pc["pairs"]["eager-end-to-end"]
        lines.append(f"| {_label(pc['case'].case)} | {len(pc['case'].batches):,}"
                     + (f" ({pc['missing']} unmeasured)" if pc["missing"] else "")
                     + f" | {len(pc['pairs']['device']):,} | {_pct(d.get('mape'))} | {_pct(d.get('p50'))} | {_pct(d.get('p90'))} | {_pct(d.get('bias'))}"
                     f" | {_pct(e.get('mape'))} | {_pct(e.get('p50'))} |")
    d, e = weighted_stats(alld), weighted_stats(alle)
    lines.append(f"| **all** | {n_batches:,} | {len(alld):,} | {_pct(d.get('mape'))} | {_pct(d.get('p50'))} | {_pct(d.get('p90'))} | "
                 f"{_pct(d.get('bias'))} | {_pct(e.get('mape'))} | {_pct(e.get('p50'))} |")
    return lines


def _by_size_and_mix(by_size, by_mix) -> list[str]:
    """Device-time batch error by batch size (requests) and by prefill/decode mix."""
    lines = ["", "Bias: mean signed error (VIDUR - measured) / measured; negative = VIDUR predicts faster batches.", "",
             "### By batch size (requests) and by mix (device time)", "",
             "| batch size | batches | MAPE | median APE | p90 APE | bias |", "|---|---|---|---|---|---|"]
    order = ["1", "2", "3-4", "5-16", "17-64", ">64"]
    for k in order:
        s = weighted_stats(by_size["device"].get(k, []))
        if s:
            lines.append(f"| {k} | {s['n']:,} | {_pct(s['mape'])} | {_pct(s['p50'])} | {_pct(s['p90'])} | {_pct(s['bias'])} |")
    lines += ["", "| mix | batches | MAPE | median APE | p90 APE | bias |", "|---|---|---|---|---|---|"]
    for k in ("decode", "prefill", "mixed"):
        s = weighted_stats(by_mix["device"].get(k, []))
        if s:
            lines.append(f"| {k} | {s['n']:,} | {_pct(s['mape'])} | {_pct(s['p50'])} | {_pct(s['p90'])} | {_pct(s['bias'])} |")
    return lines


def _request_table(request_rows) -> list[str]:
    """Request level: VIDUR's timeline against the same schedule with measured batch times, per case and series."""
    lines = ["", "## Request level (VIDUR's timeline vs the same schedule with measured batch times)", "",
             "Check: our timeline fed VIDUR's own predicted batch times reproduces VIDUR's per-request e2e and TTFT "
             "to the relative difference in the last column. The eager column holds VIDUR's batches fixed even where "
             "eager batch times (host-bound: Python dispatch and `torch.compile` guards of 32 layers) build a queue that "
             "a live scheduler would answer with larger batches, so at higher load it is an upper bound, not a serving "
             "engine's latency. A case with unmeasured batches (the long-context trace, sampled within the device "
             "time) has batch-level pairs only.", "",
             "| case | series | VIDUR p50 / p90 / p99 | replayed (device) p50 / p90 / p99 | replayed (eager) p50 | check |",
             "|---|---|---|---|---|---|"]
    for c, vtl, tls, check in request_rows:
        vs, ds, es = vtl.series(), tls["device"].series(), tls["eager-end-to-end"].series()
        for stem in SERIES:
            lines.append(f"| {_label(c)} | {stem} (ms) | {_ms3(vs[stem])} | {_ms3(ds[stem])} | "
                         f"{parse_mod.percentile(es[stem], 50) * 1e3:.2f} | {check:.1e} |")
        lines.append(f"| {_label(c)} | makespan (s) | {vtl.makespan:.3f} | {tls['device'].makespan:.3f} | "
                     f"{tls['eager-end-to-end'].makespan:.3f} | |")
    return lines
