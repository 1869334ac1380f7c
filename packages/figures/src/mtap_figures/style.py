"""One look for every figure: readable in greyscale (markers and line styles carry identity)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
LINES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 2))]
GREYS = ["0.0", "0.35", "0.6", "0.15", "0.5", "0.25", "0.7"]

plt.rcParams.update({
    "font.size": 9,
    "axes.grid": True,
    "grid.color": "0.85",
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "svg.hashsalt": "mtap",
})


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """PNG + PDF, without timestamps so the same data gives the same files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})):
        path = out_dir / f"{name}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=ext, metadata=meta)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths
