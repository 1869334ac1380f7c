"""The figures. Each function takes loaded documents (and a width in inches: one paper column,
3.5, or two, 7) and returns a matplotlib Figure, or None when the data it needs is not there
(the CLI then says so). Data that is there but malformed raises :class:`DataError`, one line."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

import mtap_schemas as ms
from mtap_schemas.kinds import HEADLINE_CLASSES
from mtap_schemas.paths import PathError, confined, read_lzma_bounded

from .style import COLUMN_WIDTHS, LINES, MARKERS, MIN_FONT_PT, OKABE_ITO, PALETTE, SEQUENTIAL, figure, is_narrow, log_axis

WORKLOADS = [f"W{i}" for i in range(1, 11)]
MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
COLLECTIVE_KEY = re.compile(r"^(all-reduce|all-gather|reduce-scatter|all-to-all)\.n(\d+)\.(\d+)(kib|mib|gib)$")
SIZE_BYTES = {"kib": 2**10, "mib": 2**20, "gib": 2**30}
ONE, TWO = COLUMN_WIDTHS[1], COLUMN_WIDTHS[2]
#: backends whose documents hold references (measurements), not predictions
REFERENCE_BACKENDS = ("measured", "replayed")
#: measurement timings in the order their markers are taken; others follow, sorted
TIMINGS = ["device", "eager-end-to-end", "device (replayed)", "eager-end-to-end (replayed)", "reported"]


class DataError(ValueError):
    """A document the figures read holds a value of the wrong kind (one line: where and what)."""


def _number(value: Any, where: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(n, ncols))
    return math.ceil(n / ncols), ncols


def _hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


# -- tools and references ------------------------------------------------------------------------

def references_from_docs(docs_by_tool: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Tools whose documents are references rather than predictions, from what the documents say:
    every document's backend is ``measured`` or ``replayed``, or it holds measurements and no
    prediction (a published figure quoted as an artifact)."""
    refs = set()
    for tool, docs in docs_by_tool.items():
        def is_reference(doc: dict[str, Any]) -> bool:
            if doc.get("tool", {}).get("backend") in REFERENCE_BACKENDS:
                return True
            kinds = {m.get("kind") for c in doc.get("cases", []) for m in c.get("metrics") or []}
            return "measurement" in kinds and "prediction" not in kinds
        if docs and all(is_reference(d) for d in docs):
            refs.add(tool)
    return refs


def _references_from_sources(aggregate: dict[str, Any]) -> set[str]:
    """The same from the aggregate's ``sources`` alone (backends only), when the documents are not at hand."""
    backends: dict[str, set[str]] = {}
    for s in aggregate.get("sources") or []:
        backends.setdefault(s["tool"], set()).add(s["backend"])
    return {t for t, b in backends.items() if b and b <= set(REFERENCE_BACKENDS)}


# -- coverage --------------------------------------------------------------------------------------

