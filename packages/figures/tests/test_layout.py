"""Every figure legible at one paper column (3.5 in) and two (7 in): rendered at that exact width,
no two texts (tick labels above all) overlapping, nothing cut off at the edge, no text below
MIN_FONT_PT, heat-map counts inside their cells, and in colour."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from conftest import aggregate_doc, astra_cases, compositional_doc, replay_cases, tool_doc, vidur_cases
from matplotlib.text import Text

from mtap_figures import plots, style

FIGURES = {
    "claimed-vs-measured": lambda w: plots.claimed_vs_measured(aggregate_doc(), width=w),
    "predicted-vs-measured": lambda w: plots.predicted_vs_measured(aggregate_doc(), width=w),
    "coverage-heatmap": lambda w: plots.coverage_heatmap(aggregate_doc(), references={"groundtruth", "onnxruntime", "published", "serving-replay"}, width=w),
    "error-amplification": lambda w: plots.amplification_bars(compositional_doc(), width=w),
    "astra-collective-scaling": lambda w: plots.collective_scaling([tool_doc("astra-sim", astra_cases())], width=w),
    "vidur-latency-cdf": lambda w: plots.vidur_latency([(Path("v.tool-run.json"), tool_doc("vidur", vidur_cases()))], width=w),
    "vidur-replay-cdf": lambda w: plots.vidur_replay_cdf([tool_doc("vidur-replay", replay_cases(), backend="replayed")], width=w),
}
WIDTHS = (style.COLUMN_WIDTHS[1], style.COLUMN_WIDTHS[2])


def drawn_texts(fig) -> list[tuple[str, Text]]:
    """(what, text) for every non-empty text the renderer draws: tick labels of the ticks in view
    only, titles, axis labels, annotations, legends, figure titles."""
    fig.canvas.draw()
    out: list[tuple[str, Text]] = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        ticks = set()
        for axis in (ax.xaxis, ax.yaxis) if ax.axison else ():
            for tick in axis._update_ticks():  # the ticks inside the view: what is drawn
                for label in (tick.label1, tick.label2):
                    if label.get_visible() and label.get_text().strip():
                        out.append(("tick", label))
                    ticks.add(id(label))
        for t in ax.findobj(Text):
            if id(t) in ticks or t.axes is not ax and t.axes is not None:
                continue
            if t.get_visible() and t.get_text().strip() and not _in_hidden_tick(t, ax):
                out.append(("text", t))
    for t in [*fig.texts, fig._suptitle, fig._supxlabel, fig._supylabel, *(x for leg in fig.legends for x in leg.findobj(Text))]:
        if t is not None and t.get_visible() and t.get_text().strip():
            out.append(("figure", t))
    return out


def _in_hidden_tick(t: Text, ax) -> bool:
    """A tick label of a tick outside the view (kept by matplotlib, never drawn)."""
    return any(t is label for axis in (ax.xaxis, ax.yaxis) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
               for label in (tick.label1, tick.label2))


def layout_problems(fig) -> list[str]:
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(what, t, t.get_window_extent(renderer)) for what, t in texts]
    frame = fig.bbox
    problems = []
    for what, t, box in boxes:
        if t.get_fontsize() < style.MIN_FONT_PT:
            problems.append(f"{what} {t.get_text()!r}: {t.get_fontsize()} pt < {style.MIN_FONT_PT} pt")
        if box.x0 < frame.x0 - 0.5 or box.y0 < frame.y0 - 0.5 or box.x1 > frame.x1 + 0.5 or box.y1 > frame.y1 + 0.5:
            problems.append(f"{what} {t.get_text()!r} is cut off at the figure's edge")
    for i, (wa, ta, a) in enumerate(boxes):
        for wb, tb, b in boxes[i + 1:]:
            if ta is tb:
                continue
            overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if overlap_w > 0.5 and overlap_h > 0.5:  # more than touching (half a pixel)
                problems.append(f"{wa} {ta.get_text()!r} overlaps {wb} {tb.get_text()!r}")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(FIGURES))
def test_legible_at_one_and_two_columns(name: str, width: float) -> None:
    fig = FIGURES[name](width)
    assert fig is not None
    assert tuple(fig.get_size_inches())[0] == width
    ticks = [t for what, t in drawn_texts(fig) if what == "tick"]
    assert len(ticks) >= 4, "the check must see the tick labels"
    problems = layout_problems(fig)
    rendered = style.render(fig)
    assert not problems, "\n".join(problems[:10])
    png = matplotlib.image.imread(io.BytesIO(rendered["png"]))
    assert png.shape[1] == round(width * style.DPI)  # saved at exactly that width: no tight bbox growing it


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_is_in_colour(name: str) -> None:
    png = matplotlib.image.imread(io.BytesIO(style.render(FIGURES[name](style.COLUMN_WIDTHS[2]))["png"]))[..., :3]
    saturation = png.max(axis=2) - png.min(axis=2)
    assert (saturation > 0.25).mean() > 0.001, "no greyscale-only figures"


def test_heatmap_counts_stay_inside_their_cells() -> None:
    for width in WIDTHS:
        fig = FIGURES["coverage-heatmap"](width)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in (a for a in fig.axes if a.images):
            for t in ax.texts:
                x, y = t.get_position()
                (x0, y0), (x1, y1) = ax.transData.transform([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)])
                box = t.get_window_extent(renderer)
                assert min(x0, x1) <= box.x0 and box.x1 <= max(x0, x1) and min(y0, y1) <= box.y0 and box.y1 <= max(y0, y1), (width, t.get_text())


def test_the_check_finds_overlapping_tick_labels() -> None:
    """The layout check can fail: forty long tick labels on a 3.5 in axis overlap, and a title wider
    than the figure is cut off."""
    fig = style.figure(3.5, 2.0)
    ax = fig.subplots()
    ax.set_xticks(range(40), [f"label number {i}" for i in range(40)])
    ax.set_title("a title much too long to fit a single paper column of three and a half inches")
    problems = layout_problems(fig)
    assert any("overlaps" in p and "label number" in p for p in problems)
    assert any("cut off" in p for p in problems)
    fig = style.figure(3.5, 2.0)
    fig.subplots().text(0.5, 0.5, "tiny", fontsize=4)
    assert any("'tiny': 4.0 pt" in p for p in layout_problems(fig))
    assert np.isfinite(fig.get_size_inches()).all()
