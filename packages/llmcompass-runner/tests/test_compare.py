"""The README's table (LLMCompass vs measured, and the wall time per case) is `compare`'s output
on the committed documents, so it cannot go stale; the statistics themselves."""

from __future__ import annotations

import re

import pytest
from conftest import REPO, invoke

from mtap_llmcompass_runner.compare import Pair, summary

README = REPO / "packages/llmcompass-runner/README.md"
BLOCK = re.compile(r"<!-- compare:begin -->\n(?P<table>.*?)<!-- compare:end -->", re.S)


def test_summary_statistics():
    pairs = [Pair("H", "a", "W5", 11.0, 10.0), Pair("H", "b", "W5", 8.0, 10.0)]
    s = summary(pairs)
    assert s["n"] == 2
    assert s["mape_pct"] == pytest.approx(15.0)
    assert s["geomean_error_pct"] == pytest.approx(100 * (0.1 * 0.2) ** 0.5)
    assert s["mean_ratio"] == pytest.approx(0.95)


def test_readme_table_is_compares_output(monkeypatch):
    monkeypatch.chdir(REPO)
    res = invoke("compare", "--raw", "data/evaluation/llmcompass/raw")
    assert res.exit_code == 0, res.output
    found = BLOCK.search(README.read_text())
    assert found, "README.md lacks the <!-- compare:begin --> block"
    assert found["table"] == res.output, "README's table is stale: paste `llmcompass-runner compare --raw data/evaluation/llmcompass/raw`"
