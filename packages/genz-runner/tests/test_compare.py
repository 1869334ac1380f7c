"""`compare`: the statistics, and the README's table equals its output on the committed documents."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtap_genz_runner.cli import main
from mtap_genz_runner.compare import Pair, summary

REPO = Path(__file__).resolve().parents[3]
README = Path(__file__).resolve().parents[1] / "README.md"
GENZ_DOC = REPO / "data" / "evaluation" / "genz" / "genz.tool-run.json"
GT = [REPO / "data" / "evaluation" / "groundtruth" / f"{n}.tool-run.json" for n in ("h100-x1", "h200-x1")]
BLOCK = re.compile(r"<!-- compare:begin -->\n(?P<table>.*?)<!-- compare:end -->", re.S)


def test_summary_statistics():
    pairs = [Pair("g", "k1", "W5", 0.5, 1.0), Pair("g", "k2", "W5", 1.2, 1.0), Pair("g", "k3", "W5", 3.0, 2.0)]
    s = summary(pairs)  # errors 0.5, 0.2, 0.5
    assert s["n"] == 3
    assert s["mape_pct"] == pytest.approx(100 * 1.2 / 3)
    assert s["geomean_error_pct"] == pytest.approx(100 * math.exp((2 * math.log(0.5) + math.log(0.2)) / 3))
    assert s["mean_ratio"] == pytest.approx((0.5 + 1.2 + 1.5) / 3)


def test_readme_table_is_compare_output_on_the_committed_documents():
    if not GENZ_DOC.is_file():
        pytest.skip(f"{GENZ_DOC} not present")
    args = ["compare", "--genz", str(GENZ_DOC)] + sum((["--groundtruth", str(p)] for p in GT), [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    found = BLOCK.search(README.read_text())
    assert found, "README.md lacks the <!-- compare:begin --> block"
    assert found["table"] == res.output, "README's table is stale: paste `genz-runner compare` (see README, Regenerate)"
    # the headline rows the README's prose quotes
    assert "| H100-SXM5-80GB | all | 27 |" in res.output and "| H200-SXM-141GB | all | 27 |" in res.output


def test_compare_without_pairs_is_exit_2(tmp_path):
    if not GENZ_DOC.is_file():
        pytest.skip(f"{GENZ_DOC} not present")
    res = CliRunner().invoke(main, ["compare", "--genz", str(GENZ_DOC), "--groundtruth", str(GENZ_DOC)])
    assert res.exit_code == 2 and "no ok case pairs" in res.output