def _coverage_cells(cov: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(tool, workload) -> (ok cases, cases), summed over the coverage rows."""
    cells: dict[tuple[str, str], tuple[int, int]] = {}
    for c in cov:
        total = c["ok"] + c["failed"] + c["unsupported"] + c["unavailable"]
        ok, tot = cells.get((c["tool"], c["workload"]), (0, 0))
        cells[(c["tool"], c["workload"])] = (ok + c["ok"], tot + total)
    return cells


def _cell_font(width: float, names: list[str], workloads: list[str], cells: dict[tuple[str, str], tuple[int, int]],
               label_pt: float, narrow: bool) -> float:
    """The cell text's size: as large as fits the cell's width (estimated from the label column), never below MIN_FONT_PT."""
    cell_w_pt = (width - 0.62 * label_pt * max(len(n) for n in names) / 72 - 0.2) / len(workloads) * 72
    chars = max(max(len(str(ok)), len(str(tot)) + 1) if narrow else len(f"{ok}/{tot}") for ok, tot in cells.values())
    return max(MIN_FONT_PT, min(6.0, math.floor(cell_w_pt / (0.64 * chars + 0.6) * 2) / 2))


def _coverage_block(ax, rows: list[str], workloads: list[str], cells: dict[tuple[str, str], tuple[int, int]], cmap,
                    cell_pt: float, narrow: bool):
    """One block of the heat map: each cell coloured by its ok share, its counts written in it (a dash: not attempted)."""
    grid = np.full((len(rows), len(workloads)), np.nan)
    for i, tool in enumerate(rows):
        for j, w in enumerate(workloads):
            if (tool, w) in cells:
                ok, tot = cells[(tool, w)]
                grid[i, j] = ok / tot if tot else np.nan
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for i, tool in enumerate(rows):
        for j, w in enumerate(workloads):
            if (tool, w) not in cells:
                ax.text(j, i, "—", ha="center", va="center", fontsize=cell_pt, color="0.55")
                continue
            ok, tot = cells[(tool, w)]
            text = f"{ok}\n/{tot}" if narrow else f"{ok}/{tot}"
            colour = "black" if np.isnan(grid[i, j]) or _luminance(to_rgb(cmap(grid[i, j]))) > 0.3 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=cell_pt, color=colour, linespacing=0.95)
    return im


def _coverage_axes(ax, rows: list[str], workloads: list[str], label: str, label_pt: float, first: bool, last: bool) -> None:
    """A block's ticks, white cell borders and title; workload labels above a tall first block too, below the last only."""
    ax.set_yticks(range(len(rows)), rows, fontsize=label_pt)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(len(workloads) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(False)
    ax.grid(True, which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(label, loc="left", fontweight="bold", fontsize=7)
    if first and len(rows) > 6:  # a tall block: workloads above it too
        ax.tick_params(axis="x", labeltop=True)
    if not last:
        ax.tick_params(axis="x", labelbottom=False)


def coverage_heatmap(aggregate: dict[str, Any], references: set[str] | None = None, width: float = TWO):
    """ok cases / cases per tool × workload, tools (predictions) and references (measurements) in two blocks."""
    cov = aggregate.get("coverage") or []
    if not cov:
        return None
    refs = _references_from_sources(aggregate) if references is None else set(references)
    names = sorted({c["tool"] for c in cov})
    blocks = [(label, rows) for label, rows in (("tools (predictions)", [t for t in names if t not in refs]),
                                                ("references (measurements)", [t for t in names if t in refs])) if rows]
    extra = sorted({c["workload"] for c in cov} - set(WORKLOADS))
    workloads = WORKLOADS + extra
    cells = _coverage_cells(cov)
    narrow = is_narrow(width)
    label_pt = 6 if narrow else 6.5
    cell_pt = _cell_font(width, names, workloads, cells, label_pt, narrow)
    row_h = (2.3 if narrow else 1.5) * cell_pt / 72 + 0.06
    fig = figure(width, row_h * len(names) + 0.45 * len(blocks) + 0.95)
    axes = fig.subplots(len(blocks), 1, squeeze=False, height_ratios=[len(rows) for _, rows in blocks])[:, 0]
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="white")
    im = None
    for b, (ax, (label, rows)) in enumerate(zip(axes, blocks)):
        im = _coverage_block(ax, rows, workloads, cells, cmap, cell_pt, narrow)
        _coverage_axes(ax, rows, workloads, label, label_pt, first=b == 0, last=b == len(blocks) - 1)
    cbar = fig.colorbar(im, ax=list(axes), location="bottom", shrink=0.6, aspect=35, pad=0.02)
    cbar.set_label("fraction of cases ok\n(cell: ok / cases; — = not attempted)" if narrow else
                   "fraction of cases ok (each cell: ok cases / cases; — = not attempted)")
    cbar.set_ticks([0, 0.25, 0.5, 0.75, 1.0])
    fig.suptitle("Coverage: ok cases per tool and workload", wrap=True)
    return fig


# -- predicted vs measured -------------------------------------------------------------------------

def headline_pairs(aggregate: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The pairs a headline figure may show (reference class in HEADLINE_CLASSES), or None for an
    aggregate older than 2.1 whose pairs carry no reference class."""
    pairs = aggregate.get("errors_vs_measured") or []
    if not any("reference_class" in p for p in pairs):
        return None
    return [p for p in pairs if p.get("reference_class") in HEADLINE_CLASSES]


def _timing_order(timings: set[str]) -> list[str]:
    return [t for t in TIMINGS if t in timings] + sorted(timings - set(TIMINGS))


def _usable_pairs(aggregate: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The headline pairs in a time unit, each pair's predicted and measured checked to be numbers (None: no headline pairs)."""
    pairs = headline_pairs(aggregate)
    if not pairs:
        return None
    for i, p in enumerate(pairs):
        for field in ("predicted", "measured"):
            _number(p.get(field), f"aggregate errors_vs_measured[{i}] ({p.get('tool')}, {p.get('key')}): field {field}")
    return [p for p in pairs if p["unit"] in MS]


def _tool_panel(ax, tool: str, usable: list[dict[str, Any]], timings: list[str], colour: dict[str, str], marker: dict[str, str],
                panel: float, narrow: bool) -> None:
    """One tool's log–log panel: the ±10 % band, y = x, a scatter per timing, the title naming its reference classes and n."""
    wrap_at = 30
    mine = [p for p in usable if p["tool"] == tool]
    shown = [p for p in mine if p["predicted"] > 0 and p["measured"] > 0]
    xs = [p["measured"] * MS[p["unit"]] for p in shown]
    ys = [p["predicted"] * MS[p["unit"]] for p in shown]
    lo, hi = min(*xs, *ys) / 1.6, max(*xs, *ys) * 1.6
    ref = np.geomspace(lo, hi, 50)
    ax.fill_between(ref, ref * 0.9, ref * 1.1, color=OKABE_ITO["sky"], alpha=0.45, lw=0, zorder=1)
    ax.plot(ref, ref, color="0.2", lw=0.6, zorder=2)
    dense = len(shown) > 300
    for t in timings:  # one scatter per marker, points in order of measured value so no hardware hides another
        pts = sorted((x, y, p["hardware"], p["key"]) for x, y, p in zip(xs, ys, shown) if p["measured_timing"] == t)
        if pts:
            ax.scatter([x for x, *_ in pts], [y for _, y, *_ in pts], s=(3 if dense else 5) if narrow else (5 if dense else 8),
                       marker=marker[t], c=[colour[h] for *_, h, _ in pts], alpha=0.6 if dense else 0.8, linewidths=0.2,
                       edgecolors="0.15", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    log_axis(ax.xaxis, lo, hi, numticks=max(2, int(panel / 0.3)), powers_from=2)  # a 10^k label is ~0.25 in wide
    log_axis(ax.yaxis, lo, hi, numticks=5, powers_from=2)
    names = sorted({p["reference_class"] for p in shown})
    classes = ("\n+ ".join(names) if narrow else "\n".join(_wrap(" + ".join(names), wrap_at, lines=3)))
    hidden = len(mine) - len(shown)
    n = f"n={len(shown)}" + (f" (+{hidden} ≤ 0 not shown)" if hidden else "")
    # one column: titles right-aligned over their panel, so the right-hand column's stays inside the figure
    ax.set_title(f"{tool}\n{classes}\n{n}", fontsize=5.5 if narrow else 6, linespacing=1.05, loc="right" if narrow else "center")


def _pairs_legend(fig, gs, hardware: list[str], timings: list[str], colour: dict[str, str], marker: dict[str, str],
                  spare: int, narrow: bool) -> None:
    """Hardware colours, timing markers, the band and the line: in the empty cells of the last row when two or more, else below."""
    handles = [Line2D([], [], ls="none", marker="o", color=colour[h], markeredgecolor="0.15", markeredgewidth=0.3, label=h) for h in hardware]
    handles += [Line2D([], [], ls="none", marker=marker[t], color="0.35", label=t) for t in timings]
    handles += [Patch(color=OKABE_ITO["sky"], alpha=0.45, label="within ±10 %"), Line2D([], [], color="0.2", lw=0.6, label="predicted = measured")]
    title = "colour: hardware\nmarker: measurement timing"
    if spare >= 2:
        nrows, ncols = gs.get_geometry()
        lax = fig.add_subplot(gs[nrows - 1, ncols - spare:])
        lax.axis("off")
        lax.legend(handles=handles, loc="center", ncol=1 if narrow or spare < 3 else 2, frameon=False, handletextpad=0.3, title=title)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncol=2 if narrow else 4, frameon=False, handletextpad=0.3, columnspacing=1.0,
                   title=title.replace("\n", " · "))


def predicted_vs_measured(aggregate: dict[str, Any], width: float = TWO):
    """Small multiples, one log–log panel per tool: y = x, a ±10 % band, colour = hardware, marker = timing."""
    usable = _usable_pairs(aggregate)
    if not usable:
        return None
    tools = sorted({p["tool"] for p in usable if p["predicted"] > 0 and p["measured"] > 0})
    if not tools:
        return None
    hardware = sorted({p["hardware"] for p in usable})
    timings = _timing_order({p["measured_timing"] for p in usable})
    colour = {h: PALETTE[k % len(PALETTE)] for k, h in enumerate(hardware)}
    marker = {t: MARKERS[k % len(MARKERS)] for k, t in enumerate(timings)}
    narrow = is_narrow(width)
    nrows, ncols = _grid(len(tools), 3 if narrow else 4)
    spare = nrows * ncols - len(tools)  # empty cells at the end of the last row hold the legend when there are two or more
    panel = (width - 0.45) / ncols
    entries = len(hardware) + len(timings) + 2
    below = 0 if spare >= 2 else 0.13 * math.ceil(entries / (2 if narrow else 4)) + 0.2
    fig = figure(width, nrows * (panel + 0.5) + 0.3 + below)
    gs = fig.add_gridspec(nrows, ncols)
    for k, tool in enumerate(tools):
        row, col = divmod(k, ncols)
        ax = fig.add_subplot(gs[row, col])
        _tool_panel(ax, tool, usable, timings, colour, marker, panel, narrow)
        if row == nrows - 1 or (row == nrows - 2 and col >= ncols - spare):
            ax.set_xlabel("measured (ms)")
        if col == 0:
            ax.set_ylabel("predicted (ms)")
    _pairs_legend(fig, gs, hardware, timings, colour, marker, spare, narrow)
    fig.suptitle("Predicted vs measured, headline pairs only (log–log)", wrap=True)
    return fig


# -- claimed vs measured ---------------------------------------------------------------------------

#: claim metrics where lower is better (errors), and where higher is (shares, accuracies)
ERROR_METRICS = {"mape": "MAPE", "geomean-error": "geomean error", "mean-error": "mean error", "max-error": "max error", "none": "no metric"}
SHARE_METRICS = {"share-within-10pct": "share within ±10 %", "accuracy": "accuracy"}
MATCHES = ("matching", "nearest", "none")


def _claim_rows(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, c in enumerate(claims):
        where = f"aggregate claims_vs_measured[{i}] ({c.get('tool')}, {c.get('claim')})"
        metric, match = c.get("metric"), c.get("match")
        if metric not in ERROR_METRICS and metric not in SHARE_METRICS:
            raise DataError(f"{where}: field metric: expected one of {', '.join([*ERROR_METRICS, *SHARE_METRICS])}, got {metric!r}")
        if match not in MATCHES:
            raise DataError(f"{where}: field match: expected one of {', '.join(MATCHES)}, got {match!r}")
        claimed = _number(c.get("claimed"), f"{where}: field claimed", optional=True)
        ours = _number(c.get("ours"), f"{where}: field ours", optional=True)
        ci = c.get("ours_ci95")
        if ci is not None:
            if not isinstance(ci, (list, tuple)) or len(ci) != 2:
                raise DataError(f"{where}: field ours_ci95: expected [lo, hi] or null, got {ci!r}")
            ci = (_number(ci[0], f"{where}: field ours_ci95[0]"), _number(ci[1], f"{where}: field ours_ci95[1]"))
        n = c.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise DataError(f"{where}: field n: expected an integer, got {n!r}")
        classes = [str(k) for k in c.get("reference_classes") or []]
        off = [k for k in classes if k not in HEADLINE_CLASSES]
        if match == "none" or ours is None:
            status, ours, ci = "no matching measurement", None, None
        elif off:
            status, ours, ci = f"vs {'/'.join(off)}: not shown", None, None
        else:
            status = ("nearest subset, " if match == "nearest" else "") + (f"n={n}" if n is not None else "n unknown")
        rows.append({"tool": str(c.get("tool")), "claim": str(c.get("claim")), "metric": metric, "claimed": claimed, "ours": ours,
                     "ci": ci, "match": match, "status": status, "order": i})
    return sorted(rows, key=lambda r: (r["tool"], r["order"]))


def _wrap(text: str, limit: int, lines: int = 2) -> list[str]:
    """``text`` in at most ``lines`` lines of ``limit`` characters, broken after ' · ', ': ', ' ', '.',
    '_' or '-' (the first of these that leaves a line at least a third full), else mid-word."""
    out: list[str] = []
    while text and len(out) < lines:
        if len(text) <= limit:
            out.append(text)
            text = ""
            break
        cut = next((i + len(sep) for sep in (" · ", ": ", " ", ".", "_", "-") if (i := text.rfind(sep, 0, limit)) + len(sep) > limit // 3), limit)
        out.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        out[-1] = out[-1][: limit - 1] + "…"
    return out


#: short names of the claim metrics for row labels
METRIC_LABELS = {"mape": "MAPE", "geomean-error": "geomean", "mean-error": "mean error", "max-error": "max error", "none": "",
                 "share-within-10pct": "±10 % share", "accuracy": "accuracy"}


def _claim_label(r: dict[str, Any], limit: int) -> list[str]:
    if r["claimed"] is None:  # no number to draw: none published, or not one figure (the statement has several)
        metric = "no published figure" if r["metric"] == "none" else f"{METRIC_LABELS[r['metric']]} (no single figure)"
    else:
        metric = METRIC_LABELS[r["metric"]]
    cid = r["claim"].removeprefix(f"{r['tool']}.")  # ids are often "<tool>.<what>": the tool is named once
    return [*_wrap(f"{r['tool']}: {cid}", limit), *_wrap(f"{metric} · {r['status']}" if metric else r["status"], limit + 6)]


def _claim_x_axis(ax, kind: str, rs: list[dict[str, Any]], narrow: bool) -> float:
    """The panel's x axis: log errors spanning at least 20x, or shares on 0–100 %; returns its lower limit."""
    values = [v for r in rs for v in (r["claimed"], r["ours"], *(r["ci"] or ())) if v is not None]
    if kind == "error":
        positive = [v for v in values if v > 0] or [1.0, 100.0]
        lo, hi = min(positive) / 1.6, max(positive) * 1.6
        if hi / lo < 20:
            mid = math.sqrt(lo * hi)
            lo, hi = mid / math.sqrt(20), mid * math.sqrt(20)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        log_axis(ax.xaxis, lo, hi, numticks=8, steps=(1.0, 2.0, 5.0) if hi / lo < 1000 else (1.0,))
        ax.set_xlabel("error (%), lower is better" if narrow else "error (%) in the claim's metric, lower is better",
                      loc="right" if narrow else "center")
        return lo
    ax.set_xlim(-3, 103)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("share or accuracy (%), higher is better" if narrow else "share within ±10 % or accuracy (%), higher is better",
                  loc="right" if narrow else "center")
    return 0.0


def _claim_row(ax, y: int, r: dict[str, Any], kind: str, lo: float) -> set[str]:
    """One claim's row: a line from the claim to ours, ours with its 95 % interval, the claim's diamond; returns what it drew."""
    drawn: set[str] = set()
    if r["claimed"] is not None and r["ours"] is not None:
        ax.plot([r["claimed"], r["ours"]], [y, y], color="0.65", lw=0.8, zorder=1)
    if r["ours"] is not None:
        nearest = r["match"] == "nearest"
        c = OKABE_ITO["orange"] if nearest else OKABE_ITO["blue"]
        xerr = None
        if r["ci"]:
            a, b = r["ci"]
            floor = lo * 1.0001 if kind == "error" else -3
            xerr = [[max(r["ours"] - max(a, floor), 0)], [max(b - r["ours"], 0)]]
        eb = ax.errorbar([r["ours"]], [y], xerr=xerr, fmt="o", ms=4.2, mfc="white" if nearest else c, mec=c, mew=1.0,
                         ecolor=c, elinewidth=0.9, capsize=1.8, zorder=3)
        if nearest and eb[2]:
            eb[2][0].set_linestyle((0, (2, 1)))
        drawn.add("nearest" if nearest else "matching")
    if r["claimed"] is not None:
        ax.plot([r["claimed"]], [y], ls="none", marker="D", ms=4, color=OKABE_ITO["vermillion"], mec="0.1", mew=0.3, zorder=4)
        drawn.add("claimed")
    return drawn


def _claim_rows_axes(ax, rs: list[dict[str, Any]], kind: str, lo: float) -> set[str]:
    """Every row of a panel, each tool's rows banded alternately, labelled (grey: no measurement of ours); returns what was drawn."""
    ax.set_ylim(len(rs) - 0.5, -0.5)
    present: set[str] = set()
    tools_seen: list[str] = []
    for y, r in enumerate(rs):
        if r["tool"] not in tools_seen:
            tools_seen.append(r["tool"])
        if len(tools_seen) % 2 == 0:
            ax.axhspan(y - 0.5, y + 0.5, color="0.94", lw=0, zorder=0)
        present |= _claim_row(ax, y, r, kind, lo)
    ax.set_yticks(range(len(rs)), ["\n".join(r["label"]) for r in rs])
    ax.tick_params(axis="y", length=0, labelsize=6)
    ax.grid(False, axis="y")
    for tick, r in zip(ax.get_yticklabels(), rs):
        tick.set_linespacing(1.05)
        if r["ours"] is None:
            tick.set_color("0.35")
    return present


def _claims_legend(fig, present: set[str], narrow: bool) -> None:
    handles = []
    if "claimed" in present:
        handles.append(Line2D([], [], ls="none", marker="D", ms=4, color=OKABE_ITO["vermillion"], mec="0.1", mew=0.3, label="tool's published claim"))
    if "matching" in present:
        handles.append(Line2D([], [], marker="o", ms=4.2, color=OKABE_ITO["blue"], lw=0.9, label="ours, matching subset (95 % CI)"))
    if "nearest" in present:
        handles.append(Line2D([], [], marker="o", ms=4.2, mfc="white", mec=OKABE_ITO["orange"], color=OKABE_ITO["orange"], lw=0.9,
                              ls=(0, (2, 1)), label="ours, nearest subset only (95 % CI)"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=1 if narrow else 3, frameon=False, handletextpad=0.4, columnspacing=1.2)


def claimed_vs_measured(aggregate: dict[str, Any], width: float = TWO):
    """Per tool and claim: the tool's published figure (◆) and ours in the same metric on the matching
    subset (●, 95 % interval) or on the nearest one (○, dashed); rows without a measurement say so."""
    claims = aggregate.get("claims_vs_measured")
    if not claims:
        return None
    rows = _claim_rows(claims)
    narrow = is_narrow(width)
    limit = 27 if narrow else 60
    for r in rows:
        r["label"] = _claim_label(r, limit)
    panels = [(kind, [r for r in rows if (r["metric"] in SHARE_METRICS) == (kind == "share")]) for kind in ("error", "share")]
    panels = [(k, rs) for k, rs in panels if rs]
    lines = [max(len(r["label"]) for r in rs) for _, rs in panels]
    heights = [len(rs) * (0.1 * n + 0.08) for (_, rs), n in zip(panels, lines)]
    fig = figure(width, sum(heights) + 0.5 * len(panels) + (0.85 if narrow else 0.6))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[h + 0.3 for h in heights])[:, 0]
    present: set[str] = set()
    for ax, (kind, rs) in zip(axes, panels):
        lo = _claim_x_axis(ax, kind, rs, narrow)
        present |= _claim_rows_axes(ax, rs, kind, lo)
    _claims_legend(fig, present, narrow)
    fig.suptitle("Published accuracy claim vs ours, in the claim's metric" if narrow else
                 "Each tool's published accuracy claim vs ours, in the claim's own metric", wrap=True)
    return fig


# -- ASTRA-sim collectives -------------------------------------------------------------------------

def _platform(hardware: str) -> str:
    """``HGX-H100x8`` and ``HGX-H100x16`` are one platform at two sizes: one line across NPU counts."""
    return re.sub(r"x\d+$", "", hardware)


def collective_scaling(astra_docs: list[dict[str, Any]], width: float = TWO):
    """ASTRA-sim collective time vs NPUs, one panel per message size, colour + marker per collective,
    line style per platform."""
    rows = []
    for doc in astra_docs:
        for c in doc["cases"]:
            m = COLLECTIVE_KEY.match(c.get("key") or "")
            if c["status"] != "ok" or not m:
                continue
            lat = next((x for x in c["metrics"] if x["name"] == "latency" and x["unit"] in MS), None)
            if lat is None:
                continue
            rows.append({
                "collective": m.group(1), "npus": int(m.group(2)), "size": f"{m.group(3)} {m.group(4)[0].upper()}iB",
                "bytes": int(m.group(3)) * SIZE_BYTES[m.group(4)], "binary": str(c["parameters"].get("binary", "")),
                "platform": _platform(c["hardware"]), "hardware": c["hardware"], "ms": lat["value"] * MS[lat["unit"]],
            })
    if not rows:
        return None
    frame = pl.DataFrame(rows)
    binaries = sorted(frame["binary"].unique().to_list())
    platforms = sorted(frame["platform"].unique().to_list())
    collectives = sorted(frame["collective"].unique().to_list())
    sizes = frame.select("size", "bytes").unique().sort("bytes")["size"].to_list()
    narrow = is_narrow(width)
    nrows, ncols = _grid(len(sizes), 3 if narrow else 4)
    panel = (width - 0.5) / ncols
    fig = figure(width, nrows * (panel * 0.95 + 0.3) + 0.75)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    styles = {(p, b): LINES[k % len(LINES)] for k, (p, b) in enumerate((p, b) for p in platforms for b in binaries)}
    for ax, size in zip(axes.flat, sizes):
        sub = frame.filter(pl.col("size") == size)
        for i, coll in enumerate(collectives):
            for p in platforms:
                for b in binaries:
                    s = sub.filter((pl.col("collective") == coll) & (pl.col("platform") == p) & (pl.col("binary") == b)).sort("npus")
                    if s.height:
                        ax.plot(s["npus"], s["ms"], marker=MARKERS[i], ls=styles[(p, b)], color=PALETTE[i % len(PALETTE)], ms=3, lw=0.9,
                                mfc="white" if platforms.index(p) % 2 else PALETTE[i % len(PALETTE)])
        ax.set_xscale("log", base=2)
        ticks = sorted(sub["npus"].unique().to_list())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_yscale("log")
        lo, hi = float(sub["ms"].min()), float(sub["ms"].max())
        ax.set_ylim(lo / 1.4, hi * 1.4)
        log_axis(ax.yaxis, lo / 1.4, hi * 1.4, numticks=5)
        ax.set_xlabel("NPUs")
        ax.set_title(f"message {size}")
    _hide_unused(axes, len(sizes))
    for row in axes:
        row[0].set_ylabel("simulated time (ms)")
    handles = [Line2D([], [], marker=MARKERS[i], color=PALETTE[i % len(PALETTE)], ms=3, lw=0.9, label=c) for i, c in enumerate(collectives)]
    for (p, b), ls in styles.items():
        hw = sorted(frame.filter(pl.col("platform") == p)["hardware"].unique().to_list())
        name = ", ".join(hw) + (f" ({b})" if len(binaries) > 1 else "")
        handles.append(Line2D([], [], color="0.25", ls=ls, lw=0.9, marker="o", ms=3, mfc="white" if platforms.index(p) % 2 else "0.25", label=name))
    fig.legend(handles=handles, loc="outside lower center", ncol=2 if narrow else 4, frameon=False, columnspacing=1.0)
    fig.suptitle("ASTRA-sim simulated collective time vs NPUs, per platform", wrap=True)
    return fig


# -- VIDUR ------------------------------------------------------------------------------------------

#: the largest request_metrics CSV a figure decompresses (a larger one is refused, not read)
MAX_ARTIFACT_BYTES = 256 << 20
E2E_COLUMN = "request_e2e_time"


def _artifact_path(art_path: str, roots: list[Path], confine: Path | None) -> Path | None:
    """The cited file under one of ``roots`` and inside ``confine`` (no absolute paths, no ``..``, no link escapes)."""
    for root in roots:
        try:
            path = confined(root, art_path, "artifact")
        except PathError:
            continue
        if confine is not None and not path.is_relative_to(confine.resolve()):
            continue
        if path.is_file():
            return path
    return None


def _check_csv_shape(path: Path, text: str) -> None:
    """Every row as wide as the header, and the header's names unique: polars would read a ragged row
    or rename a repeated column (``request_e2e_time_duplicated_0``) and go on."""
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows)
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise DataError(f"{path}: request_metrics CSV column {name!r} appears more than once in the header")
            seen.add(name)
        for number, row in enumerate(rows, start=2):
            if row and len(row) != len(header):
                raise DataError(f"{path}: request_metrics CSV line {number}: {len(row)} fields, the header has {len(header)}")
    except csv.Error as exc:
        raise DataError(f"{path}: request_metrics CSV cannot be parsed: {exc}") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {value!r}")
    return value


def _read_e2e(path: Path, data: bytes) -> list[float]:
    """The sorted ``request_e2e_time`` column of a request_metrics CSV; anything else is a DataError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: request_metrics CSV is not UTF-8 text (byte {exc.start})") from None
    try:
        header = pl.read_csv(io.StringIO(text), n_rows=0).columns
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise DataError(f"{path}: request_metrics CSV cannot be parsed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if E2E_COLUMN not in header:
        raise DataError(f"{path}: request_metrics CSV has no column {E2E_COLUMN} (columns: {', '.join(header[:8]) or 'none'})")
    _check_csv_shape(path, text)
    try:
        frame = pl.read_csv(io.StringIO(text), columns=[E2E_COLUMN], schema_overrides={E2E_COLUMN: pl.Float64})
    except (pl.exceptions.PolarsError, ValueError):
        raise DataError(f"{path}: request_metrics CSV column {E2E_COLUMN}: expected numbers (seconds)") from None
    values = frame[E2E_COLUMN].to_list()
    if not values or any(v is None or not math.isfinite(v) or v < 0 for v in values):
        raise DataError(f"{path}: request_metrics CSV column {E2E_COLUMN}: expected non-negative numbers (seconds) in every row")
    return sorted(values)


def _request_latencies(case: dict[str, Any], roots: list[Path], confine: Path | None = None) -> list[float] | None:
    """Per-request e2e latencies (s) from the request_metrics CSV the case cites, if its sha256 matches."""
    for art in case["artifacts"]:
        name = Path(art["path"]).name
        if not name.startswith("request_metrics.csv"):
            continue
        path = _artifact_path(art["path"], roots, confine)
        if path is not None and ms.sha256_file(path) == art["sha256"]:
            try:
                data = read_lzma_bounded(path, MAX_ARTIFACT_BYTES) if name.endswith(".xz") else path.read_bytes()
            except PathError:
                continue
            return _read_e2e(path, data)
    return None


#: a reported e2e latency percentile (the CDF is drawn at these when no request_metrics CSV is at hand)
E2E_PERCENTILE = re.compile(r"^e2e_latency_p(\d+)$")


def _latency_series(vidur_docs: list[tuple[Path, dict[str, Any]]], roots: list[Path] | None,
                    confine: Path | None) -> dict[tuple[str, float, str], tuple[list[float], list[float], bool]]:
    """(hardware, QPS, scheduler) -> (latencies in s, CDF values, every request?) for each ok case of the W5 QPS sweep."""
    series: dict[tuple[str, float, str], tuple[list[float], list[float], bool]] = {}
    for doc_path, doc in vidur_docs:
        for c in doc["cases"]:
            sched, qps = c["parameters"].get("scheduler"), c["parameters"].get("qps")
            if c["status"] != "ok" or sched is None or qps is None:
                continue
            if c["parameters"].get("arrival", "poisson") != "poisson" or c["parameters"].get("min_tokens", 128) != 128:
                continue  # the static and long-context workloads are not the W5 QPS sweep
            qps = _number(qps, f"{doc_path}: case {c['id']}: parameter qps")
            sched = _text(sched, f"{doc_path}: case {c['id']}: parameter scheduler")
            lat = _request_latencies(c, [*(roots or []), doc_path.parent], confine)
            if lat:
                ys = [(i + 1) / len(lat) for i in range(len(lat))]
                series[(c["hardware"], qps, str(sched))] = (lat, ys, True)
                continue
            points = sorted((int(m.group(1)), x["value"] * MS[x["unit"]] / 1e3) for x in c["metrics"]
                            if (m := E2E_PERCENTILE.match(x["name"])) and x["unit"] in MS)
            if points:
                series[(c["hardware"], qps, str(sched))] = ([v for _, v in points], [p / 100 for p, _ in points], False)
    return series


def _latency_panel(ax, hardware: str, q: float, scheds: list[str],
                   series: dict[tuple[str, float, str], tuple[list[float], list[float], bool]]) -> None:
    """One QPS: a CDF per scheduler (every request: a step line marked at p50/p90/p99; percentiles: the marked points)."""
    for i, sched in enumerate(scheds):
        if (hardware, q, sched) not in series:
            continue
        xs, ys, full = series[(hardware, q, sched)]
        xs_ms = [x * 1e3 for x in xs]
        col = PALETTE[i % len(PALETTE)]
        if full:
            ax.step(xs_ms, ys, where="post", ls=LINES[i % len(LINES)], color=col, lw=1.1)
            marks = [max(int(len(xs) * p) - 1, 0) for p in (0.5, 0.9, 0.99)]
            ax.plot([xs_ms[k] for k in marks], [ys[k] for k in marks], ls="none", marker=MARKERS[i], color=col, ms=3.5)
        else:
            ax.step(xs_ms, ys, where="post", marker=MARKERS[i], ls=LINES[i % len(LINES)], color=col, ms=3.5, lw=1)
    ax.set_xlabel("request e2e latency (ms)")
    ax.set_title(f"QPS {q:g}")
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(4))


def vidur_latency(vidur_docs: list[tuple[Path, dict[str, Any]]], roots: list[Path] | None = None, confine: Path | None = None,
                  width: float = TWO):
    """Request latency CDF per scheduler, one panel per QPS.

    The empirical CDF over every simulated request when the case's request_metrics CSV is on
    disk with a matching sha256; otherwise the CDF at the percentiles the case reports.
    """
    series = _latency_series(vidur_docs, roots, confine)
    if not series:
        return None
    hardware = sorted({h for h, _, _ in series})[0]
    qpss = sorted({q for h, q, _ in series if h == hardware})
    scheds = sorted({s for h, _, s in series if h == hardware})
    narrow = is_narrow(width)
    nrows, ncols = _grid(len(qpss), 2 if narrow else 4)
    panel = (width - 0.4) / ncols
    fig = figure(width, nrows * (panel * 0.8 + 0.3) + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    empirical = all(e for (h, _, _), (_, _, e) in series.items() if h == hardware)
    for ax, q in zip(axes.flat, qpss):
        _latency_panel(ax, hardware, q, scheds, series)
    _hide_unused(axes, len(qpss))
    for row in axes:
        row[0].set_ylabel("fraction of requests" + ("" if empirical else "\n(at reported percentiles)"))
    handles = [Line2D([], [], ls=LINES[i % len(LINES)], marker=MARKERS[i], color=PALETTE[i % len(PALETTE)], ms=3.5, lw=1.1, label=s)
               for i, s in enumerate(scheds)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(scheds), frameon=False,
               title="scheduler (markers: p50, p90, p99)" if empirical else "scheduler")
    fig.suptitle(f"VIDUR simulated request latency CDF, Llama-2-7B on {hardware}", wrap=True)
    return fig


def vidur_replay_cdf(replay_docs: list[dict[str, Any]], qps: float = 8.0, width: float = TWO, paths: list[Path] | None = None):
    """Predicted vs replayed request latency CDFs per scheduler (vidur-replay documents).

    Each case of a ``vidur-replay`` document carries CDF points (every 5th percentile) of TTFT and
    e2e latency for VIDUR's own timeline (kind prediction) and for the same schedule with the
    batch times measured on the GPU (device time). One column per scheduler at ``qps``, and the
    static workload (every request at t=0) where present."""
    cdf = re.compile(r"^(ttft|e2e_latency)_cdf_p(\d{3})$")
    panels: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    hardware = None
    for n, doc in enumerate(replay_docs):
        for c in doc["cases"]:
            if c["status"] != "ok":
                continue
            label = c["id"].split("/")
            sched = c["parameters"].get("scheduler")
            rate = label[3] if len(label) > 3 else ""
            if sched is None or rate not in (f"qps={qps:g}", "static") or len(label) > 4:
                continue
            sched = _text(sched, f"{paths[n] if paths else 'vidur-replay document'}: case {c['id']}: parameter scheduler")
            hardware = hardware or c["hardware"]
            for m in c["metrics"]:
                if (g := cdf.match(m["name"])) is None:
                    continue
                who = "VIDUR" if m["kind"] == "prediction" else "replayed"
                panels.setdefault((rate, sched), {}).setdefault(f"{g.group(1)}|{who}", []).append((int(g.group(2)), m["value"]))
    if not panels:
        return None
    cols = sorted(panels, key=lambda k: (k[0] == "static", k[1]))
    scheds = sorted({s for _, s in cols})
    narrow = is_narrow(width)
    ncols = min(len(cols), len(scheds) if narrow else 6)
    cells = [(stem, title, col) for stem, title in (("ttft", "TTFT (ms)"), ("e2e_latency", "e2e latency (ms)")) for col in cols]
    nrows = math.ceil(len(cells) / ncols)
    panel = (width - 0.4) / ncols
    fig = figure(width, nrows * (panel * 0.85 + 0.32) + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (stem, title, col) in zip(axes.flat, cells):
        for k, who in enumerate(("VIDUR", "replayed")):
            pts = sorted(panels[col].get(f"{stem}|{who}", []))
            if pts:
                ax.plot([v * 1e3 for _, v in pts], [p / 100 for p, _ in pts], ls=LINES[k], color=PALETTE[k], lw=1.1, marker=MARKERS[k], ms=2)
        ax.set_xlabel(title)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.set_title(f"{col[1]}, {'static (t=0)' if col[0] == 'static' else col[0].replace('=', ' ')}", fontsize=6.5)
    _hide_unused(axes, len(cells))
    for row in axes:
        row[0].set_ylabel("fraction of requests")
    handles = [Line2D([], [], ls=LINES[k], color=PALETTE[k], lw=1.1, marker=MARKERS[k], ms=2, label=label)
               for k, label in enumerate(("VIDUR (predicted)", "its schedule replayed on the GPU (device time)"))]
    fig.legend(handles=handles, loc="outside lower center", ncol=1 if narrow else 2, frameon=False)
    fig.suptitle(f"VIDUR's request latency vs its schedule replayed with measured batch times, Llama-2-7B on {hardware}", wrap=True)
    return fig


# -- D2 error amplification --------------------------------------------------------------------------

AMPLIFICATION_SERIES = (
    ("mean_layer_ape_percent", "mean per-layer APE", OKABE_ITO["sky"], ""),
    ("composed_ape_percent", "Σ layers vs measured model", OKABE_ITO["orange"], "/////"),
    ("model_ape_percent", "model-level prediction", OKABE_ITO["blue"], ""),
)


def amplification_bars(compositional: dict[str, Any], width: float = TWO):
    """D2 layer → model: per tool a panel of horizontal bars (mean per-layer APE, Σ layers vs the
    measured model, the tool's own model-level prediction) with the amplification ×."""
    rows = [r for r in compositional.get("layer_to_model") or [] if r.get("composed_ape_percent") is not None]
    if not rows:
        return None
    for i, r in enumerate(rows):
        for key, *_ in AMPLIFICATION_SERIES:
            _number(r.get(key), f"compositional layer_to_model[{i}] ({r.get('tool')}, {r.get('model')}): field {key}", optional=True)
        _number(r.get("amplification"), f"compositional layer_to_model[{i}]: field amplification", optional=True)
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    narrow = is_narrow(width)
    nrows, ncols = _grid(len(tools), 1 if narrow else 2)
    groups = [tools[k * ncols:(k + 1) * ncols] for k in range(nrows)]
    heights = [max(sum(1 for r in rows if r["tool"] == t) for t in g) for g in groups]
    fig = figure(width, 0.3 * sum(heights) + 0.42 * nrows + 0.75)
    axes = fig.subplots(nrows, ncols, squeeze=False, height_ratios=[h + 0.6 for h in heights])
    top = max(r.get(k) or 0 for r in rows for k, *_ in AMPLIFICATION_SERIES)
    h = 0.27
    for g, group in enumerate(groups):
        for c in range(ncols):
            ax = axes[g][c]
            if c >= len(group):
                ax.set_visible(False)
                continue
            mine = [r for r in rows if r["tool"] == group[c]]
            y = np.arange(len(mine))
            for k, (key, label, colour, hatch) in enumerate(AMPLIFICATION_SERIES):
                ys = [yy + (k - 1) * h for yy, r in zip(y, mine) if r.get(key) is not None]
                vs = [r[key] for r in mine if r.get(key) is not None]
                ax.barh(ys, vs, h, color=colour, edgecolor="0.15", linewidth=0.3, hatch=hatch, label=label)
                for yy, r in zip(y, mine):
                    if r.get(key) is None:  # no bar is not a zero: say so
                        ax.text(top * 0.01, yy + (k - 1) * h, "n/a", va="center", fontsize=5.5, color="0.4")
            for yy, r in zip(y, mine):
                if r.get("amplification") is not None:
                    end = max(r.get(k) or 0 for k, *_ in AMPLIFICATION_SERIES)
                    ax.annotate(f"×{r['amplification']:.2f}", (end, yy), textcoords="offset points", xytext=(2, 0), va="center", fontsize=6)
            hws = sorted({r["hardware"] for r in mine})
            short = {h: h.split("-")[0] for h in hws}
            if len(set(short.values())) < len(hws):
                short = {h: h for h in hws}
            # rows of one tool on several GPUs are told apart by the GPU; one GPU is named in the title
            ax.set_yticks(y, [f"{r['model']} {r['config']}" + (f" · {short[r['hardware']]}" if len(hws) > 1 else "") for r in mine])
            ax.set_ylim(heights[g] - 0.5, -0.5)
            ax.set_xlim(0, top * 1.22 if top > 0 else 1)
            ax.tick_params(axis="y", length=0)
            ax.grid(False, axis="y")
            ax.set_axisbelow(True)
            ax.set_title(group[c] + (f" on {hws[0]}" if len(hws) == 1 else ""))
            ax.set_xlabel("absolute percentage error (%)")
    handles = [Patch(facecolor=colour, edgecolor="0.15", linewidth=0.3, hatch=hatch, label=label) for _, label, colour, hatch in AMPLIFICATION_SERIES]
    fig.legend(handles=handles, loc="outside lower center", ncol=2 if narrow else 3, frameon=False)
    fig.suptitle("Error amplification, layer → model (×: composed / mean per-layer)", wrap=True)
    return fig


#: one sentence per figure on how to read it (figures/README.md)
CAPTIONS = {
    "claimed-vs-measured": "Each row is one published accuracy claim: the vermillion diamond is the tool's own figure, the blue dot ours in the same metric on the matching subset of our pairs (bar: 95 % bootstrap interval), a hollow orange dot ours on the nearest subset only, and a row whose label says \"no matching measurement\" has none here; error metrics (left is better) and shares/accuracies (right is better) are in separate panels.",
    "predicted-vs-measured": "One log–log panel per tool with only independent, separately calibrated or published-silicon references (named in each panel's title): points on the black line are exact, points inside the blue band within ±10 %, colour gives the hardware and marker shape the measurement timing.",
    "coverage-heatmap": "Each cell is the share of a tool's (top block) or reference's (bottom block) cases that ran ok for one workload, with the counts written in it; a dash means not attempted.",
    "error-amplification": "For each model and configuration, the light bar is a tool's mean per-layer error, the hatched bar the error of its summed layers against the measured model, the dark bar its own model-level prediction, and the × value how much summing amplifies the per-layer error.",
    "astra-collective-scaling": "ASTRA-sim's simulated time of each collective (colour and marker) against the number of NPUs, one panel per message size and one line style per platform.",
    "vidur-latency-cdf": "The fraction of simulated requests (y) finishing within a latency (x), one line per VIDUR scheduler and one panel per request rate; markers sit at p50, p90 and p99.",
    "vidur-replay-cdf": "For each scheduler, VIDUR's own predicted request latency distribution (solid) beside the same schedule replayed with batch times measured on the GPU (dashed): a gap between the two lines is VIDUR's error.",
}
