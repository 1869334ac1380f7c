"""One look for every figure: in colour from a colour-blind-safe palette (Okabe–Ito), with markers,
line styles and hatches carrying identity as well, sized for a paper's column (3.5 in) or page
width (7 in), and rendered to the same bytes for the same data."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

#: Okabe & Ito's colour-blind-safe palette (Color Universal Design), in the order series take it;
#: yellow last (weak on white).
OKABE_ITO = {
    "blue": "#0072B2", "vermillion": "#D55E00", "green": "#009E73", "purple": "#CC79A7",
    "orange": "#E69F00", "sky": "#56B4E9", "black": "#000000", "yellow": "#F0E442",
}
PALETTE = list(OKABE_ITO.values())
#: the sequential colour map of heat maps: cividis is built to read the same with colour-vision deficiencies
SEQUENTIAL = "cividis"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
LINES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 2))]

#: figure widths in inches: one paper column and two (a full page width)
COLUMN_WIDTHS = {1: 3.5, 2: 7.0}
#: below this width a figure takes its one-column layout
NARROW = 5.0
#: the smallest text any figure draws, in points at the figure's printed size
MIN_FONT_PT = 5.0
DPI = 300

plt.rcParams.update({
    "font.family": "DejaVu Sans",  # the font bundled with matplotlib: the same glyphs on every machine
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "figure.titlesize": 7.5,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "hatch.linewidth": 0.5,
    "axes.grid": True,
    "grid.color": "0.88",
    "grid.linewidth": 0.4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "image.cmap": SEQUENTIAL,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "savefig.dpi": DPI,
    "savefig.bbox": "standard",  # never "tight": the file is exactly the width asked for
    "pdf.fonttype": 42,
    "svg.hashsalt": "mtap",
})


def is_narrow(width: float) -> bool:
    return width < NARROW


def figure(width: float, height: float):
    """A figure of exactly ``width`` × ``height`` inches laid out by constrained layout."""
    return plt.figure(figsize=(width, height), layout="constrained")


def _tick_label(value: float, _pos=None, powers: bool = False) -> str:
    if value <= 0:
        return ""
    exp = math.log10(value)
    if powers and abs(exp - round(exp)) < 1e-9:
        return f"$10^{{{round(exp)}}}$"
    return f"{value:g}"


def log_axis(axis, lo: float, hi: float, numticks: int = 5, steps: tuple[float, ...] | None = None, powers_from: float = 3) -> None:
    """Log ticks that stay legible: decades as 10^k over a wide range (every other decade when the
    range is long), 1-2-5 steps over a short one (or ``steps``), minor ticks unlabelled."""
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = steps or ((1.0,) if decades >= 2.2 else (1.0, 2.0, 5.0) if decades >= 0.7 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=numticks))
    # minor ticks only where they help reading a short range (they cost layout time on long ones)
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(float(s) for s in range(2, 10)), numticks=12) if decades < 3 else NullLocator())
    axis.set_minor_formatter(NullFormatter())
    powers = decades >= powers_from
    axis.set_major_formatter(FuncFormatter(lambda v, p: _tick_label(v, p, powers)))


def render(fig) -> dict[str, bytes]:
    """PNG + PDF bytes, without timestamps or version strings, so the same data gives the same files."""
    out = {}
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata=meta)
        out[ext] = buf.getvalue()
    plt.close(fig)
    return out


def write(out_dir: Path, name: str, rendered: dict[str, bytes]) -> list[Path]:
    """Each rendered file as ``out_dir/name.<ext>`` (temp file + rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, data in rendered.items():
        path = out_dir / f"{name}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths.append(path)
    return paths


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Render and write one figure (PNG + PDF)."""
    return write(out_dir, name, render(fig))
